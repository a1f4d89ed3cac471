"""How long the quickstart takes: `neurofl evaluate --profile loihi2` with default settings, 3 times.

    .venv/bin/python scripts/bench_quickstart.py [--runs 3] [--out results/bench_quickstart.json]
        [--device auto|cpu|cuda]

Each run is a fresh process writing to a fresh run folder (nothing resumed), with the environment
as it is (the CLI's thread policy decides the threads unless OMP_NUM_THREADS / NEUROFL_THREADS are
set; they are recorded). Writes one JSON object: every run's wall seconds, the median, each row's
phase breakdown from the last run's report.json, and the machine's load average before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = ["evaluate", "--profile", "loihi2"]


def one_run(out: Path, device: str) -> tuple[float, dict]:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "neurofl", *COMMAND, "--device", device, "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    seconds = time.perf_counter() - t
    return seconds, json.loads((out / "report.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N.")
    args = ap.parse_args()
    from neurofl.runs.device import describe, resolve_device

    device = resolve_device(args.device)  # a bad name or a missing GPU: one line, before any run
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            load = os.getloadavg()[0]
            seconds, report = one_run(Path(tmp) / f"run{i}", str(device))
            runs.append({"seconds": seconds, "load_average_1min_before": load})
            print(json.dumps(runs[-1]), flush=True)
    rows = [
        {"model": r["model"], "profile": r["profile"], "seconds": r.get("seconds"), "phases": r.get("phases")}
        for r in report["results"]
    ]
    by = {(r["model"], r["profile"]): r["seconds"] for r in rows}
    result = {
        "benchmark": "bench_quickstart",
        "command": "neurofl " + " ".join(COMMAND) + f" --device {device}",
        **describe(device),
        "machine": {"cpus": os.cpu_count(), "machine": platform.machine(),
                    **{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "NEUROFL_THREADS")}},  # fmt: skip
        "runs": runs,
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "rows_last_run": rows,
        "loihi2_over_float_snn_row_seconds": by[("snn", "loihi2")] / by[("snn", "float32")],
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        from neurofl.report import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
