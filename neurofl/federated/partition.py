"""Split the clients' data among federated clients: IID or Dirichlet label skew."""

from __future__ import annotations

import numpy as np

from neurofl.errors import UserError
from neurofl.leakage.victims import iid_partition


def iid(n: int, clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle ``n`` sample indices and deal them into ``clients`` near-equal parts.

    Returns ``clients`` sorted int64 index arrays that are disjoint and cover ``range(n)``.
    """
    if clients > n:
        raise UserError(f"--clients {clients}: more clients than the {n} training samples (each needs one)")
    return iid_partition(n, clients, rng)


def dirichlet(labels: np.ndarray, clients: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Label-skewed split (Hsu et al. 2019): each class is divided among the clients in
    proportions drawn from Dirichlet(alpha); small ``alpha`` gives each client few classes.

    Every client gets at least one sample (a client that would be empty takes one sample from
    the largest client), so the parts stay disjoint and cover ``range(len(labels))``.

    labels : (n,) int class labels. Returns ``clients`` sorted int64 index arrays.
    """
    n = len(labels)
    if clients > n:
        raise UserError(f"--clients {clients}: more clients than the {n} training samples (each needs one)")
    parts: list[list[int]] = [[] for _ in range(clients)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        share = rng.dirichlet(np.full(clients, alpha))
        cuts = (np.cumsum(share)[:-1] * len(idx)).round().astype(int)
        for k, chunk in enumerate(np.split(idx, cuts)):
            parts[k].extend(chunk.tolist())
    for k in range(clients):
        if not parts[k]:
            donor = max(range(clients), key=lambda j: len(parts[j]))
            parts[k].append(parts[donor].pop())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def partition(
    labels: np.ndarray, clients: int, how: str, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Dispatch on ``how`` (``iid`` or ``dirichlet``)."""
    if how == "iid":
        return iid(len(labels), clients, rng)
    return dirichlet(labels, clients, alpha, rng)


def label_skew(labels: np.ndarray, parts: list[np.ndarray], classes: int) -> float:
    """Mean total-variation distance between each client's label histogram and the global one
    (0 for a perfectly balanced split, towards 1 as clients hold single classes)."""
    glob = np.bincount(labels, minlength=classes) / len(labels)
    tv = [0.5 * np.abs(np.bincount(labels[p], minlength=classes) / len(p) - glob).sum() for p in parts]
    return float(np.mean(tv))
