"""What Lava's CPU fixed-point simulator costs compared with a SLAYER forward pass.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_runtime.py [--samples 100] [--out bench.json]

For each shipped NetX model (netx_models/manifest.json: the digits MLPs and the faces / dvs-digits
conv SNNs) the same test samples of its dataset (at most ``--samples``; faces has 40) run through the
SLAYER reference (one batch, and one sample at a time) and through Lava fixed point
(``Loihi2SimCfg(select_tag='fixed_pt')``, all samples back to back in one run). Lava's start-up
is measured separately with a one-sample run; the batched SLAYER time is the best of
``SLAYER_REPEATS`` after a warm-up. Every row also counts the output bins where Lava and SLAYER
differ (0 expected). Prints one JSON object (and writes it to --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from neurofl.data import load_dataset, split_dataset
from neurofl.deploy.lava_run import run_lava
from neurofl.deploy.netx import read_netx
from neurofl.deploy.parity import reference_model
from neurofl.deploy.trace import encoded_input, trace
from neurofl.io.atomic import atomic_write
from neurofl.models.checkpoint import versions

ROOT = Path(__file__).resolve().parents[1]
SLAYER_REPEATS = 3  # batched SLAYER runs timed; the fastest counts


def bench(path: Path, dataset: str, samples: int, seed: int) -> dict:
    """SLAYER and Lava timings of the first ``samples`` test samples of ``dataset`` (seconds, and
    simulated time steps per second: samples x time steps / seconds)."""
    nf = read_netx(path)
    test = split_dataset(load_dataset(dataset), seed).test
    samples = min(samples, len(test.y))
    x = torch.from_numpy(test.x[:samples])
    model = reference_model(nf)
    inputs = encoded_input(model, x, seed)
    steps = samples * nf.time_steps

    trace(model, x[:1], inputs=inputs[:1])  # warm-up: torch's first convolution sets itself up
    slayer_batch = float("inf")
    for _ in range(SLAYER_REPEATS):  # best of a few: the machine is shared
        t = time.perf_counter()
        ref = trace(model, x, inputs=inputs).layers[-1].numpy()
        slayer_batch = min(slayer_batch, time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(samples):
        trace(model, x[i : i + 1], inputs=inputs[i : i + 1])
    slayer_single = time.perf_counter() - t
    t = time.perf_counter()
    run_lava(nf, inputs[:1].numpy())
    lava_one = time.perf_counter() - t
    t = time.perf_counter()
    out = run_lava(nf, inputs.numpy())
    lava_all = time.perf_counter() - t
    layers = len(nf.widths) - 1  # bins t < layers are empty in SLAYER by construction
    return {
        "file": path.name,
        "dataset": dataset,
        "arch": nf.header["architecture"]["type"],
        "neurons": int(sum(nf.widths[1:])),
        "profile": nf.profile.name,
        "samples": samples,
        "time_steps_per_sample": nf.time_steps,
        "slayer_batch_seconds": slayer_batch,
        "slayer_batch_steps_per_second": steps / slayer_batch,
        "slayer_one_by_one_seconds": slayer_single,
        "slayer_one_by_one_steps_per_second": steps / slayer_single,
        "lava_one_sample_seconds": lava_one,
        "lava_seconds": lava_all,
        "lava_steps_per_second": steps / lava_all,
        "lava_steps_per_second_after_startup": (steps - nf.time_steps) / max(lava_all - lava_one, 1e-9),
        "lava_slowdown_vs_slayer_batch": lava_all / slayer_batch,
        "lava_slowdown_vs_slayer_one_by_one": lava_all / slayer_single,
        "mismatched_bins": int((out[..., layers:] != ref[..., layers:]).sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    manifest = json.loads((ROOT / "netx_models" / "manifest.json").read_text())["models"]
    result = {
        "benchmark": "SLAYER forward vs Lava fixed-point simulation, same inputs",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "torch_threads": torch.get_num_threads(),
            "load_average_1_5_15_min_at_start": list(os.getloadavg()),
        },
        "versions": versions(),
        "results": [
            bench(ROOT / "netx_models" / m["file"], m["dataset"], args.samples, args.seed) for m in manifest
        ],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        atomic_write(args.out, lambda tmp: tmp.write_text(text + "\n"))


if __name__ == "__main__":
    main()
