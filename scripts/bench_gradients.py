"""Each client's weight gradient as neurofl builds it, against the textbook per-sample build.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_gradients.py [--repeats 5] [--out results/bench_gradients.json]

Two builds of :func:`neurofl.leakage.gradients.per_sample_gradients`' weight gradients from the same
captured layer inputs ``a`` and output gradients ``g`` (the forward and the backward to the layers'
outputs are shared and not timed):

* ``grouped`` (neurofl): each client's gradient summed over its samples inside one contraction; a
  convolution's by the convolution's own weight backward (``aten.convolution_backward``) with the
  clients as channel groups;
* ``per_sample`` (the textbook build, Opacus-style): every sample's gradient as its own tensor
  (a convolution's from unfolded patches, ``F.unfold``), then the mean over each client's samples.

Cases: the two uses in the study, on the fashion-mnist conv SNN (1x28x28, 16 time steps) and the
digits MLP SNN: an IG iteration (8 clients of batch 4; the gradient built with its graph and
differentiated again w.r.t. the input, as the attack's step does) and a learned-inversion
simulation call (512 samples, clients of batch 16, first order). Each figure is the median over
``--repeats`` calls, the two builds interleaved; each case first checks the two equal (float32,
relative 1e-4). Writes the seconds, their ratio from this run, the thread settings and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from neurofl.leakage import gradients
from neurofl.models import build_model
from neurofl.models.arch import Architecture
from neurofl.models.conv import ConvArchitecture
from neurofl.profiles import load_profile


def per_sample_weight(module: torch.nn.Module, a: torch.Tensor, g: torch.Tensor, group: int) -> torch.Tensor:
    """The textbook build: (n, out, in) per-sample gradients, then each client's mean."""
    if a.dim() == 3:  # SLAYER Dense: (n, in, T), (n, out, T)
        w = torch.bmm(g, a.transpose(1, 2))
    elif a.dim() == 5:  # SLAYER Conv: per time step patches
        n, c, h, wd, t = a.shape
        frames = a.permute(0, 4, 1, 2, 3).reshape(n * t, c, h, wd)
        cols = F.unfold(frames, module.kernel_size[:2], module.dilation[:2], module.padding[:2], module.stride[:2])
        cols = cols.reshape(n, t, cols.shape[1], cols.shape[2])
        gt = g.permute(0, 4, 1, 2, 3).reshape(n, t, g.shape[1], -1)
        w = torch.einsum("ntol,ntkl->nok", gt, cols)
    else:
        raise NotImplementedError(tuple(a.shape))
    w = w.reshape(w.shape[0], -1)
    return w.reshape(w.shape[0] // group, group, -1).mean(1)


def grouped_weight(module: torch.nn.Module, a: torch.Tensor, g: torch.Tensor, group: int) -> torch.Tensor:
    """neurofl's build: :func:`neurofl.leakage.gradients.client_weight_grad`, flattened per client."""
    w = gradients.client_weight_grad(module, a, g, group)
    return w.reshape(w.shape[0], -1)


def captured(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, graph: bool) -> list[tuple]:
    """(module, a, g) of every weight layer, g with its graph when ``graph``."""
    layers = model.weight_layers()
    store: list[tuple[torch.Tensor, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda _m, inp, out: store.append((inp[0], out))) for _, m in layers]
    try:
        logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    dz = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), [z for _, z in store], create_graph=graph)
    return [(m, a, g) for (_, m), (a, _), g in zip(layers, store, dz, strict=True)]


def one_call(build: Callable, layers: list[tuple], group: int, x: torch.Tensor | None) -> float:
    t = time.perf_counter()
    ws = [build(m, a, g, group) for m, a, g in layers]
    if x is not None:  # the attack's second-order step
        torch.autograd.grad(sum((w**2).sum() for w in ws), x, retain_graph=True)
    return time.perf_counter() - t


def case(name: str, arch, n: int, group: int, second_order: bool, repeats: int) -> dict:
    torch.manual_seed(0)
    model = build_model("snn", arch, load_profile("float32"), seed=0)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(n, *arch.input_shape, generator=gen).requires_grad_(second_order)
    y = torch.randint(0, arch.classes, (n,), generator=gen)
    layers = captured(model, x, y, second_order)
    for m, a, g in layers:
        ref, got = per_sample_weight(m, a, g, group), grouped_weight(m, a, g, group)
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    builds = {"per_sample": per_sample_weight, "grouped": grouped_weight}
    seconds: dict[str, list[float]] = {k: [] for k in builds}
    for _ in range(repeats + 1):  # the first round warms up, untimed
        for k, build in builds.items():
            seconds[k].append(one_call(build, layers, group, x if second_order else None))
    med = {k: statistics.median(v[1:]) for k, v in seconds.items()}
    return {"case": name, "samples": n, "group": group, "second_order": second_order, "median_seconds": med,
            "ratio_per_sample_over_grouped": med["per_sample"] / med["grouped"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    load_before = os.getloadavg()
    conv = ConvArchitecture((1, 28, 28), classes=10)
    mlp = Architecture((64,), classes=10)
    cases = [
        case("fashion-mnist conv SNN, IG iteration", conv, 32, 4, True, args.repeats),
        case("fashion-mnist conv SNN, learned-inversion simulation", conv, 512, 16, False, args.repeats),
        case("digits MLP SNN, IG iteration", mlp, 32, 4, True, args.repeats),
        case("digits MLP SNN, learned-inversion simulation", mlp, 512, 16, False, args.repeats),
    ]
    result = {
        "benchmark": "bench_gradients",
        "command": "OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_gradients.py"
                   + (f" --out {args.out}" if args.out else ""),  # fmt: skip
        "machine": {"cpus": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "cases": cases,
        **{f"ratio {c['case']}": c["ratio_per_sample_over_grouped"] for c in cases},
    }  # fmt: skip
    text = json.dumps(result, indent=2)
    if args.out is None:
        print(text)
    else:
        from neurofl.report import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
