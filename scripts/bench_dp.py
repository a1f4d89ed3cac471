"""Cost of DP-SGD's per-sample clipping per client-round, SNN and ANN, relative to no defense.

One client-round = one client's local training and upload (``client_round`` for one client) on the
shipped converging schedule (``fl_digits_fedavg``: FedAvg, 5 local steps of batch 16,
loihi2 profile, digits). Both settings are timed in one process, interleaved, on the same threads.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_dp.py [--out results/bench_dp.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from neurofl.config import read_toml
from neurofl.data import load_dataset
from neurofl.federated import fl_config
from neurofl.federated.client import client_round
from neurofl.federated.files import write_json
from neurofl.federated.task import make_task
from neurofl.profiles import load_profile

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "fl_digits_fedavg.toml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("results/bench_dp.json"))
    ap.add_argument("--repeats", type=int, default=15, help="Timed client-rounds per setting.")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds, profile = load_dataset("digits"), load_profile("loihi2")
    base = fl_config(dict(read_toml(CONFIG)), CONFIG)
    settings = {
        "none": base,
        "dp sample (DP-SGD, per-sample clipping)": replace(base, defense="dp", dp_level="sample", dp_noise=1.0),
    }
    rows = []
    for kind in ("ann", "snn"):
        task = make_task(ds, kind, profile, base)  # type: ignore[arg-type]
        model = task.new_model()
        client = task.clients[0]
        times: dict[str, list[float]] = {name: [] for name in settings}
        for r in range(1, args.repeats + 2):  # interleaved; the first round of each is a warm-up
            for name, cfg in settings.items():
                t0 = time.perf_counter()
                client_round(model, [client], cfg, profile, r)
                if r > 1:
                    times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(t) for name, t in times.items()}
        none, dp = med["none"], med["dp sample (DP-SGD, per-sample clipping)"]
        row = {"model": kind, "seconds_per_client_round": med, "dp_over_none": dp / none}
        print(row, flush=True)
        rows.append(row)
    write_json(
        args.out,
        {
            "what": "median seconds of one client's round (local training + upload), interleaved settings",
            "config": str(CONFIG.relative_to(CONFIG.parent.parent)),
            "profile": "loihi2",
            "dataset": "digits",
            "client_samples": len(task.clients[0].y),
            "repeats": args.repeats,
            "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs)",
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
