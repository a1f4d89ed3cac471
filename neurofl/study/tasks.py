"""What one task of a study computes, in whatever process runs it (this one, or a Ray worker).

Each task starts from its cell's :class:`~neurofl.pipelines.evaluate.EvaluatePlan` (rebuilt from the cell's
settings in the worker and kept for the next task of the same cell) and from the cell's run folder,
which the driver opened before any task ran (a task refuses a folder whose ``config.json`` is
missing or belongs to other settings: a node that does not see the study's ``--out`` fails loudly
instead of writing elsewhere).

- ``recipe``: one recipe on one row, through :func:`neurofl.leakage.rows.attack_row` (the same chunk
  files ``evaluate`` writes and resumes from), after :func:`neurofl.pipelines.evaluate.row_target` (the one
  path to what the server attacks).
- ``utility``: :func:`neurofl.pipelines.evaluate.utility_row` (its ``utility.json`` cache), through the
  study's ``utilities`` folder, so a row's model is trained once for all batch sizes.
- ``report``: :func:`neurofl.pipelines.evaluate.run_evaluate` on the cell, which finds every chunk and
  utility computed and only scores the rows and writes report.json / report.md; returns the cell's
  study summary (:func:`neurofl.study.render.cell_summary`).

**Two tasks of one row.** Tasks of the same row run side by side and share its store. Every file is
written atomically (a temporary file renamed into place, :mod:`neurofl.io.atomic`), and each file has
one writer except two: a recipe's chunks and its per-row state (the learned inverter's
``state.pt``) are written only by that recipe's task, ``utility.json`` only by the row's utility
task. The row's recovered labels (``labels.npz``) are written by whichever recipe task that needs
them gets there first, and a shared utility (``OUT/utilities/``) by whichever cell's utility task
of that row; each is a deterministic function of its inputs (same model, data and seed), so two
tasks that both compute it write the same content and the last rename wins; a reader sees the old
file, the new one or none, never a part.
The study attacks round 1, so no task trains the row's federated rounds (``evaluate --round R``
checkpoints them under the row, a file no two study tasks share).
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from typing import Any

from neurofl.pipelines.evaluate import EvaluateConfig, EvaluatePlan
from neurofl.study.plan import Task

_PLANS: OrderedDict[EvaluateConfig, EvaluatePlan] = OrderedDict()
_KEEP = 2  # plans kept per process (a cell's tasks mostly follow one another)


def cell_plan(cfg: EvaluateConfig) -> EvaluatePlan:
    """The cell's plan, built once per process (the dataset, splits, victims, rows)."""
    from neurofl.pipelines.evaluate import plan_evaluation

    if cfg not in _PLANS:
        _PLANS[cfg] = plan_evaluation(cfg)
        while len(_PLANS) > _KEEP:
            _PLANS.popitem(last=False)
    _PLANS.move_to_end(cfg)
    return _PLANS[cfg]


def open_cell(cfg: EvaluateConfig) -> tuple[EvaluatePlan, Any]:
    """The driver's side: plan the cell and claim its run folder (``config.json`` written, or an
    existing one of the same settings resumed; another run's folder refused with one line)."""
    from neurofl.runs.runfolder import RunFolder

    plan = cell_plan(cfg)
    return plan, RunFolder(plan.cfg.out, plan.fingerprint()).claim()


def _folder(plan: EvaluatePlan) -> Any:
    """The cell's run folder as the driver left it: refused if its ``config.json`` is missing or
    holds other settings."""
    from neurofl.runs.runfolder import RunFolder

    run = RunFolder(plan.cfg.out, plan.fingerprint())
    theirs = run.existing()
    if theirs is None:
        raise RuntimeError(f"{run.config_path} is missing: the study's --out is not visible here (use a shared folder)")
    if theirs != run.fingerprint:
        raise RuntimeError(f"{run.config_path} holds other settings than this task's cell")
    return run


