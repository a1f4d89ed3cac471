"""The red-team pass: ~780 hostile inputs and misuses through the real CLI; writes results/redteam.json.

    OMP_NUM_THREADS=1 nice .venv/bin/python tests/support/redteam.py [--jobs 2] [--mode batch|process]
        [--only CATEGORY[,CATEGORY]] [--work DIR] [--out results/redteam.json]

``--mode batch`` (default): the cases are dealt to ``--jobs`` child processes, each running its
cases one after the other in-process through ``neurofl.cli.run`` under RLIMIT_AS = 4 GB (one lava
import per child; a child that crashes or hangs fails its case and a fresh one takes the rest);
the cases that start Lava's runtime run as their own process. Peak RSS: each case's own process
(``wait4``), and in a batch child its high-water mark and what each case added to it.
``--mode process``: every case as its own ``python -m neurofl`` process (slower: ~5 s of imports each).

What is checked per case, and the cases: tests/support/neurofl_testing/redteam.py,
tests/support/neurofl_testing/redteam_cases.py and redteam_more.py (imported from beside this
file: run it as a script). Exit code 0 when every case passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from neurofl.io.atomic import atomic_write_bytes
from neurofl_testing.redteam import Case, Result, run_batch, run_subprocess, summarize
from neurofl_testing.redteam_cases import LAVA_MEMORY, build

PWNED = Path("/tmp/neurofl-redteam-pwned")  # what the code-running pickles among the cases would create


def _report(r: Result) -> None:
    status = "FAIL " + "; ".join(r.failures) if r.failures else "ok"
    print(f"[{r.category}] {r.name}: exit {r.code} ({r.seconds:.1f} s, {r.peak_rss_mb} MiB) {status}", file=sys.stderr)


def _own_process(case: Case) -> bool:
    """Cases run as their own process in batch mode: ``verify`` (Lava's runtime forks, and a fork
    of a process that already ran torch's threads can deadlock) and ``--ray-address`` (Ray's client
    in a process that ran many cases before did not return)."""
    return case.argv[:1] == ["verify"] or "--ray-address" in case.argv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="cases (process) or batch children (batch) at once")
    ap.add_argument("--mode", choices=["batch", "process"], default="batch")
    ap.add_argument("--only", help="categories to run, comma-separated (checkpoint, netx, captures, idx, cifar, "
                    "events, toml, cli, nir, profile-keys, recipe-keys, models, options)")  # fmt: skip
    ap.add_argument("--work", type=Path, help="workspace folder (default: a temporary one, removed after)")
    ap.add_argument("--out", type=Path, default=Path("results/redteam.json"))
    args = ap.parse_args()
    PWNED.unlink(missing_ok=True)
    only = None if args.only is None else set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="neurofl-redteam-") as tmp:
        work = args.work or Path(tmp) / "work"
        t0 = time.monotonic()
        cases = [c for c in build(work) if only is None or c.category in only]
        print(f"{len(cases)} cases built in {time.monotonic() - t0:.0f} s under {work}", file=sys.stderr)
        shared = work / "shared"
        for c in cases:  # a NetX file verify accepts starts Lava, which hangs when it cannot map ~5 GB
            if c.argv[:1] == ["verify"]:
                c.memory = c.memory or LAVA_MEMORY
        if args.mode == "process":
            def one(case):  # noqa: ANN001, ANN202 - a worker of the pool
                r = run_subprocess(case, shared)
                _report(r)
                return r

            with ThreadPoolExecutor(args.jobs) as pool:
                results = list(pool.map(one, cases))
        else:
            lots = [cases[i :: args.jobs] for i in range(args.jobs)]

            def lot(part):  # noqa: ANN001, ANN202 - a worker of the pool
                got = run_batch(part, shared, own_process=_own_process)
                for r in got:
                    _report(r)
                return got

            with ThreadPoolExecutor(args.jobs) as pool:
                results = [r for part in pool.map(lot, lots) for r in part]
        summary = summarize(results, time.monotonic() - t0)
        summary["mode"] = args.mode
        summary["command"] = " ".join(["OMP_NUM_THREADS=1 nice .venv/bin/python", *sys.argv])
        if PWNED.exists():
            summary["failures"].append({"name": "a pickle ran code", "failures": [f"{PWNED} exists"]})
            summary["failed"] += 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, (json.dumps(summary, indent=2) + "\n").encode())
    for name, c in summary["by_category"].items():
        print(f"{name:13s} tried {c['tried']:4d}  refused {c['refused']:4d}  accepted {c['accepted']:4d}  "
              f"failed {c['failed']:3d}")  # fmt: skip
    print(f"total: {summary['cases']} cases, {summary['refused']} refused, {summary['accepted']} accepted, "
          f"{summary['exit_1']} exit 1, {summary['crash']} crash, {summary['hang']} hang, {summary['failed']} failed, "
          f"{summary['seconds']} s; peak RSS {json.dumps(summary['peak_rss'])} -> {args.out}")  # fmt: skip
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
