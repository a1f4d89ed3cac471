"""Run a study: plan it, open every cell's run folder, run its tasks here or on Ray, merge.

With one worker (the default) the tasks run one after another in this process and Ray is never
imported. With ``workers`` N > 1 they run on a private local Ray instance of N CPUs (started here,
shut down at the end, whatever happens); with ``ray_address`` on an existing Ray cluster (whose
nodes must see ``out`` and the data at the same paths). Each task asks for one CPU and runs with one
torch thread. A cell's report task is started as soon as its other tasks are done, so study.json,
study.md and study.png are rewritten cell by cell and a partial study is readable.

A task that raises is reported (study.json ``failed``: the task and its one-line error) and its
cell's report is not written; a task whose worker dies is retried by Ray (:data:`MAX_RETRIES`)
before it counts as failed. Nothing is dropped: ``tasks`` counts every task of the invocation by
outcome (``not_run``: the report of a cell with a failed task). Results are identified by content
and kept per task, so a rerun starts only the tasks whose files are missing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from neurofl.errors import UserError
from neurofl.runs.memory import ENV as MEMORY_ENV
from neurofl.study.plan import Cell, StudyConfig, Task, cell_tasks, plan_study, task_done

MAX_RETRIES = 2  # Ray re-runs a task whose worker died (killed, out of memory) this many times
GPU_SHARE = 0.25  # of a GPU per task on a CUDA device (a task's models are small)
OUTCOMES = ("computed", "cached", "not_applicable", "reported", "failed", "not_run")

EventFn = Callable[[str], None]


@dataclass
class StudyResult:
    """study.json's content, the failed tasks (``task``, ``error``) and the tasks by outcome."""

    study: dict[str, Any]
    failed: list[dict[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def one_line(e: BaseException) -> str:
    """An exception as one line: its type and its message's first line (a Ray task error: its cause's)."""
    cause = getattr(e, "cause", None) or e
    text = " ".join(str(cause).strip().splitlines()[:1]) if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}"[:300] if text else type(cause).__name__


class InProcess:
    """Tasks run here, one at a time, in the order they are submitted."""

    slots = 1
    where = "this process"

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def submit(self, task: Task) -> Task:
        return task

    def wait(self, handles: dict[Any, Task]) -> tuple[Any, dict[str, Any] | str]:
        from neurofl.study.tasks import run_task

        handle = next(iter(handles))
        try:
            return handle, run_task(handles[handle])
        except Exception as e:  # noqa: BLE001 - a task's failure is reported, never lost (Ctrl-C still stops)
            return handle, one_line(e)


class OnRay:
    """Tasks as Ray tasks: on a private local instance of ``workers`` CPUs, or on the cluster at
    ``address``."""

    def __init__(self, workers: int, address: str | None, gpu: bool):
        self.workers, self.address, self.gpu = workers, address, gpu
        self.slots = workers
        self.where = f"the Ray cluster at {address}" if address else f"a local Ray instance of {workers} CPUs"

    def __enter__(self) -> OnRay:
        import ray

        quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        with contextlib.redirect_stdout(sys.stderr):  # stdout stays clean
            if self.address is not None:
                path = os.pathsep.join([*sys.path, os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
                try:
                    env = {"PYTHONPATH": path}
                    if os.environ.get(MEMORY_ENV):  # an explicit --max-memory holds for every task
                        env[MEMORY_ENV] = os.environ[MEMORY_ENV]
                    ray.init(address=self.address, runtime_env={"env_vars": env}, **quiet)
                except (ConnectionError, ValueError, RuntimeError) as err:
                    why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    raise UserError(f"--ray-address {self.address}: cannot connect to a Ray cluster there ({why})") \
                        from None  # fmt: skip
            else:
                # "local": a new instance even where `ray start` left one running on this machine.
                # Ray nices its workers to 15; on a busy machine they would crawl (neurofl/federated/flower.py).
                ray.init(address="local", num_cpus=self.workers, _system_config={"worker_niceness": 0}, **quiet)
        try:
            self.slots = max(1, int(ray.cluster_resources().get("CPU", self.workers)))
            from neurofl.study.tasks import run_in_worker

            remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(run_in_worker)
            self.remote = remote.options(num_gpus=GPU_SHARE) if self.gpu else remote
        except BaseException:
            ray.shutdown()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()

    def submit(self, task: Task) -> Any:
        return self.remote.remote(task)

    def wait(self, handles: dict[Any, Task]) -> tuple[Any, dict[str, Any] | str]:
        import ray

        ready, _ = ray.wait(list(handles), num_returns=1)
        try:
            return ready[0], ray.get(ready[0])
        except Exception as e:  # noqa: BLE001 - the task's error (or its worker's death after the retries)
            return ready[0], one_line(e)


@dataclass
class _CellState:
    cell: Cell
    tasks: int  # tasks still to finish (the report task not counted)
    report: Task
    started: float | None = None
    failed: int = 0


def _open_cells(cells: list[Cell], on_event: EventFn) -> tuple[list[Task], list[_CellState], dict[str, int]]:
    """Claim every cell's run folder (before any task runs) and list the tasks not already done.
    A refused folder abandons the folders this call created."""
    from neurofl.study.tasks import open_cell

    todo: list[tuple[int, list[Task]]] = []
    states: list[_CellState] = []
    counts = dict.fromkeys(OUTCOMES, 0)
    claimed = []
    try:
        for cell in cells:
            plan, run = open_cell(cell.cfg)
            claimed.append(run)
            tasks = cell_tasks(cell, plan)
            work = [t for t in tasks[:-1] if not task_done(t, plan, run)]
            counts["cached"] += len(tasks) - 1 - len(work)
            todo.append((cell.batch * math.prod(plan.ds.input_shape), work))
            states.append(_CellState(cell, len(work), tasks[-1]))
            on_event(f"{cell.name}: {cell.cfg.victims} victims, {len(plan.rows)} rows x {len(plan.recipes)} recipes; "
                     f"{len(work)} of {len(tasks) - 1} tasks to run")  # fmt: skip
    except UserError:
        for run in claimed:
            run.abandon()
        raise
    # the largest cells first (samples per update x values per sample, a proxy for a task's cost): on N
    # workers the short cells fill in at the end instead of one long cell running alone (the order of
    # the tasks does not change their results)
    return [t for _, work in sorted(todo, key=lambda c: -c[0]) for t in work], states, counts


def _schedule(
    executor: Any, todo: list[Task], states: list[_CellState], on_done: Callable[[Task, dict[str, Any] | str], None]
) -> None:
    """Run ``todo``, then each cell's report task once its other tasks are done (a ready report goes
    before any queued task, so a cell is reported as soon as it can be); at most twice the
    executor's slots in flight (a report waits for no long queue)."""
    by_cell = {s.cell: s for s in states}
    reports = [s.report for s in states if s.tasks == 0]
    queue = list(todo)
    running: dict[Any, Task] = {}
    limit = 1 if executor.slots == 1 else 2 * executor.slots
    while queue or reports or running:
        while (reports or queue) and len(running) < limit:
            task = reports.pop(0) if reports else queue.pop(0)
            state = by_cell[task.cell]
            state.started = time.perf_counter() if state.started is None else state.started
            running[executor.submit(task)] = task
        handle, outcome = executor.wait(running)
        task = running.pop(handle)
        on_done(task, outcome)
        state = by_cell[task.cell]
        if task.kind != "report":
            state.tasks -= 1
            state.failed += isinstance(outcome, str)
            if state.tasks == 0 and not state.failed:
                reports.append(state.report)


def run_study(cfg: StudyConfig, on_event: EventFn | None = None) -> StudyResult:
    """Run the study of ``cfg``; writes ``cfg.out``/study.json, study.md and study.png (after each
    cell and at the end) and each cell's evaluation under ``cfg.out/<dataset>/batch<B>/``.

    Returns the study, its failed tasks and its tasks by outcome; refuses bad settings (and a cell
    folder that holds another run) with :class:`UserError` before any task runs."""
    from neurofl.io.atomic import atomic_write_bytes
    from neurofl.report import write_json
    from neurofl.study.ablations import ablation_pngs, ablation_summary
    from neurofl.study.render import study_markdown, study_png

    say = on_event or (lambda _text: None)
    t0 = time.perf_counter()
    plan = plan_study(cfg)
    for entry in plan.entries.values():
        for why in entry["skipped_batches"]:
            say(f"{entry['dataset']}: batch {why}: skipped")
    todo, states, counts = _open_cells(plan.cells, say)
    total = sum(counts.values()) + len(todo) + len(states)
    failed: list[dict[str, str]] = []
    nodes: set[str] = set()
    if cfg.ray_address is None and cfg.workers == 1:
        executor: Any = InProcess()
    else:
        executor = OnRay(cfg.workers, cfg.ray_address, plan.header["device"] == "cuda")

    def study() -> dict[str, Any]:
        datasets = [*plan.entries.values(), *plan.earlier.values()]
        ablations = {"ablations": ablation_summary(datasets, plan.header["ablate"])} if "ablate" in plan.header else {}
        return {**plan.header, "datasets": datasets, **ablations,
                "tasks": {"total": total, **counts}, "failed": failed,
                "execution": {"workers": cfg.workers, "ray_address": cfg.ray_address, "where": executor.where,
                              "nodes": len(nodes) or 1, "wall_seconds": time.perf_counter() - t0}}  # fmt: skip

    def save() -> None:  # after each cell, so a partial study is readable
        whole = study()
        cfg.out.mkdir(parents=True, exist_ok=True)
        write_json(cfg.out / "study.json", whole)
        atomic_write_bytes(cfg.out / "study.md", study_markdown(whole).encode())
        study_png(cfg.out / "study.png", whole)
        if whole.get("ablations"):
            ablation_pngs(cfg.out, whole["ablations"])

    done = sum(counts.values())

    def on_done(task: Task, outcome: dict[str, Any] | str) -> None:
        nonlocal done
        done += 1
        if isinstance(outcome, str):
            counts["failed"] += 1
            failed.append({"task": task.name, "error": outcome})
            say(f"[{done}/{total}] {task.name}: FAILED: {outcome}")
            return
        counts[outcome["status"]] += 1
        nodes.add(outcome.get("node", "local"))
        say(f"[{done}/{total}] {task.name}: {outcome['status']} ({outcome['seconds']:.1f} s)")
        if task.kind == "report":
            cell = outcome["cell"]
            state = next(s for s in states if s.cell == task.cell)
            cell["wall_seconds"] = time.perf_counter() - (state.started or t0)  # this invocation's
            entry = plan.entries[task.cell.dataset]
            entry["cells"] = sorted([*[c for c in entry["cells"] if c["batch"] != cell["batch"]], cell],
                                    key=lambda c: c["batch"])  # fmt: skip
            save()

    if todo or states:
        say(f"{len(todo) + len(states)} tasks on {executor.where}")
        with executor:
            _schedule(executor, todo, states, on_done)
    for s in states:
        if s.failed:
            counts["not_run"] += 1  # the report of a cell with a failed task
            say(f"{s.cell.name}: report not written ({s.failed} of its tasks failed)")
    save()
    return StudyResult(study(), failed, dict(counts))

