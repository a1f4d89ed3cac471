"""The fused CUBA neuron's integer scan: NumPy (the reference), the compiled loop (the CPU path)
and torch (the CUDA path), on a digits-sized and a conv-sized input.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_neuron_scan.py [--device cpu|cuda|auto]
        [--repeats 40] [--batch 16] [--out results/bench_neuron_scan.json]

Paths (each timed on ``cuba_states``, both integrators, and on the neuron's forward + first-order
backward, ``delayed_spikes`` then ``autograd.grad``):

* ``numpy``: the NumPy scan (the reference). On CUDA: the input copied to the host, scanned
  there and the states copied back, the round trip the torch scan replaces;
* ``compiled``: both integrators in one numba loop (:mod:`neurofl.models.cuba_kernel`, the CPU
  default; on CUDA the same round trip);
* ``torch_script``: the torch scan as neurofl runs it on CUDA, each integrator's loop over time
  steps in one TorchScript call (``scan_backend("torch")`` forces it on CPU tensors);
* ``torch_eager``: the same loop run by Python, one dispatch per op and step (what the CUDA path
  was before), for the choice between the two;
* ``torch_compile`` (on CUDA, or with ``--compile yes``): the same loop through ``torch.compile``,
  a candidate measured, not used (compiles per shape; a failure to compile is recorded).

Each path's states are first checked equal to the NumPy path's (``states_equal_to_numpy``).

Calls are interleaved path by path (round robin) so that a shared machine's load drifts over all
paths alike; each figure is the median over ``--repeats`` calls. Before any timing every shape,
operation and path runs ``WARMUP`` untimed calls (TorchScript's profiling executor optimizes on
the second call; and in a fresh process the conv-sized NumPy scan cost 3x its steady-state time
for its first ~50 calls, until the allocator settled). The JSON records CPU seconds
(``time.process_time``, this process) and wall seconds per call, the ratios from this one run, the
load average before and after and the thread settings. On CUDA wall seconds are taken after
``torch.cuda.synchronize()``. Inputs: digits = the MLP's hidden layer (batch, 128, 16); conv = the
first conv layer of the faces model (batch, 12, 13, 13, 16) (25x25 input, 12 channels, stride 2).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import torch

from neurofl.models import NeuronParams, cuba
from neurofl.runs.device import describe, resolve_device

SHAPES = {"digits": (128, 16), "conv": (12, 13, 13, 16)}
WARMUP = 20


@contextmanager
def _path(name: str, device: torch.device) -> Iterator[None]:
    """Run the scans on path ``name`` (see the module docstring)."""
    states, scripted = cuba.cuba_states, cuba._scripted_scan
    if name in ("numpy", "compiled") and device.type != "cpu":

        def round_trip(x: torch.Tensor, *args: object) -> tuple[torch.Tensor, torch.Tensor]:
            current, voltage = states(x.cpu(), *args)  # type: ignore[arg-type]
            return current.to(x.device), voltage.to(x.device)

        cuba.cuba_states = round_trip  # type: ignore[assignment]
    if name == "torch_eager":
        cuba._scripted_scan = lambda: cuba._leaky_scan_loop  # type: ignore[assignment]
    if name == "torch_compile":
        cuba._scripted_scan = _compiled
    try:
        with cuba.scan_backend({"numpy": "numpy", "compiled": "auto"}.get(name, "torch")):
            yield
    finally:
        cuba.cuba_states, cuba._scripted_scan = states, scripted


@functools.cache
def _compiled() -> Callable[..., torch.Tensor]:
    """The scan's loop through ``torch.compile`` (Inductor unrolls the T steps; on CUDA into one
    generated kernel): measured beside TorchScript, not used by neurofl."""
    return torch.compile(cuba._leaky_scan_loop, dynamic=False)


def _calls(x: torch.Tensor, device: torch.device) -> dict[str, Callable[[], object]]:
    """The two measured operations (run under :func:`_path`)."""
    params = NeuronParams().as_slayer()
    neuron = cuba.FusedCubaNeuron(**params).to(device)
    args = (round(float(neuron.current_decay)), round(float(neuron.voltage_decay)), neuron.s_scale)
    threshold = neuron.threshold + neuron.threshold_eps
    weights = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)).to(device)

    def states() -> object:
        return cuba.cuba_states(x, *args, threshold)

    def forward_backward() -> object:
        xi = x.detach().requires_grad_(True)
        return torch.autograd.grad((neuron.delayed_spikes(xi) * weights).sum(), xi)

    return {"scan": states, "neuron_forward_backward": forward_backward}


def _time(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.process_time() - cpu0, time.perf_counter() - wall0


def _equal_to_numpy(x: torch.Tensor, device: torch.device, paths: list[str]) -> tuple[dict, dict]:
    """Whether each path's states equal the NumPy path's (value for value), and the paths that
    failed to run (their error; dropped from the timing)."""
    ops = _calls(x, device)
    with _path("numpy", device):
        expected = ops["scan"]()
    equal, failed = {}, {}
    for p in paths:
        try:
            with _path(p, device):
                got = ops["scan"]()
        except Exception as e:  # noqa: BLE001 - e.g. torch.compile without a compiler: recorded
            failed[p] = f"{type(e).__name__}: {e}"[:500]
            continue
        pairs = zip(cast(tuple, expected), cast(tuple, got), strict=True)
        equal[p] = all(torch.equal(a.cpu(), b.cpu()) for a, b in pairs)
    return equal, failed


def measure(device: torch.device, batch: int, repeats: int, compile_: bool) -> dict:
    cases = []  # (name, shape, {op: fn}, paths, equal, failed)
    for shape_name, neurons in SHAPES.items():
        shape = (batch, *neurons)
        g = torch.Generator().manual_seed(0)
        x = (torch.randn(shape, generator=g) * 2.0).to(device)
        candidates = ["numpy", "compiled", "torch_script", "torch_eager"] + (["torch_compile"] if compile_ else [])
        equal, failed = _equal_to_numpy(x, device, candidates)
        paths = [p for p in candidates if p not in failed]
        cases.append((shape_name, shape, _calls(x, device), paths, equal, failed))

    def rounds(n: int, shape_name: str, op_name: str) -> dict[str, list[tuple[float, float]]]:
        case = next(c for c in cases if c[0] == shape_name)
        op, paths = case[2][op_name], case[3]
        samples: dict[str, list[tuple[float, float]]] = {p: [] for p in paths}
        for _ in range(n):
            for p in paths:
                with _path(p, device):
                    samples[p].append(_time(op, device))
        return samples

    # untimed: every shape, operation and path WARMUP times first, so that every timed call runs in
    # the process's steady state (allocator included), whichever comes first
    for shape_name, _, ops, *_ in cases:
        for op_name in ops:
            rounds(WARMUP, shape_name, op_name)
    out: dict = {}
    for shape_name, shape, ops, paths, equal, failed in cases:
        for op_name in ops:
            samples = rounds(repeats, shape_name, op_name)
            row = {
                p: {
                    "cpu_seconds": statistics.median(c for c, _ in samples[p]),
                    "wall_seconds": statistics.median(w for _, w in samples[p]),
                }
                for p in paths
            }
            key = "wall_seconds" if device.type == "cuda" else "cpu_seconds"
            row["ratios"] = {
                f"{p}_over_numpy_{key}": row[p][key] / row["numpy"][key] for p in paths if p != "numpy"
            }
            if "torch_eager" in row and "torch_script" in row:
                row["ratios"][f"torch_eager_over_torch_script_{key}"] = (
                    row["torch_eager"][key] / row["torch_script"][key]
                )
            out[f"{shape_name}/{op_name}"] = {
                "input_shape": list(shape),
                **row,
                "states_equal_to_numpy": equal,
                **({"failed": failed} if failed else {}),
            }
            print(shape_name, op_name, json.dumps(row["ratios"]), file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda[:N] or auto")
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("results/bench_neuron_scan.json"))
    ap.add_argument(
        "--compile",
        choices=("auto", "yes", "no"),
        default="auto",
        help="also time the loop through torch.compile (auto: on CUDA only)",
    )
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    load_before = list(os.getloadavg())
    start = time.perf_counter()
    compile_ = args.compile == "yes" or (args.compile == "auto" and device.type == "cuda")
    results = measure(device, args.batch, args.repeats, compile_)
    result = {
        "bench": "bench_neuron_scan",
        "command": " ".join(["scripts/bench_neuron_scan.py", *(argv if argv is not None else sys.argv[1:])]),
        **describe(device),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NEUROFL_THREADS")},
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_1_5_15_min_before": load_before,
        "load_average_1_5_15_min_after": list(os.getloadavg()),
        "repeats": args.repeats,
        "seconds_total": time.perf_counter() - start,
        "neuron": "FusedCubaNeuron, NeuronParams() (threshold 1.25, decays 0.25 and 0.03 of 4096)",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
