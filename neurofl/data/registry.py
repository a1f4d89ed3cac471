"""The dataset registry: a plain table of every loader (one line each), how to load a dataset by
name, and how to tell whether its files are present.

On-disk image datasets keep at most ``IMAGES_PER_CLASS`` images per class in memory (the
attack needs few victims; the oracle and the models train on the rest); event datasets bin at
most ``FrameOptions.max_per_class`` recordings per class (see each layout).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from neurofl.data.base import Dataset, DatasetInfo
from neurofl.data.cifar import cifar100_available, load_cifar100
from neurofl.data.dvs_digits import load_dvs_digits
from neurofl.data.embedded import load_digits
from neurofl.data.events import FrameOptions
from neurofl.data.faces import load_faces
from neurofl.data.idx import FASHION_MNIST, MNIST, idx_available, load_idx_dataset
from neurofl.data.lfw import LfwOptions, lfw_available, load_lfw
from neurofl.data.tonic_layouts import DVS_GESTURE, NMNIST_LAYOUT, events_available, load_event_dataset
from neurofl.errors import UserError

IMAGES_PER_CLASS = 1000


def _frames(f: FrameOptions) -> str:
    return f"2x{f.height}x{f.width}x{f.bins} events"


_mnist = partial(load_idx_dataset, MNIST, max_per_class=IMAGES_PER_CLASS)
_fashion = partial(load_idx_dataset, FASHION_MNIST, max_per_class=IMAGES_PER_CLASS)
_cifar100 = partial(load_cifar100, max_per_class=IMAGES_PER_CLASS)
_lfw = partial(load_lfw, options=LfwOptions())
_gesture = partial(load_event_dataset, DVS_GESTURE)
_nmnist = partial(load_event_dataset, NMNIST_LAYOUT)
_LFW_CLASSES = f"identities with >= {LfwOptions().min_faces} images"
_GESTURE_SHAPE, _NMNIST_SHAPE = _frames(DVS_GESTURE.frames), _frames(NMNIST_LAYOUT.frames)

# name -> entry; the one list of datasets neurofl knows
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", "scikit-learn load_digits (bundled)", True, load_digits, "1x8x8", "10"),
        DatasetInfo("faces", "scikit-image lfw_subset (bundled)", True, load_faces, "1x25x25", "2: face, non-face"),
        DatasetInfo("dvs-digits", "digits via the DVS emulator", True, load_dvs_digits, "2x20x20x16 events", "10"),
        DatasetInfo("mnist", "IDX files <data>/mnist/", False, _mnist, "1x28x28", "10"),
        DatasetInfo("fashion-mnist", "IDX <data>/fashion-mnist/ or Debian's", False, _fashion, "1x28x28", "10"),
        DatasetInfo("cifar100", "<data>/cifar-100-python/ (pickle)", False, _cifar100, "3x32x32", "100"),
        DatasetInfo("lfw", "fetch_lfw_people cache <data>/lfw_home/", False, _lfw, "1x31x23", _LFW_CLASSES),
        DatasetInfo("dvs128-gesture", "tonic layout <data>/DVSGesture/", False, _gesture, _GESTURE_SHAPE, "11"),
        DatasetInfo("nmnist", "tonic layout <data>/NMNIST/", False, _nmnist, _NMNIST_SHAPE, "10"),
    )
}

# name -> whether the files of an on-disk dataset are present under a data dir (None: $NEUROFL_DATA)
AVAILABLE: dict[str, Callable[[Path | None], bool]] = {
    "mnist": partial(idx_available, MNIST),
    "fashion-mnist": partial(idx_available, FASHION_MNIST),
    "cifar100": cifar100_available,
    "lfw": lfw_available,
    "dvs128-gesture": partial(events_available, DVS_GESTURE),
    "nmnist": partial(events_available, NMNIST_LAYOUT),
}


def is_available(info: DatasetInfo, data_dir: Path | None) -> bool:
    """Embedded datasets always are; on-disk ones when their files are under the data dir."""
    return info.embedded or AVAILABLE[info.name](data_dir)


def available_datasets() -> dict[str, DatasetInfo]:
    """All registered datasets by name."""
    return dict(DATASETS)


def load_dataset(name: str, data_dir: Path | None = None, download: bool = False) -> Dataset:
    """Load dataset ``name``; embedded ones need no ``data_dir``.

    Raises
    ------
    UserError
        Unknown name, files missing under ``data_dir``, or a dataset with samples of fewer than
        two classes (nothing can be learned or attacked by label).
    """
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})"[:300])
    ds = DATASETS[name].loader(data_dir, download)
    present = len(np.unique(ds.y)) if len(ds.y) else 0
    if present < 2:
        raise UserError(f"dataset '{name}' ({ds.source}): its labels hold {present} class(es); at least 2 are needed")
    return ds
