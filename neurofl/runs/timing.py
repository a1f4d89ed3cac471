"""What the variant benchmarks in ``scripts/`` share: interleaved median timings of two variants of
each case, their outputs compared, and the record their JSON holds with the machine's thread
settings and load."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

Variant = Callable[[str], AbstractContextManager[Any]]  # a variant's name -> the context it runs in


def machine_info() -> dict[str, Any]:
    """The machine a benchmark ran on: CPUs, architecture, torch, its threads and the variables
    that set them."""
    import torch

    return {"cpus": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            **{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "NEUROFL_THREADS")}}  # fmt: skip


def time_variants(call: Callable[[], Any], variant: Variant, names: tuple[str, ...], repeats: int) -> dict[str, float]:
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


def compare_variants(
    cases: Mapping[str, Callable[[], tuple[Callable[[], Any], Variant]]], names: tuple[str, str], repeats: int,
    compare: Callable[[Any, Any], dict[str, Any]],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Each case (built when its turn comes: its call and its variants) run once untimed under each
    variant, so every allocation is made once and the outputs can be compared, then timed by
    :func:`time_variants`. Each row: the medians, ``f"{second}_over_{first}_cpu"`` (the CPU-time
    ratio from this run) and ``compare(first's output, second's)``; printed as it is done."""
    first, second = names
    results: dict[str, dict[str, Any]] = {}
    for name, build in cases.items():
        call, variant = build()
        outputs = {}
        for v in names:
            with variant(v):
                outputs[v] = call()
        row: dict[str, Any] = dict(time_variants(call, variant, names, repeats))
        row[f"{second}_over_{first}_cpu"] = row[f"{second}_cpu_seconds"] / row[f"{first}_cpu_seconds"]
        row.update(compare(outputs[first], outputs[second]))
        results[name] = row
        print(name, json.dumps(row), flush=True)
    return results


def variants_record(
    benchmark: str, command: str, names: tuple[str, str], results: dict[str, dict[str, Any]],
    load_before: tuple[float, ...], **settings: Any,
) -> dict[str, Any]:  # fmt: skip
    """The JSON record of :func:`compare_variants`' results: what ran, the machine, the load before
    and now, ``settings``, the rows, and each case's ratio as a top-level key."""
    first, second = names
    return {"benchmark": benchmark, "command": command, "machine": machine_info(),
            "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()), **settings,
            "results": results,
            **{f"ratio {name}, {second} / {first} (CPU s)": r[f"{second}_over_{first}_cpu"]
               for name, r in results.items()}}  # fmt: skip
