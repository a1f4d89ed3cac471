"""Bounding how many samples an on-disk dataset keeps in memory."""

from __future__ import annotations

import numpy as np


def cap_per_class(y: np.ndarray, max_per_class: int | None) -> np.ndarray:
    """Indices (sorted) of the first ``max_per_class`` samples of each class; all when None.

    y: (N,) int -> (M,) int64
    """
    if max_per_class is None:
        return np.arange(len(y))
    keep = [np.flatnonzero(y == c)[:max_per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(keep)) if keep else np.arange(0)
