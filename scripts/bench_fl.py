"""Federated scale benchmark: client-updates per second, in-process vs Flower, and peak memory.

Writes JSON (default ``results/bench_fl.json``). Each measurement runs in a fresh process so its
peak memory (``ru_maxrss``) is its own. Digits clients: the whole digits set, tiled so that 1,000
clients each hold a few samples (the content does not matter for throughput).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_fl.py [--out results/bench_fl.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path


def _task(kind: str, clients: int, rounds: int, vectorize: bool):
    import numpy as np
    import torch

    from neurofl.data import load_dataset
    from neurofl.federated import fl_config
    from neurofl.federated.client import ClientData
    from neurofl.federated.partition import iid
    from neurofl.federated.task import FLTask
    from neurofl.models import Architecture
    from neurofl.profiles import load_profile

    ds = load_dataset("digits")
    reps = -(-2 * clients // len(ds.y))  # at least two samples per client
    x = torch.from_numpy(np.concatenate([ds.x] * reps))
    y = torch.from_numpy(np.concatenate([ds.y] * reps))
    cfg = fl_config({"clients": clients, "rounds": rounds, "batch": 8, "vectorize": vectorize})
    parts = iid(len(y), clients, np.random.default_rng(0))
    return FLTask(
        dataset="digits",
        model_kind=kind,
        profile=load_profile("loihi2"),
        arch=Architecture(ds.input_shape, ds.classes),
        clients=[ClientData(k, x[p], y[p]) for k, p in enumerate(parts)],
        test_x=torch.from_numpy(ds.x[:360]),
        test_y=torch.from_numpy(ds.y[:360]),
        cfg=cfg,
    )


def _measure(spec: dict, queue: mp.Queue) -> None:
    import torch

    torch.set_num_threads(1)
    task = _task(spec["model"], spec["clients"], spec["rounds"], spec["vectorize"])
    t0 = time.perf_counter()
    if spec["backend"] == "local":
        from neurofl.federated.engine import run_local

        res = run_local(task)
    else:
        from neurofl.federated.flower import run_flower

        res = run_flower(task, cpus=2)
    wall = time.perf_counter() - t0
    last = res.rows[-1]["seconds"]  # the last round alone (Flower: after Ray start-up and node mapping)
    queue.put(
        {
            **spec,
            "wall_seconds": wall,
            "round_seconds": last,
            "client_updates_per_second": spec["clients"] / last,
            "seconds_per_client_update": last / spec["clients"],
            "peak_rss_mib_main_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def measure(spec: dict) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(spec, q))
    p.start()
    out = q.get()
    p.join()
    print(json.dumps(out), file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("results/bench_fl.json"))
    ap.add_argument("--local-clients", type=int, default=1000)
    ap.add_argument("--flower-clients", type=int, default=100)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = []
    for model in ("snn", "ann"):
        local = measure(
            {
                "backend": "local",
                "model": model,
                "clients": args.local_clients,
                "rounds": 1,
                "vectorize": True,
            }
        )
        seq = measure(
            {
                "backend": "local",
                "model": model,
                "clients": args.flower_clients,
                "rounds": 2,
                "vectorize": False,
            }
        )
        flower = measure(
            {
                "backend": "flower",
                "model": model,
                "clients": args.flower_clients,
                "rounds": 2,
                "vectorize": False,
            }
        )
        rows += [local, seq, flower]
        rows.append(
            {
                "model": model,
                "flower_over_local_vectorized_per_client": flower["seconds_per_client_update"]
                / local["seconds_per_client_update"],
                "flower_over_local_sequential_per_client": flower["seconds_per_client_update"]
                / seq["seconds_per_client_update"],
                "local_1000_round_under_60s": local["round_seconds"] < 60,
            }
        )
    result = {
        "benchmark": "neurofl fl scale",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "omp_threads": os.environ["OMP_NUM_THREADS"],
        },
        "profile": "loihi2",
        "strategy": "fedsgd, batch 8, one round (Flower: 2 rounds, the second timed)",
        "results": rows,
    }
    from neurofl.federated.files import write_json

    write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
