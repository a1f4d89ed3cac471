"""What attacks cost: batched vs sequential gradient matching, and every attack's seconds per victim.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_attacks.py [--victims 32] [--iterations 50]
        [--recipe inverting_gradients_plain] [--suite suite_full] [--suite-victims 16] [--out bench_attacks.json]
        [--device auto|cpu|cuda]

``--device`` (default auto: CUDA when available) is where models, updates and attacks run; the JSON
records it (and the GPU's name). Timings on CUDA synchronize the device before each clock read.

Part 2 (``per_attack``): each recipe of ``--suite`` on the same ``--suite-victims`` victims of the
digits MLP (ann@float32, snn@loihi2) at batch 1 and 4, through the evaluation core; seconds per
victim, with learned inversion's training (once per row) reported apart as ``prepare_seconds``.

For the float ANN and the SNN (loihi2 profile) the same victims are attacked with the same recipe,
iterations and per-victim seeds, once in one vectorized optimization and once in a Python loop
of single-victim attacks. The two runs must give the same reconstructions (their PSNRs are
reported side by side). Prints one JSON object (and writes it to --out): victims per second,
the batched/sequential speed-up, and seconds per attack iteration of the SNN relative to the ANN (the
median of `--repeats` alternating timings of both; in wall-clock and in this process's CPU seconds).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from neurofl.attacks import invert, load_recipe
from neurofl.data import load_dataset, split_dataset
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.leakage.metrics import psnr
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile, quantize_update
from neurofl.report import write_json
from neurofl.runs.device import describe, resolve_device


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` after the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def bench(kind: str, profile_name: str, victims: int, recipe, seed: int, device: torch.device) -> dict:
    prof = load_profile(profile_name)
    clients = split_dataset(load_dataset("digits"), seed).clients
    x, y = torch.from_numpy(clients.x[:victims]).to(device), torch.from_numpy(clients.y[:victims]).to(device)
    model = build_model(kind, Architecture((1, 8, 8), 10), prof, seed=seed).to(device)
    target = {k: quantize_update(v.detach(), prof.update) for k, v in per_sample_gradients(model, x, y).items()}

    t = clock(device)
    batched = invert(model, target, y, (1, 8, 8), recipe, seed=seed, profile=prof)
    t_batched = clock(device) - t

    t = clock(device)
    single = [
        invert(model, {k: v[i : i + 1] for k, v in target.items()}, y[i : i + 1], (1, 8, 8), recipe, seed=seed + i,
               profile=prof).images
        for i in range(victims)
    ]
    t_seq = clock(device) - t
    seq_images = torch.cat(single)
    p_b = psnr(batched.images.cpu().numpy(), x.cpu().numpy()).clip(max=100)
    p_s = psnr(seq_images.cpu().numpy(), x.cpu().numpy()).clip(max=100)
    return {
        "model": kind,
        "profile": profile_name,
        "victims": victims,
        "iterations": recipe.iterations,
        "batched_seconds": t_batched,
        "sequential_seconds": t_seq,
        "batched_victims_per_second": victims / t_batched,
        "sequential_victims_per_second": victims / t_seq,
        "speedup": t_seq / t_batched,
        "batched_seconds_per_iteration": t_batched / recipe.iterations,
        "psnr_batched": float(p_b.mean()),
        "psnr_sequential": float(p_s.mean()),
        "max_abs_image_difference": float((batched.images - seq_images).abs().max()),
    }


def interleaved_iteration_seconds(
    victims: int, recipe, seed: int, repeats: int, device: torch.device
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per batched attack iteration of the ANN and the SNN, timed alternately ``repeats``
    times on the same victims, so that a change in the machine's load hits both alike: wall-clock
    seconds and this process's CPU seconds (which leave out the time other jobs hold the cores)."""
    setups = {}
    clients = split_dataset(load_dataset("digits"), seed).clients
    x, y = torch.from_numpy(clients.x[:victims]).to(device), torch.from_numpy(clients.y[:victims]).to(device)
    for kind, profile_name in (("ann", "float32"), ("snn", "loihi2")):
        prof = load_profile(profile_name)
        model = build_model(kind, Architecture((1, 8, 8), 10), prof, seed=seed).to(device)
        target = {k: quantize_update(v.detach(), prof.update) for k, v in per_sample_gradients(model, x, y).items()}
        setups[kind] = (model, target, prof)
    wall: dict[str, list[float]] = {"ann": [], "snn": []}
    cpu: dict[str, list[float]] = {"ann": [], "snn": []}
    for _ in range(repeats):
        for kind, (model, target, prof) in setups.items():
            t, c = clock(device), time.process_time()
            invert(model, target, y, (1, 8, 8), recipe, seed=seed, profile=prof)
            wall[kind].append((clock(device) - t) / recipe.iterations)
            cpu[kind].append((time.process_time() - c) / recipe.iterations)
    return wall, cpu


