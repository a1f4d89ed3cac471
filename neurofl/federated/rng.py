"""Per-purpose random streams derived from the run's seed.

Every random choice of a run (client sampling, a client's minibatches, its input encoding, its
DP noise, stochastic rounding) is drawn from a stream keyed by (seed, purpose, round, client).
That is what makes a resumed run, a run on the Flower backend and a vectorized run draw the same
numbers as a sequential in-process run.
"""

from __future__ import annotations

import numpy as np
import torch

PURPOSES = {"sample": 1, "batch": 2, "encode": 3, "noise": 4, "rounding": 5, "partition": 6}


def _key(seed: int, purpose: str, round_: int, client: int) -> list[int]:
    return [seed, PURPOSES[purpose], round_, client + 1]


def numpy_rng(seed: int, purpose: str, round_: int = 0, client: int = -1) -> np.random.Generator:
    """A numpy generator for one (purpose, round, client)."""
    return np.random.default_rng(_key(seed, purpose, round_, client))


def torch_gen(seed: int, purpose: str, round_: int = 0, client: int = -1) -> torch.Generator:
    """A torch CPU generator for one (purpose, round, client)."""
    s = int(np.random.SeedSequence(_key(seed, purpose, round_, client)).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(s & ((1 << 63) - 1))


def sample_clients(seed: int, round_: int, clients: int, per_round: int) -> list[int]:
    """The sorted ids of the ``per_round`` clients that take part in ``round_``."""
    return sorted(numpy_rng(seed, "sample", round_).choice(clients, per_round, replace=False).tolist())
