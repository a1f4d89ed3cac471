"""Datasets that ship inside installed packages: no file, no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurofl.data.base import Dataset


def load_digits(data_dir: Path | None = None, download: bool = False) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), scaled to [0, 1].

    Returns x: (1797, 1, 8, 8) float32, y: (1797,) int64.
    """
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return Dataset(
        "digits", x, d.target.astype(np.int64), 10, "image", "scikit-learn load_digits (UCI ML hand-written digits)"
    )
