"""CIFAR-100 from the official ``cifar-100-python`` folder (Krizhevsky 2009).

The files are Python pickles, and unpickling runs code: they are read only from the data dir
the user names, never fetched implicitly (``--download`` runs torchvision's downloader, which
checks the archive's MD5).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from neurofl.data.base import Dataset
from neurofl.data.limits import cap_per_class
from neurofl.data.paths import missing_message, optional_data_dir, resolve_data_dir
from neurofl.errors import UserError

FOLDER = "cifar-100-python"
FILES = ("train", "test", "meta")
CLASSES = 100


def cifar100_available(data_dir: Path | None) -> bool:
    root = optional_data_dir(data_dir)
    return root is not None and all((root / FOLDER / f).is_file() for f in FILES)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise UserError(f"{path}: not a cifar-100-python pickle ({type(e).__name__})") from None


def load_cifar100(data_dir: Path | None, download: bool, max_per_class: int | None = None) -> Dataset:
    """Train and test batches concatenated, fine labels (100 classes), scaled to [0, 1].

    Returns x: (N, 3, 32, 32) float32, y: (N,) int64.
    """
    root = resolve_data_dir(data_dir, "cifar100")
    if not cifar100_available(root) and download:
        import torchvision.datasets as tvd

        tvd.CIFAR100(str(root), train=True, download=True)
    if not cifar100_available(root):
        raise UserError(missing_message("cifar100", root / FOLDER, list(FILES)))
    xs, ys = [], []
    for name in ("train", "test"):
        d = _unpickle(root / FOLDER / name)
        if b"data" not in d or b"fine_labels" not in d:
            raise UserError(f"{root / FOLDER / name}: lacks the keys 'data' and 'fine_labels'")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"fine_labels"], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
            raise UserError(f"{root / FOLDER / name}: data {data.shape} is not (N, 3072) for {len(labels)} labels")
        xs.append(data.reshape(-1, 3, 32, 32))  # rows hold the R, G, B planes, each row-major
        ys.append(labels)
    x = np.concatenate(xs).astype(np.float32) / 255.0
    y = np.concatenate(ys)
    if y.min() < 0 or y.max() >= CLASSES:
        raise UserError(f"{root / FOLDER}: fine labels outside 0..{CLASSES - 1}")
    keep = cap_per_class(y, max_per_class)
    return Dataset("cifar100", x[keep], y[keep], CLASSES, "image", f"CIFAR-100 (cifar-100-python) from {root / FOLDER}")
