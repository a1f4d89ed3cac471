"""Peer benchmark: breaching's Inverting Gradients against ours, same ANN, victims and iterations.

    .venv/bin/pip install -e '.[bench]'   # breaching 0.1.2 (not part of `make test`)
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_vs_breaching.py [--victims 16] [--iterations 300]
        [--seed 0] [--control-victims 4] [--out results/bench_vs_breaching.json]

The digits MLP (ann@float32, seed 0) and the first ``--victims`` client samples; each victim's
update is its own per-sample gradient (FedSGD, batch 1). Both attacks get the true labels, the same
starting image per victim (our seeded uniform start, handed to breaching as ``initial_data``), the
same iteration budget and one restart, and are configured as alike as the two allow: 1 - cosine
similarity of the whole gradient, TV weight 0.01, signed Adam at lr 0.1 with step decay, the box
[0, 1]. breaching attacks one update per ``reconstruct`` call (its design), so it is timed victim by
victim; ours is timed batched (one vectorized optimization, how neurofl runs it) and sequentially
(one ``invert`` per victim), so the ratio is given both ways. What could not be configured alike is
listed under ``differences``. All timings come from this one run, after one untimed warm-up of each.
``control_without_tv`` (untimed) reruns both with TV 0 on ``--control-victims`` victims: then only the
returned iterate differs, and the reconstructions should nearly coincide.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from neurofl.attacks import invert, load_recipe
from neurofl.attacks.inverting import gradient_distance, per_victim_generators
from neurofl.data import load_dataset, split_dataset
from neurofl.leakage.gradients import flatten, per_sample_gradients
from neurofl.leakage.metrics import psnr
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile
from neurofl.report import write_json

INPUT_SHAPE = (1, 8, 8)
BREACHING_VERSION = "0.1.2"


def machine_info() -> dict[str, Any]:
    """CPU, core count and every thread setting that changes these timings."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def start_images(seed: int, victims: int, input_shape: tuple[int, ...] = INPUT_SHAPE) -> torch.Tensor:
    """The uniform starting images ``invert`` draws for victims ``0..victims-1`` (one restart).

    Parameters
    ----------
    seed : the ``seed`` given to ``invert`` for the batch (victim ``v`` alone gets ``seed + v``)
    victims : number of victims
    input_shape : shape of one sample

    Returns
    -------
    (victims, *input_shape) in [0, 1]
    """
    return torch.cat([torch.rand((1, *input_shape), generator=g) for g in per_victim_generators(seed, victims)])


