"""The red-team pass: ~300 hostile inputs and misuses through the real CLI (`python -m neurofl ...`),
each its own process under RLIMIT_AS = 4 GB and a generous hang guard; writes results/redteam.json.

    OMP_NUM_THREADS=1 .venv/bin/python tests/support/redteam.py [--jobs 2] [--only CATEGORY] [--work DIR]

What is checked per case, and the cases: tests/support/neurofl_testing/redteam.py and
tests/support/neurofl_testing/redteam_cases.py (imported from beside this file: run it as a script).
Exit code 0 when every case passed, 1 otherwise.
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
from neurofl_testing.redteam import run_subprocess, summarize
from neurofl_testing.redteam_cases import build

PWNED = Path("/tmp/neurofl-redteam-pwned")  # what the code-running pickles among the cases would create


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="cases run at once")
    ap.add_argument("--only", help="run one category (checkpoint, netx, captures, idx, cifar, events, toml, cli)")
    ap.add_argument("--work", type=Path, help="workspace folder (default: a temporary one, removed after)")
    ap.add_argument("--out", type=Path, default=Path("results/redteam.json"))
    args = ap.parse_args()
    PWNED.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="neurofl-redteam-") as tmp:
        work = args.work or Path(tmp) / "work"
        t0 = time.monotonic()
        cases = [c for c in build(work) if args.only in (None, c.category)]
        print(f"{len(cases)} cases built in {time.monotonic() - t0:.0f} s under {work}", file=sys.stderr)
        results = []

        def one(case):
            r = run_subprocess(case, work / "shared")
            status = "FAIL " + "; ".join(r.failures) if r.failures else "ok"
            print(f"[{case.category}] {case.name}: exit {r.code} ({r.seconds:.1f} s) {status}", file=sys.stderr)
            return r

        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(one, cases))
        summary = summarize(results, time.monotonic() - t0)
        if PWNED.exists():
            summary["failures"].append({"name": "a pickle ran code", "failures": [f"{PWNED} exists"]})
            summary["failed"] += 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, (json.dumps(summary, indent=2) + "\n").encode())
    cats = summary["by_category"]
    for name, c in cats.items():
        print(f"{name:12s} tried {c['tried']:4d}  refused {c['refused']:4d}  accepted {c['accepted']:4d}  "
              f"failed {c['failed']:3d}")  # fmt: skip
    print(f"total: {summary['cases']} cases, {summary['refused']} refused, {summary['accepted']} accepted, "
          f"{summary['failed']} failed, {summary['seconds']} s -> {args.out}")  # fmt: skip
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
