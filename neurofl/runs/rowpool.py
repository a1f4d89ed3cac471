"""A report's rows computed side by side, one forked worker process per CPU.

The rows of ``evaluate`` (ann@float32, snn@float32, snn@<profile>...) share nothing while they are
attacked: each builds its model from the seed, writes only under its own row folder and returns its
report row. One torch thread per process and one process per core is the policy
(:mod:`neurofl.runs.threads`): on the idle 2-core machine the quickstart's three rows take 165 s of row
time in 101-117 s of wall time (``results/bench_quickstart.json``).

Workers are forked (POSIX), so they start at once with everything imported and inherit the job;
nothing is pickled on the way in; progress calls, results and exceptions come back as messages on
one queue, read by the parent, which calls the progress callback itself. Results are returned in
row order and equal the sequential ones (each row seeds its own random state;
tests/core/test_rowpool.py).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from neurofl.runs.memory import divided

T = TypeVar("T")
Job = Callable[[int, Callable[..., None] | None], T]

# What a forked worker runs: (job, message queue, torch threads, report progress?); set before forking.
_WORK: tuple[Job[Any], Any, int, bool] | None = None
_POLL_SECONDS = 0.5  # how often the parent wakes to notice Ctrl-C while waiting (no deadline)


def cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(rows: int) -> int:
    """One worker per row, at most one per CPU (1 where processes cannot be forked)."""
    if "fork" not in mp.get_all_start_methods():
        return 1
    return max(1, min(rows, cpus()))


def _die_with_parent(parent: int) -> None:
    """First thing in a worker: it is killed when its parent dies, even by SIGKILL (Linux), so a
    killed ``evaluate`` leaves no worker writing into its run folder."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (AttributeError, OSError):  # not Linux: the parent's terminate() still ends the pool
        pass
    if os.getppid() != parent:  # the parent died before the call above
        os._exit(1)


def _child(i: int, parent: int) -> None:
    """A worker: row ``i``, its progress and its result (or its exception, whatever it is) sent to
    the parent as messages; nothing it raises is lost with the process."""
    import pickle

    import torch

    _die_with_parent(parent)
    assert _WORK is not None, "map_rows sets the work before it forks"
    job, messages, threads, with_progress = _WORK
    torch.set_num_threads(threads)
    report = (lambda *args: messages.put(("progress", i, args))) if with_progress else None
    try:
        messages.put(("done", i, job(i, report)))
    except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt and SystemExit reach the parent too
        try:
            pickle.dumps(e)
        except Exception:  # noqa: BLE001 - an exception that cannot cross processes is described instead
            e = RuntimeError(f"{type(e).__name__}: {e}")
        messages.put(("error", i, e))


def map_rows(job: Job[T], n: int, workers: int, on_progress: Callable[..., None] | None = None) -> list[T]:
    """``[job(i, on_progress) for i in range(n)]``, computed by up to ``workers`` forked processes.

    A worker's exception (a bad input, an interrupt) is raised here; a worker that dies without a
    word (killed, out of memory) raises RuntimeError. Either way the other workers are stopped.

    Parameters
    ----------
    job : called as ``job(row_index, progress)``; must be deterministic given the index.
    n : number of rows.
    workers : processes; 1 runs in this process.
    on_progress : called in this process with each progress call a worker makes.
    """
    global _WORK
    workers = max(1, min(workers, n))
    if workers == 1:
        return [job(i, on_progress) for i in range(n)]
    import queue

    import torch

    ctx = mp.get_context("fork")
    messages = ctx.Queue()
    _WORK = (job, messages, torch.get_num_threads(), on_progress is not None)
    todo = list(range(n))
    running: dict[int, BaseProcess] = {}
    results: dict[int, T] = {}
    try:
        while todo or running:
            while todo and len(running) < workers:
                i = todo.pop(0)
                running[i] = ctx.Process(target=_child, args=(i, os.getpid()), daemon=True)
                with divided(workers):  # each worker attacks under 1/workers of the memory budget
                    running[i].start()
            try:
                kind, i, payload = messages.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                # a worker's last message is in the pipe before it exits: one that is gone and
                # still silent after a further wait died without one
                gone = [i for i, p in running.items() if not p.is_alive()]
                if gone:
                    try:
                        kind, i, payload = messages.get(timeout=_POLL_SECONDS)
                    except queue.Empty:
                        code = running[gone[0]].exitcode
                        raise RuntimeError(f"the worker of row {gone[0]} died (exit code {code})") from None
                else:
                    continue
            if kind == "progress":
                if on_progress is not None:
                    on_progress(*payload)
            elif kind == "done":
                results[i] = payload
                running.pop(i).join()
            else:
                raise payload
        return [results[i] for i in range(n)]
    finally:
        for p in running.values():
            p.kill()
        for p in running.values():
            p.join()
        _WORK = None
