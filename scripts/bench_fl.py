"""Federated scale benchmark: client-updates per second, in-process vs Flower, and peak memory.

Writes JSON (default ``results/bench_fl.json``). Each measurement runs in a fresh process so its
peak memory (``ru_maxrss``) is its own. Digits clients: the whole digits set, tiled so that every
client holds at least one full batch (the content does not matter for throughput). Every client takes
part in every round (FedSGD, batch 8, loihi2 profile). Both backends use the machine's 2 cores. A
round's time is the median over rounds 2..R (round 1 includes Ray start-up and, on Flower, the first
model build in each node).

Per backend and model, two client counts give a per-round fixed cost and a marginal cost per
client (a line through the two round times); the Flower/in-process ratios are reported per client
at each client count and for the marginal cost.

    .venv/bin/python scripts/bench_fl.py [--out results/bench_fl.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import queue
import resource
import statistics
import sys
import time
from pathlib import Path

CPUS = 2  # both backends get the same cores: torch threads in-process, Ray workers (1 thread each) on Flower


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
    reps = -(-8 * clients // len(ds.y))  # at least one full batch (8) per client
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


def _measure(spec: dict, results: mp.Queue) -> None:
    import torch

    torch.set_num_threads(CPUS)  # the in-process engine, or Flower's server, may use every core
    task = _task(spec["model"], spec["clients"], spec["rounds"], spec["vectorize"])
    t0 = time.perf_counter()
    if spec["backend"] == "local":
        from neurofl.federated.engine import run_local

        res = run_local(task)
    else:
        from neurofl.federated.flower import run_flower

        res = run_flower(task, cpus=CPUS, nodes=spec.get("nodes"))
    wall = time.perf_counter() - t0
    per_round = [row["seconds"] for row in res.rows[2:]]  # rows[0] is the initial model, [1] round 1
    typical = statistics.median(per_round)
    results.put(
        {
            **spec,
            "wall_seconds": wall,
            "round_seconds_all": per_round,
            "round_seconds": typical,
            "client_updates_per_second": spec["clients"] / typical,
            "seconds_per_client_update": typical / spec["clients"],
            "peak_rss_mib_main_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def measure(spec: dict) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(spec, q))
    p.start()
    while True:  # a measurement process that dies must not leave the benchmark waiting forever
        try:
            out = q.get(timeout=5)
            break
        except queue.Empty:
            if not p.is_alive():
                raise RuntimeError(f"measurement {spec} died with exit code {p.exitcode}") from None
    p.join()
    print(json.dumps(out), file=sys.stderr)
    return out


def _line(small: dict, large: dict) -> tuple[float, float]:
    """Fixed seconds per round and marginal seconds per client through two measurements."""
    slope = (large["round_seconds"] - small["round_seconds"]) / (large["clients"] - small["clients"])
    return small["round_seconds"] - slope * small["clients"], slope


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("results/bench_fl.json"))
    ap.add_argument("--sizes", default="100,300,1000", help="clients per round to measure, comma-separated")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    sizes = sorted({int(v) for v in args.sizes.split(",")})
    small, large = sizes[0], sizes[-1]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows, summary = [], []
    for model in ("snn", "ann"):
        got = {}
        for backend in ("local", "flower"):
            for n in sizes:
                spec = {"backend": backend, "model": model, "clients": n, "rounds": args.rounds, "vectorize": True}
                got[backend, n] = measure(spec)
        # the one-client-per-node layout (as with real devices) against one client at a time in-process
        seq = measure(
            {"backend": "local", "model": model, "clients": small, "rounds": args.rounds, "vectorize": False}
        )
        per_node = measure(
            {
                "backend": "flower",
                "model": model,
                "clients": small,
                "rounds": args.rounds,
                "vectorize": False,
                "nodes": small,
            }
        )
        rows += [*got.values(), seq, per_node]
        fixed_l, marg_l = _line(got["local", small], got["local", large])
        fixed_f, marg_f = _line(got["flower", small], got["flower", large])
        summary.append(
            {
                "model": model,
                **{
                    f"flower_over_local_per_client_at_{n}": got["flower", n]["seconds_per_client_update"]
                    / got["local", n]["seconds_per_client_update"]
                    for n in sizes
                },
                "local_fixed_seconds_per_round": fixed_l,
                "local_marginal_seconds_per_client": marg_l,
                "flower_fixed_seconds_per_round": fixed_f,
                "flower_marginal_seconds_per_client": marg_f,
                "flower_over_local_marginal_per_client": marg_f / marg_l,
                "one_client_per_node_flower_over_sequential_local_per_client": per_node["seconds_per_client_update"]
                / seq["seconds_per_client_update"],
                f"local_{large}_round_under_60s": got["local", large]["round_seconds"] < 60,
            }
        )
    result = {
        "benchmark": "neurofl fl scale",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "omp_threads_default": os.environ["OMP_NUM_THREADS"],
        },
        "profile": "loihi2",
        "strategy": f"fedsgd, batch 8, every client in every round, median round of 2..{args.rounds}",
        "local": f"run_local with {CPUS} torch threads",
        "flower": f"run_flower(cpus={CPUS}): {CPUS} Flower nodes unless 'nodes' is given, each a Ray worker with "
        f"1 torch thread; the server (aggregation, evaluation) uses {CPUS} torch threads",
        "summary": summary,
        "results": rows,
    }
    from neurofl.federated.files import write_json

    write_json(args.out, result)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
