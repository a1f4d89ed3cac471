"""How many threads torch's CPU operators use: one policy for every command.

neurofl's models are small (tens of thousands of weights, batches of a few dozen victims).
``scripts/bench_threads.py`` (``results/bench_threads.json``, 2 cores): on an idle machine one process
runs 1.2-2.1x faster with a second intra-op thread, but beside one CPU-bound process the second
thread makes attacks 5.3-5.6x slower. :data:`DEFAULT_THREADS` is 1; ``evaluate`` uses the other core
with a second row process (:mod:`neurofl.runs.rowpool`) instead.

Precedence: ``neurofl --threads N``, then the environment variable ``NEUROFL_THREADS``, then an
explicit ``OMP_NUM_THREADS`` (torch already follows it), then :data:`DEFAULT_THREADS`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from neurofl.errors import UserError

DEFAULT_THREADS = 1
MAX_THREADS = 1024
ENV = "NEUROFL_THREADS"


def thread_count(option: int | None, env: Mapping[str, str] = os.environ) -> int | None:
    """The intra-op thread count to set, or None to leave torch's (``OMP_NUM_THREADS``) as it is.

    >>> thread_count(None, {})
    1
    >>> thread_count(None, {"OMP_NUM_THREADS": "2"}) is None
    True
    >>> thread_count(4, {"NEUROFL_THREADS": "2"})
    4
    """
    if option is not None:
        return _checked(option, "--threads")
    if env.get(ENV, "").strip():
        try:
            return _checked(int(env[ENV]), ENV)
        except ValueError:
            raise UserError(f"{ENV}={env[ENV]!r}: expected an integer number of threads") from None
    if env.get("OMP_NUM_THREADS", "").strip():
        return None
    return DEFAULT_THREADS


def _checked(n: int, where: str) -> int:
    if not 1 <= n <= MAX_THREADS:
        raise UserError(f"{where}={n}: expected 1 to {MAX_THREADS} threads")
    return n


def apply_thread_policy(option: int | None) -> int:
    """Set torch's intra-op threads by the policy above; returns the count in effect."""
    import torch

    n = thread_count(option)
    if n is not None:
        torch.set_num_threads(n)
    return torch.get_num_threads()
