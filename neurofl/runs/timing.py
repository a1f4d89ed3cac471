"""What the variant benchmarks in ``scripts/`` share: interleaved median timings and the machine's
thread settings, as their JSON records them."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any


def machine_info() -> dict[str, Any]:
    """The machine a benchmark ran on: CPUs, architecture, torch, its threads and the variables
    that set them."""
    import torch

    return {"cpus": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            **{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "NEUROFL_THREADS")}}  # fmt: skip


def time_variants(
    call: Callable[[], Any], variant: Callable[[str], AbstractContextManager[Any]], names: tuple[str, ...],
    repeats: int,
) -> dict[str, float]:  # fmt: skip
    """Median CPU and wall seconds of ``call()`` inside ``variant(name)`` for each name, the
    variants interleaved ``repeats`` times (so a change of load hits them alike).

    Returns ``{f"{name}_cpu_seconds": ..., f"{name}_wall_seconds": ...}``.

    >>> from contextlib import nullcontext
    >>> sorted(time_variants(lambda: None, lambda _n: nullcontext(), ("a",), 1))
    ['a_cpu_seconds', 'a_wall_seconds']
    """
    times: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for _ in range(repeats):
        for n in names:
            with variant(n):
                cpu0, wall0 = time.process_time(), time.perf_counter()
                call()
                times[n].append((time.process_time() - cpu0, time.perf_counter() - wall0))
    return {f"{n}_{kind}_seconds": statistics.median(t[i] for t in times[n])
            for n in names for i, kind in enumerate(("cpu", "wall"))}  # fmt: skip
