"""Event datasets in tonic's on-disk layouts, read without tonic's download check.

tonic's dataset classes re-download unless the original archive is still on disk, so the
files are found here and decoded as tonic decodes them; ``--download`` runs tonic's own
downloader. Layouts (under the data dir)::

    DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy   (and ibmGestureTest/)
        N x 4 arrays: x, y, p, t in milliseconds; 128x128 sensor, 2 polarities, 11 classes
    NMNIST/Train/<digit>/<id>.bin                                 (and Test/)
        5 bytes per event (Orchard et al. 2015); 34x34 sensor, 2 polarities, 10 classes
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurofl.data.base import Dataset
from neurofl.data.events import FrameOptions, to_frames
from neurofl.data.limits import cap_per_class
from neurofl.data.paths import missing_message, optional_data_dir, resolve_data_dir
from neurofl.errors import UserError


def read_gesture_npy(path: Path) -> np.ndarray:
    """One DVSGesture recording as a structured array (x, y, p, t in microseconds)."""
    from numpy.lib import recfunctions
    from tonic.datasets import DVSGesture

    try:
        raw = np.load(path)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a DVSGesture .npy file ({e})") from None
    if raw.ndim != 2 or raw.shape[1] != 4:
        raise UserError(f"{path}: expected an N x 4 array (x, y, p, t), got shape {raw.shape}")
    raw = raw.astype(np.int64)
    raw[:, 3] *= 1000  # tonic stores milliseconds, events use microseconds
    return recfunctions.unstructured_to_structured(raw, DVSGesture.dtype)


def read_nmnist_bin(path: Path) -> np.ndarray:
    """One N-MNIST recording (tonic's reader) as a structured array (x, y, t in us, p)."""
    from tonic.datasets import NMNIST
    from tonic.io import read_mnist_file

    if path.stat().st_size % 5:
        raise UserError(f"{path}: size {path.stat().st_size} is not a multiple of 5 bytes (N-MNIST events)")
    return read_mnist_file(str(path), dtype=NMNIST.dtype)


@dataclass(frozen=True)
class EventLayout:
    """A tonic dataset layout: folder, split subfolders, file pattern, sensor, label rule."""

    name: str
    folder: str
    splits: tuple[str, str]  # train, test
    pattern: str
    sensor_size: tuple[int, int, int]  # width, height, polarities
    classes: int
    tonic_class: str
    reader: Callable[[Path], np.ndarray]
    label: Callable[[Path], int]
    frames: FrameOptions
    description: str

    def files(self, root: Path) -> list[Path]:
        """Every recording of both splits, train first, each split in sorted path order."""
        out: list[Path] = []
        for split in self.splits:
            out.extend(sorted((root / self.folder / split).glob(self.pattern)))
        return out


DVS_GESTURE = EventLayout(
    "dvs128-gesture",
    "DVSGesture",
    ("ibmGestureTrain", "ibmGestureTest"),
    "user*_*/*.npy",
    (128, 128, 2),
    11,
    "DVSGesture",
    read_gesture_npy,
    lambda p: int(p.stem),
    FrameOptions(bins=16, height=32, width=32, max_per_class=100),
    "IBM DVS128 Gesture (Amir et al. 2017), tonic layout",
)
NMNIST_LAYOUT = EventLayout(
    "nmnist",
    "NMNIST",
    ("Train", "Test"),
    "[0-9]/*.bin",
    (34, 34, 2),
    10,
    "NMNIST",
    read_nmnist_bin,
    lambda p: int(p.parent.name),
    FrameOptions(bins=16, height=34, width=34, max_per_class=100),
    "N-MNIST (Orchard et al. 2015), tonic layout",
)


def events_available(layout: EventLayout, data_dir: Path | None) -> bool:
    root = optional_data_dir(data_dir)
    return root is not None and any(True for _ in layout.files(root)[:1])


def _download(layout: EventLayout, root: Path) -> None:
    import tonic.datasets

    for train in (True, False):
        getattr(tonic.datasets, layout.tonic_class)(save_to=str(root), train=train)


def load_event_dataset(
    layout: EventLayout, data_dir: Path | None, download: bool, frames: FrameOptions | None = None
) -> Dataset:
    """Recordings binned into binary frames (see :func:`neurofl.data.events.to_frames`).

    Returns x: (N, 2, height, width, bins) float32 in {0, 1}, y: (N,) int64; at most
    ``frames.max_per_class`` recordings per class (file order).
    """
    frames = frames or layout.frames
    root = resolve_data_dir(data_dir, layout.name)
    if download and not events_available(layout, root):
        _download(layout, root)
    files = layout.files(root)
    if not files:
        expected = [f"{layout.folder}/{s}/{layout.pattern}" for s in layout.splits]
        raise UserError(missing_message(layout.name, root, expected))
    labels = np.array([layout.label(f) for f in files], np.int64)
    if labels.min() < 0 or labels.max() >= layout.classes:
        bad = files[int(np.flatnonzero((labels < 0) | (labels >= layout.classes))[0])]
        raise UserError(f"{bad}: label outside 0..{layout.classes - 1}")
    keep = cap_per_class(labels, frames.max_per_class)
    x = np.stack([to_frames(layout.reader(files[i]), layout.sensor_size, frames) for i in keep])
    source = f"{layout.description} from {root / layout.folder}"
    return Dataset(layout.name, x, labels[keep], layout.classes, "events", source)
