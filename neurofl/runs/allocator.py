"""Freed memory kept by the process for reuse: one allocator policy for every command and study worker.

glibc's ``malloc`` serves each block above its mmap threshold (32 MiB at most) with a fresh ``mmap`` and
returns it to the kernel when it is freed, so the next such block faults every page in again and the
kernel zero-fills each one. The attacks allocate and free tensors of 40 MiB to 1 GiB at every step (a
conv SNN's per-sample gradient graph at batch 16, the learned inverter's weight gradient and optimizer
temporaries): on a 2-core machine about half of a matching step's time was the kernel's
(``scripts/bench_allocator.py``, ``results/bench_allocator.json``).

:func:`keep_freed_memory` asks glibc to serve every block from its heap (``M_MMAP_MAX`` 0) and never to
give the heap back (``M_TRIM_THRESHOLD`` -1), so a freed block is reused without faults. What is
computed does not change (where a tensor lives never changes the arithmetic on it); the cost is that
a process keeps the heap of its peak, above that peak where blocks fragment (the benchmark records
both peaks), until it exits or calls :func:`release_freed_memory`, as a study's worker does after
each task. ``NEUROFL_KEEP_FREED_MEMORY=0`` leaves glibc's defaults. Elsewhere than
glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Mapping

from neurofl.errors import UserError

ENV = "NEUROFL_KEEP_FREED_MEMORY"
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4


def keep_freed_memory(env: Mapping[str, str] = os.environ) -> bool:
    """Ask glibc's allocator to keep freed memory for reuse (see the module), unless ``env`` says
    ``NEUROFL_KEEP_FREED_MEMORY=0``; idempotent.

    Returns whether the policy is in effect: False where turned off or the C library is not glibc.

    >>> keep_freed_memory({"NEUROFL_KEEP_FREED_MEMORY": "0"})
    False
    """
    setting = env.get(ENV, "1").strip()
    if setting not in ("0", "1", ""):
        raise UserError(f"{ENV}={env[ENV]!r}: expected 0 (glibc's defaults) or 1 (keep freed memory)")
    libc = _glibc()
    if setting == "0" or libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, -1))


def release_freed_memory() -> bool:
    """Give the heap's free memory back to the kernel (glibc's ``malloc_trim``): between a worker's
    tasks, so that a worker holds what its next task needs, not the largest task it ran. Returns
    whether any was released (False elsewhere than glibc)."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


def on_glibc() -> bool:
    """Whether this process's C library is glibc."""
    return _glibc() is not None


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """This process's C library where it is glibc (only glibc has ``gnu_get_libc_version``; musl's
    ``mallopt`` does nothing), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None
