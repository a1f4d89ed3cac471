"""Learned inversion's training step in float32 against bfloat16 autocast (the recipe's ``precision``).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_learned_precision.py [--repeats 5]
        [--out results/bench_learned_precision.json]

One optimizer step of :func:`neurofl.attacks.learned.train_step`, as training runs it (the
inverter's forward, the matched loss, backward and Adam), at the study's shapes: the plain
inverter of the dvs-digits conv SNN (2x20x20 events x 16 bins = 12,800 inputs per sample) at
batch 16 and 4, and the fashion-mnist one (784) at batch 16; a minibatch of 128 simulated
updates, the shipped recipe's width (hidden 1024, 2 layers, 2,049 features). Each figure is the
median over ``--repeats`` steps, the two precisions interleaved; the JSON records the seconds,
their ratio from this run, the CPU's bfloat16 support, the thread settings and the load.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from neurofl.attacks.learned import Inverter, train_step
from neurofl.attacks.recipe import load_recipe

CASES = {"dvs-digits/batch16": (16, 12800, 10), "dvs-digits/batch4": (4, 12800, 10),
         "fashion-mnist/batch16": (16, 784, 10)}  # fmt: skip
MINIBATCH, FEATURES, HIDDEN, LAYERS = 128, 2049, 1024, 2


def _step(batch: int, size: int, classes: int, precision: str, seed: int) -> float:
    """Seconds of one :func:`~neurofl.attacks.learned.train_step` (after one untimed warm-up step)."""
    recipe = dataclasses.replace(load_recipe("learned_inversion"), precision=precision)
    torch.manual_seed(seed)
    net = Inverter(FEATURES, batch, size, classes, HIDDEN, LAYERS)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, foreach=True)
    f = torch.randn(MINIBATCH, FEATURES)
    x, y = torch.rand(MINIBATCH, batch, size), torch.randint(0, classes, (MINIBATCH, batch))
    train_step(net, opt, recipe, f, None, x, y)
    t0 = time.perf_counter()
    train_step(net, opt, recipe, f, None, x, y)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("results/bench_learned_precision.json"))
    args = ap.parse_args()
    load_before = os.getloadavg()
    results = {}
    for name, (batch, size, classes) in CASES.items():
        times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
        for r in range(args.repeats):
            for p in times:
                times[p].append(_step(batch, size, classes, p, r))
        med = {p: statistics.median(t) for p, t in times.items()}
        results[name] = {"float32_seconds": med["float32"], "bfloat16_seconds": med["bfloat16"],
                         "float32_over_bfloat16": med["float32"] / med["bfloat16"]}  # fmt: skip
        print(name, results[name], flush=True)
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    out = {
        "benchmark": "bench_learned_precision",
        "command": f"scripts/bench_learned_precision.py --repeats {args.repeats}",
        "machine": {"cpus": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "avx512_bf16": "avx512_bf16" in flags},  # fmt: skip
        "shapes": {"minibatch": MINIBATCH, "features": FEATURES, "hidden": HIDDEN, "layers": LAYERS},
        "repeats": args.repeats,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "results": results,
    }
    out.update({f"ratio {name}, float32 / bfloat16": r["float32_over_bfloat16"] for name, r in results.items()})
    from neurofl.report import write_json

    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