def per_attack(suite: str, victims: int, seed: int, device: torch.device) -> list[dict]:
    """Seconds per victim of every recipe of ``suite`` (and learned inversion's training time)."""
    import tempfile

    from neurofl.attacks.recipe import load_attack
    from neurofl.attacks.registry import prepare, run_recipe, why_not
    from neurofl.attacks.target import Target
    from neurofl.leakage.rows import RowStore, row_labels
    from neurofl.leakage.scoring import judge_for, sample_scores
    from neurofl.leakage.victims import draw_victims, shared_updates

    _, recipes = load_attack(suite)
    ds = load_dataset("digits")
    splits = split_dataset(ds, seed)
    judge = judge_for(ds, splits, seed)
    rows = []
    for batch in (1, 4):
        v = draw_victims(splits.clients, victims, batch, 8, seed)
        for kind, profile_name in (("ann", "float32"), ("snn", "loihi2")):
            prof = load_profile(profile_name)
            model = build_model(kind, Architecture((1, 8, 8), 10), prof, seed=seed).to(device)
            t = Target(model, shared_updates(model, v, prof, seed), batch, (1, 8, 8), 10, kind, False, prof,
                       splits.auxiliary)  # fmt: skip
            with tempfile.TemporaryDirectory() as tmp:
                labels = row_labels(t, RowStore(Path(tmp)), seed)
                for r in recipes:
                    if why_not(t, r) is not None:
                        continue
                    t0 = clock(device)
                    prepare(t, r, seed, Path(tmp) / f"{r.name}.pt")
                    t_prep = clock(device) - t0
                    t0 = clock(device)
                    inv = run_recipe(t, r, labels.to(device) if r.labels in ("idlg",) else None, seed + 1,
                                     cache=Path(tmp) / f"{r.name}.pt")  # fmt: skip
                    t_run = clock(device) - t0
                    s = sample_scores(judge, inv.images.cpu().numpy(), inv.loss.cpu().numpy(), v.x.numpy(),
                                      v.y.numpy(), v.index, batch)  # fmt: skip
                    rows.append({
                        "model": kind, "profile": profile_name, "batch": batch, "recipe": r.name,
                        "victims": victims, "seconds_per_victim": t_run / victims, "prepare_seconds": t_prep,
                        "asr": float(s.hit.mean()), "psnr": float(np.nanmean(s.psnr)),
                    })  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--victims", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--recipe", default="inverting_gradients_plain")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5, help="Alternating ANN/SNN timings behind the ratio.")
    ap.add_argument("--suite", default="suite_full", help="Suite for the per-attack costs ('none' skips them).")
    ap.add_argument("--suite-victims", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N.")
    args = ap.parse_args()
    device = resolve_device(args.device)
    recipe = dataclasses.replace(load_recipe(args.recipe), iterations=args.iterations)
    models = [("ann", "float32"), ("snn", "loihi2")]
    rows = [bench(kind, prof, args.victims, recipe, args.seed, device) for kind, prof in models]
    inter, inter_cpu = interleaved_iteration_seconds(args.victims, recipe, args.seed, args.repeats, device)
    ann, snn = rows
    result = {
        "benchmark": "bench_attacks",
        "recipe": recipe.name,
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "torch": torch.__version__,
        **describe(device),
        "rows": rows,
        # the medians of alternating timings (robust to a load change between the two rows above)
        "interleaved_seconds_per_iteration": inter,
        "snn_over_ann_seconds_per_iteration": statistics.median(inter["snn"]) / statistics.median(inter["ann"]),
        # the same timings in CPU seconds of this process (on a shared machine: less of others' load)
        "interleaved_cpu_seconds_per_iteration": inter_cpu,
        "snn_over_ann_cpu_seconds_per_iteration": statistics.median(inter_cpu["snn"])
        / statistics.median(inter_cpu["ann"]),
        "snn_over_ann_seconds_per_iteration_single_victim": snn["sequential_seconds"] / ann["sequential_seconds"],
    }
    if args.suite != "none":
        result["suite"] = args.suite
        result["per_attack"] = per_attack(args.suite, args.suite_victims, args.seed, device)
    print(json.dumps(result, indent=2))
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
