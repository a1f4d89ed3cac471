"""Pairing a reconstructed batch with the private batch it came from (best assignment)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def best_assignment(reconstructed: np.ndarray, original: np.ndarray, batch: int) -> np.ndarray:
    """Reorder each victim's reconstructions to minimize the batch's total squared error.

    A batch's gradient does not depend on the order of its samples, so the attacker's k-th
    sample need not be the victim's k-th. reconstructed, original: (victims * batch, ...) ->
    reconstructed reordered so that row i is paired with ``original[i]``.
    """
    if batch == 1:
        return reconstructed
    n = len(original)
    rec = reconstructed.reshape(n // batch, batch, -1).astype(np.float64)
    ori = original.reshape(n // batch, batch, -1).astype(np.float64)
    out = np.empty_like(reconstructed)
    for v in range(n // batch):
        cost = ((ori[v][:, None, :] - rec[v][None, :, :]) ** 2).sum(-1)  # (original, reconstruction)
        rows, cols = linear_sum_assignment(cost)
        out[v * batch + rows] = reconstructed[v * batch + cols]
    return out