def neurofl_milestones(iterations: int) -> list[int]:
    """Iterations at which our ``lr_schedule = "multistep"`` divides the step size by 10."""
    return [int(iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]


def breaching_payload(
    model: torch.nn.Module, target: dict[str, torch.Tensor], victim: int, label: torch.Tensor,
    input_shape: tuple[int, ...] = INPUT_SHAPE,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One victim's update in breaching's format: the server payload and the user's shared data.

    Plain tensors only; the gradient list follows ``model.parameters()`` (breaching zips the two).
    The data normalization is the identity (mean 0, std 1), so breaching's box is our [0, 1].

    Parameters
    ----------
    model : the attacked model (every parameter must have an entry in ``target``)
    target : name -> (victims, *weight_shape) per-sample gradients
    victim : which row of ``target``
    label : (1,) the victim's true label
    input_shape : shape of one sample, channels first

    Returns
    -------
    server_payload, shared_data : the dictionaries ``attacker.reconstruct`` takes (each in a list)
    """
    names = [n for n, _ in model.named_parameters()]
    if sorted(names) != sorted(target):
        raise ValueError(f"target has {sorted(target)}, the model's parameters are {names}")
    channels = input_shape[0]
    metadata = SimpleNamespace(shape=tuple(input_shape), modality="vision", mean=[0.0] * channels,
                               std=[1.0] * channels)  # fmt: skip
    server_payload = {
        "parameters": [p.detach().clone() for p in model.parameters()],
        "buffers": None,
        "metadata": metadata,
    }
    shared_data = {
        "gradients": [target[n][victim].detach().clone() for n in names],
        "buffers": None,
        "metadata": {"num_data_points": 1, "labels": label.reshape(1).clone(), "local_hyperparams": None},
    }
    return server_payload, shared_data


def summarize(values: np.ndarray) -> dict[str, float]:
    """Mean, median, min and max of per-victim values."""
    v = [float(x) for x in np.asarray(values, dtype=np.float64).ravel()]
    return {"mean": statistics.fmean(v), "median": statistics.median(v), "min": min(v), "max": max(v)}


def cosine_distance(model: torch.nn.Module, images: torch.Tensor, y: torch.Tensor,
                    target: dict[str, torch.Tensor]) -> np.ndarray:  # fmt: skip
    """1 - cosine similarity between each reconstruction's gradient and its victim's update: (n,)."""
    cand = flatten(per_sample_gradients(model, images, y))
    return gradient_distance(cand.detach(), flatten(target), "cosine").numpy()


def breaching_config(iterations: int, tv_weight: float) -> Any:
    """breaching's ``invertinggradients`` attack config, set to our plain recipe where it can be."""
    import breaching

    with contextlib.redirect_stdout(sys.stderr):  # get_attack_config prints a line; stdout is the JSON
        cfg = breaching.get_attack_config("invertinggradients")
    cfg.optim.max_iterations = iterations
    cfg.optim.callback = iterations  # its log line every `callback` iterations (logging is off anyway)
    cfg.regularization.total_variation.scale = tv_weight
    cfg.restarts.num_trials = 1
    cfg.impl.dtype = "float"
    return cfg


def breaching_attacker(model: torch.nn.Module, cfg: Any, channels: int) -> Any:
    """breaching's attacker for ``model`` with its colour TV reduced to ``channels`` channels.

    breaching's ``TotalVariation`` is a grouped convolution over three (RGB) channels; for a
    one-channel input we keep its first ``2 * channels`` filters and ``groups = channels``
    (the same dx, dy filters on each channel), which is the configuration it would have for gray
    images. Nothing else of the attacker is changed.
    """
    from breaching.attacks import prepare_attack
    from breaching.attacks.auxiliaries.regularizers import TotalVariation

    attacker = prepare_attack(model, torch.nn.CrossEntropyLoss(), cfg, {"dtype": torch.float,
                                                                        "device": torch.device("cpu")})  # fmt: skip
    for reg in attacker.regularizers:
        if isinstance(reg, TotalVariation) and reg.groups != channels:
            reg.weight = reg.weight[: 2 * channels].clone()
            reg.groups = channels
    return attacker


def breaching_milestones(attacker: Any) -> list[int]:
    """The step-decay iterations breaching's own scheduler uses for this config."""
    _, sched = attacker._init_optimizer([torch.zeros(1, requires_grad=True)])
    return sorted(int(m) for m in sched.milestones)


def run_breaching(
    model: torch.nn.Module, target: dict[str, torch.Tensor], y: torch.Tensor, starts: torch.Tensor, attacker: Any
) -> tuple[torch.Tensor, list[float]]:
    """breaching's reconstruction of every victim, one ``reconstruct`` call each; (images, seconds)."""
    images, seconds = [], []
    for i in range(len(y)):
        payload, shared = breaching_payload(model, target, i, y[i : i + 1])
        t = time.perf_counter()
        out, _ = attacker.reconstruct([payload], [shared], {}, initial_data=starts[i : i + 1].clone(), dryrun=False)
        seconds.append(time.perf_counter() - t)
        images.append(out["data"].detach().clamp(0, 1))
    return torch.cat(images), seconds


def warm_up(model: torch.nn.Module, target: dict[str, torch.Tensor], y: torch.Tensor, starts: torch.Tensor,
            recipe: Any, attacker: Any) -> None:  # fmt: skip
    """One untimed short run of each attack (breaching's cosine is TorchScript, compiled on first use)."""
    one = {k: v[:1] for k, v in target.items()}
    invert(model, one, y[:1], INPUT_SHAPE, dataclasses.replace(recipe, iterations=3), seed=0)
    payload, shared = breaching_payload(model, target, 0, y[:1])
    for _ in range(3):
        attacker.reconstruct([payload], [shared], {}, initial_data=starts[:1].clone(), dryrun=True)


def control_without_tv(
    model: torch.nn.Module, target: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, starts: torch.Tensor,
    recipe: Any, seed: int,
) -> dict[str, Any]:
    """Both attacks with the TV weight set to 0 on the given victims (untimed).

    With TV off, the two differ only in the returned iterate (ours: last; breaching: its best), so their
    reconstructions should nearly coincide: this checks that the rest of the configuration is the same.
    """
    plain = dataclasses.replace(recipe, tv_weight=0.0)
    ours = invert(model, target, y, INPUT_SHAPE, plain, seed=seed).images
    best = invert(model, target, y, INPUT_SHAPE, dataclasses.replace(plain, keep_best=True), seed=seed).images
    theirs, _ = run_breaching(model, target, y, starts, breaching_attacker(model, breaching_config(
        recipe.iterations, 0.0), INPUT_SHAPE[0]))  # fmt: skip
    return {
        "victims": len(y),
        "max_abs_image_difference_last_iterate": float((ours - theirs).abs().max()),
        "max_abs_image_difference_keep_best": float((best - theirs).abs().max()),
        "psnr_neurofl": summarize(psnr(ours.numpy(), x.numpy())),
        "psnr_neurofl_keep_best": summarize(psnr(best.numpy(), x.numpy())),
        "psnr_breaching": summarize(psnr(theirs.numpy(), x.numpy())),
    }


def differences(iterations: int, ours: list[int], theirs: list[int]) -> list[dict[str, str]]:
    """What differs between the two configurations (everything else is set alike)."""
    same = ours == theirs
    return [
        {"what": "step schedule",
         "neurofl": f"MultiStepLR x0.1 at int(K*3/8, K*5/8, K*7/8) = {ours}",
         "breaching": f"MultiStepLR x0.1 at K // 2.667, K // 1.6, K // 1.142 = {theirs}",
         "effect": f"{'identical' if same else 'different'} at K = {iterations}"},
        {"what": "total variation",
         "neurofl": "mean |dx| + mean |dy| over interior neighbour pairs (7x8 + 8x7 for 8x8)",
         "breaching": "mean over all HxW pixels of |dx| + |dy| + 2e-8 from a zero-padded 3x3 convolution: the last "
                      "column and row are differenced against the zero padding (an edge term |x| each)",
         "effect": "same weight (0.01) and same interior terms; breaching also pulls border pixels toward 0"},
        {"what": "total variation channels",
         "neurofl": "per image channel",
         "breaching": "a grouped convolution fixed to 3 (RGB) channels; the script keeps its first 2 filters and "
                      "sets groups = 1 for the 1-channel digits",
         "effect": "none intended: the same dx/dy filters on the one channel"},
        {"what": "returned iterate",
         "neurofl": "the last iterate (keep_best = false in inverting_gradients_plain)",
         "breaching": "the candidate after the step at which the total objective (cosine + TV) evaluated before "
                      "that step was lowest",
         "effect": "breaching can return an earlier iterate than the last one"},
        {"what": "objective value it tracks and scores",
         "neurofl": "1 - cosine of the whole flattened gradient",
         "breaching": "1 - cosine summed over the parameter list (the same quantity) plus TV for the best-iterate "
                      "choice; one extra scoring evaluation per restart",
         "effect": "one extra forward/backward per reconstruction for breaching"},
        {"what": "loss of the simulated update",
         "neurofl": "cross-entropy, reduction sum (per sample)",
         "breaching": "torch.nn.CrossEntropyLoss() (mean) on a batch of 1",
         "effect": "none at batch 1"},
        {"what": "data normalization",
         "neurofl": "images in [0, 1], no normalization",
         "breaching": "metadata mean 0, std 1 (set by the script), so its box is [0, 1] and its output is the image",
         "effect": "none"},
        {"what": "starting image",
         "neurofl": "seeded uniform [0, 1] per victim",
         "breaching": "its init would be randn; the script passes our start as initial_data",
         "effect": "none: identical starts"},
        {"what": "labels",
         "neurofl": "true labels given",
         "breaching": "true labels in shared_data metadata (its label recovery is not run)",
         "effect": "none"},
        {"what": "victims per call",
         "neurofl": "all victims in one vectorized optimization (also timed one invert per victim)",
         "breaching": "one update per reconstruct call (its design): it deep-copies the model and rebuilds the "
                      "graph per call",
         "effect": "the per-reconstruction cost is reported against both of ours"},
        {"what": "per-iteration bookkeeping",
         "neurofl": "NaN guards on the update and the objective, no host sync",
         "breaching": "objective_value.item() every iteration (stats) and a finiteness check",
         "effect": "small; part of each implementation's cost"},
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--victims", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--control-victims", type=int, default=4,
                    help="Victims of the untimed TV-off control (0 skips it).")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import breaching  # noqa: F401  (fail before any work when the `bench` extra is missing)

    recipe = dataclasses.replace(load_recipe("inverting_gradients_plain"), iterations=args.iterations)
    prof = load_profile("float32")
    clients = split_dataset(load_dataset("digits"), args.seed).clients
    x, y = torch.from_numpy(clients.x[: args.victims]), torch.from_numpy(clients.y[: args.victims])
    model = build_model("ann", Architecture(INPUT_SHAPE, 10), prof, seed=args.seed)
    target = {k: v.detach() for k, v in per_sample_gradients(model, x, y).items()}
    starts = start_images(args.seed, args.victims)

    cfg = breaching_config(args.iterations, recipe.tv_weight)
    attacker = breaching_attacker(model, cfg, INPUT_SHAPE[0])
    warm_up(model, target, y, starts, recipe, attacker)

    t = time.perf_counter()
    batched = invert(model, target, y, INPUT_SHAPE, recipe, seed=args.seed).images
    t_batched = time.perf_counter() - t
    seq_images, seq_seconds = [], []
    for i in range(args.victims):
        one = {k: v[i : i + 1] for k, v in target.items()}
        t = time.perf_counter()
        seq_images.append(invert(model, one, y[i : i + 1], INPUT_SHAPE, recipe, seed=args.seed + i).images)
        seq_seconds.append(time.perf_counter() - t)
    sequential = torch.cat(seq_images)
    theirs, their_seconds = run_breaching(model, target, y, starts, attacker)

    n = args.victims
    p_ours = psnr(batched.numpy(), x.numpy())
    p_seq = psnr(sequential.numpy(), x.numpy())
    p_theirs = psnr(theirs.numpy(), x.numpy())
    ours_spr, seq_spr, theirs_spr = t_batched / n, sum(seq_seconds) / n, sum(their_seconds) / n
    ours_ms, theirs_ms = neurofl_milestones(args.iterations), breaching_milestones(attacker)
    result = {
        "benchmark": "bench_vs_breaching",
        "command": " ".join([f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] * ("OMP_NUM_THREADS" in os.environ)
                            + [".venv/bin/python scripts/bench_vs_breaching.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "versions": {"breaching": version("breaching"), "torch": torch.__version__,
                     "hydra-core": version("hydra-core"), "neurofl": version("neurofl")},  # fmt: skip
        "setup": {
            "model": f"ann@float32 digits MLP (seed {args.seed})", "victims": n, "batch": 1,
            "iterations": args.iterations, "restarts": 1, "labels": "true labels, both",
            "recipe": recipe.name, "distance": recipe.distance, "tv_weight": recipe.tv_weight, "lr": recipe.lr,
            "signed_adam": recipe.signed_gradients, "boxed": recipe.boxed,
            "breaching_attack_config": f"invertinggradients, optim.max_iterations={args.iterations}, "
            f"regularization.total_variation.scale={recipe.tv_weight:g}, restarts.num_trials=1",
            "warm_up": "one untimed 3-iteration invert and three breaching dry runs before timing",
        },  # fmt: skip
        "neurofl": {
            "batched_seconds": t_batched,
            "seconds_per_reconstruction": ours_spr,
            "sequential_seconds_per_reconstruction": seq_spr,
            "psnr": summarize(p_ours),
            "psnr_sequential": summarize(p_seq),
            "psnr_per_victim": p_ours.tolist(),
            "cosine_distance": summarize(cosine_distance(model, batched, y, target)),
            "batched_vs_sequential_max_abs_image_difference": float((batched - sequential).abs().max()),
        },
        "breaching": {
            "seconds_per_reconstruction": theirs_spr,
            "seconds_per_reconstruction_range": [min(their_seconds), max(their_seconds)],
            "psnr": summarize(p_theirs),
            "psnr_per_victim": p_theirs.tolist(),
            "cosine_distance": summarize(cosine_distance(model, theirs, y, target)),
        },
        "ratio_breaching_over_neurofl_seconds_per_reconstruction": theirs_spr / ours_spr,
        "ratio_breaching_over_neurofl_sequential_seconds_per_reconstruction": theirs_spr / seq_spr,
        "psnr_mean_difference_neurofl_minus_breaching": float(np.mean(p_ours - p_theirs)),
        "victims_where_neurofl_psnr_higher": int((p_ours > p_theirs).sum()),
        "mean_abs_image_difference_neurofl_vs_breaching": float((batched - theirs).abs().mean()),
        "control_without_tv": None if args.control_victims <= 0 else control_without_tv(
            model, {k: v[: args.control_victims] for k, v in target.items()}, x[: args.control_victims],
            y[: args.control_victims], starts[: args.control_victims], recipe, args.seed),
        "differences": differences(args.iterations, ours_ms, theirs_ms),
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
