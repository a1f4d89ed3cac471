"""A report's rows computed side by side, one forked worker process per CPU.

The rows of ``evaluate`` (ann@float32, snn@float32, snn@<profile>...) share nothing while they are
attacked: each builds its model from the seed, writes only under its own row folder and returns its
report row. neurofl's models are small, so one process gains little from a second torch thread
(``results/bench_threads.json``) but gains nearly 2x from a second process on a 2-core machine.

Workers are forked (POSIX), so they start at once with everything imported and inherit the job;
nothing is pickled on the way in, the results come back pickled. Progress calls made in a worker
are passed to the parent's callback through a queue. Results are returned in row order and equal
the sequential ones (each row seeds its own random state; tests/core/test_rowpool.py).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
Job = Callable[[int, Callable[..., None] | None], T]

# What a forked worker runs: (job, progress queue or None, torch threads); set just before the fork.
_WORK: tuple[Job, Any, int] | None = None
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
    """Pool initializer: a worker is killed when its parent dies, even by SIGKILL (Linux), so a
    killed ``evaluate`` leaves no worker writing into its run folder."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (AttributeError, OSError):  # not Linux: the parent's terminate() still ends the pool
        pass
    if os.getppid() != parent:  # the parent died before the call above
        os._exit(1)


def _run(i: int) -> Any:
    import torch

    job, queue, threads = _WORK
    torch.set_num_threads(threads)
    report = None if queue is None else (lambda *args: queue.put(args))
    return job(i, report)


def map_rows(job: Job, n: int, workers: int, on_progress: Callable[..., None] | None = None) -> list[T]:
    """``[job(i, on_progress) for i in range(n)]``, computed by up to ``workers`` forked processes.

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
    import torch

    ctx = mp.get_context("fork")
    queue = ctx.SimpleQueue() if on_progress is not None else None
    _WORK = (job, queue, torch.get_num_threads())
    pool = ctx.Pool(workers, initializer=_die_with_parent, initargs=(os.getpid(),))
    drain = None
    try:
        if queue is not None:  # started after the fork: the workers inherit no thread
            drain = threading.Thread(target=_drain, args=(queue, on_progress), daemon=True)
            drain.start()
        pending = pool.map_async(_run, range(n), chunksize=1)
        while not pending.ready():
            pending.wait(_POLL_SECONDS)
        results = pending.get()
        pool.close()
        pool.join()
        if drain is not None:  # every worker has exited, so every progress call is queued
            queue.put(None)
            drain.join()
        return results
    finally:
        pool.terminate()
        pool.join()
        _WORK = None


def _drain(queue: Any, on_progress: Callable[..., None]) -> None:
    """Pass queued progress calls to ``on_progress`` until the sentinel None."""
    while (item := queue.get()) is not None:
        on_progress(*item)