def _row(plan: EvaluatePlan, key: str) -> Any:
    return next(r for r in plan.rows if r.key == key)


def recipe_task(task: Task) -> dict[str, Any]:
    """One recipe on one row; ``status``: ``computed``, ``cached`` (every chunk was there) or
    ``not_applicable`` (with ``reason``)."""
    from neurofl.attacks.registry import why_not
    from neurofl.leakage.rows import attack_row
    from neurofl.pipelines.evaluate import row_store, row_target
    from neurofl.study.plan import task_done

    plan = cell_plan(task.cell.cfg)
    run = _folder(plan)
    row = _row(plan, task.row)
    recipe = next(r for r in plan.recipes if r.name == task.recipe)
    store = row_store(run, row)
    target, _ = row_target(row, plan.arch, plan.ds, plan.splits, plan.victims, plan.cfg, store)
    reason = why_not(target, recipe)
    if reason is not None:
        return {"status": "not_applicable", "reason": reason}
    cached = task_done(task, plan, run)
    attack_row(target, [recipe], store, plan.cfg.seed, plan.victims.y, task.row_label)
    return {"status": "cached" if cached else "computed"}


def utility_task(task: Task) -> dict[str, Any]:
    """One row's utility (test accuracy of the model trained under its profile, energy): trained
    once per study for all the cells it is the same in (``task.cell.utilities``). ``status``:
    ``cached`` where the cell had it already, else ``computed`` (also where another cell's training
    supplied it: which cell trains first depends on the order the workers take tasks in)."""
    from neurofl.pipelines.evaluate import row_store, shared_utility_path, utility_row
    from neurofl.study.plan import task_done

    plan = cell_plan(task.cell.cfg)
    run = _folder(plan)
    cached = task_done(task, plan, run)
    row = _row(plan, task.row)
    shared = shared_utility_path(task.cell.utilities, row, plan.ds, plan.cfg)
    utility_row(row, plan.arch, plan.splits, plan.cfg, row_store(run, row).dir, shared)
    return {"status": "cached" if cached else "computed"}


def report_task(task: Task) -> dict[str, Any]:
    """The cell's report (everything computed: scoring only) and its study summary."""
    from neurofl.pipelines.evaluate import run_evaluate
    from neurofl.study.render import cell_summary

    report = run_evaluate(dataclasses.replace(task.cell.cfg, workers=1))
    cell = cell_summary(report)
    cell["attack_seconds"] = sum(r["phases"]["attacks"] for r in report["results"])  # kept across resumes
    return {"status": "reported", "cell": cell}


RUNS = {"recipe": recipe_task, "utility": utility_task, "report": report_task}


def run_task(task: Task) -> dict[str, Any]:
    """Run ``task`` here, on one BLAS thread (numpy's linear algebra rounds differently with another
    thread count, and a Ray worker has one): the same numbers in process and on Ray. Returns its
    outcome with ``seconds`` (this process's wall time for it). The memory it freed goes back to
    the kernel afterwards (:func:`neurofl.runs.allocator.release_freed_memory`)."""
    from threadpoolctl import threadpool_limits

    from neurofl.runs.allocator import release_freed_memory

    t0 = time.perf_counter()
    try:
        with threadpool_limits(limits=1):
            out = RUNS[task.kind](task)
    finally:
        release_freed_memory()
    out["seconds"] = time.perf_counter() - t0
    return out


def run_in_worker(task: Task) -> dict[str, Any]:
    """:func:`run_task` in a Ray worker: one torch thread (:mod:`neurofl.runs.threads`), freed memory
    kept for reuse (:mod:`neurofl.runs.allocator`), the node recorded."""
    import ray

    from neurofl.runs.allocator import keep_freed_memory
    from neurofl.runs.threads import apply_thread_policy

    apply_thread_policy(1)
    keep_freed_memory()
    out = run_task(task)
    out["node"] = ray.get_runtime_context().get_node_id()
    return out
