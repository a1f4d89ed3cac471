"""Peak memory of one `neurofl study` task, in this (fresh) process: the numbers of docs/study.md.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_task_memory.py DATASET BATCH ROW TASK --out DIR
        [--victims 16] [--profiles loihi2] [--attack suite_study] [--iterations N] [--train-epochs 5]

ROW is a row label (``snn@loihi2``, ``ann@float32``), TASK a recipe name or ``utility``. The cell is
planned and its run folder opened under DIR, the task runs once (nothing cached: use a fresh DIR per
recipe, or remove its chunks), and one JSON line is printed: the task's outcome, its seconds, and
``ru_maxrss`` before and after it (the process with neurofl imported and the cell planned, then the
peak). SIGTERM (e.g. from ``timeout``) stops the task and still prints the peak so far. Memory does
not grow with the iteration count, so ``--iterations 5`` measures gradient matching's peak quickly.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import time
from pathlib import Path


def _stop(*_: object) -> None:
    raise SystemExit(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("batch", type=int)
    ap.add_argument("row")
    ap.add_argument("task")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--victims", type=int, default=16)
    ap.add_argument("--profiles", default="loihi2")
    ap.add_argument("--attack", default="suite_study")
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--train-epochs", type=int, default=5)
    args = ap.parse_args()
    from neurofl.runs.allocator import keep_freed_memory
    from neurofl.runs.threads import apply_thread_policy
    from neurofl.study.plan import StudyConfig, cell_tasks, plan_study
    from neurofl.study.tasks import open_cell, run_task

    apply_thread_policy(1)
    keep_freed_memory()  # as a study worker does (NEUROFL_KEEP_FREED_MEMORY=0: glibc's defaults)
    cfg = StudyConfig(out=args.out, datasets=args.dataset, batches=str(args.batch), victims=args.victims,
                      iterations=args.iterations, train_epochs=args.train_epochs, profiles=args.profiles,
                      attack=args.attack, device="cpu")  # fmt: skip
    (cell,) = plan_study(cfg).cells
    plan, _run = open_cell(cell.cfg)
    (task,) = [t for t in cell_tasks(cell, plan) if t.row_label == args.row and (t.recipe or t.kind) == args.task]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    signal.signal(signal.SIGTERM, _stop)
    t0 = time.perf_counter()
    try:
        status = run_task(task)["status"]
    except SystemExit:
        status = "stopped (peak so far)"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"dataset": args.dataset, "batch": args.batch, "victims": cell.cfg.victims, "row": args.row,
                      "task": args.task, "status": status, "seconds": round(time.perf_counter() - t0, 1),
                      "rss_before_task_mb": round(before), "peak_rss_mb": round(peak)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
