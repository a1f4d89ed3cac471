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

import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurofl.data.base import Dataset
from neurofl.data.class_cap import cap_per_class
from neurofl.data.events import FrameOptions, to_frames
from neurofl.data.paths import missing_message, optional_data_dir, resolve_data_dir
from neurofl.errors import UserError
from neurofl.io.safeio import open_regular, read_regular, regular_file

# Bound on one recording's events (DVSGesture's longest hold ~1M); checked from file metadata before reading.
MAX_EVENTS = 1 << 24
GESTURE_SENSOR = (128, 128, 2)
NMNIST_SENSOR = (34, 34, 2)
# N-MNIST's timestamp counter wraps every 2**13 us; tonic adds this at each overflow event (y == 240).
NMNIST_OVERFLOW_Y = 240
NMNIST_TIME_INCREMENT = 1 << 13


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """Shape, dtype, Fortran order and data offset of a ``.npy`` file, read from its header only."""
    from numpy.lib import format as npy

    try:
        with open_regular(path, "DVSGesture recording") as f:
            version = npy.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npy.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = npy.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            return shape, dtype, fortran, f.tell()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    except (ValueError, SyntaxError, TypeError, RecursionError, EOFError, UnicodeDecodeError, tokenize.TokenError) as e:
        # numpy parses the header with tokenize, ast.literal_eval and descr_to_dtype
        raise UserError(f"{path}: not a .npy array file ({type(e).__name__}: {str(e)[:100]})") from None


def check_events(ev: np.ndarray, sensor: tuple[int, int, int], path: Path) -> np.ndarray:
    """Refuse events outside the sensor (x < width, y < height, polarity < polarities) or at t < 0."""
    w, h, pol = sensor
    for name, hi in (("x", w), ("y", h), ("p", pol)):
        v = ev[name].astype(np.int64)
        if len(v) and (v.min() < 0 or v.max() >= hi):
            sensor_txt = f"the {w}x{h}x{pol} sensor needs 0..{hi - 1}"
            raise UserError(f"{path}: event {name} in [{v.min()}, {v.max()}], {sensor_txt}")
    if len(ev) and ev["t"].min() < 0:
        raise UserError(f"{path}: negative event timestamp {ev['t'].min()}")
    return ev


def read_gesture_npy(path: Path) -> np.ndarray:
    """One DVSGesture recording as a structured array (x, y, p, t in microseconds).

    The ``.npy`` header is checked first (a numeric N x 4 array, N <= :data:`MAX_EVENTS`, exactly
    as many data bytes as it claims), then the values: finite integers on the 128x128x2 sensor,
    t >= 0 milliseconds. No pickled object arrays are ever loaded.
    """
    from numpy.lib import recfunctions
    from tonic.datasets import DVSGesture

    path = Path(path)
    shape, dtype, fortran, offset = _npy_header(path)
    if dtype.fields is not None or dtype.kind not in "iuf" or dtype.hasobject:
        raise UserError(f"{path}: expected a numeric N x 4 array (x, y, p, t), got dtype {dtype}")
    if len(shape) != 2 or shape[1] != 4:
        raise UserError(f"{path}: expected an N x 4 array (x, y, p, t), got shape {shape}")
    if shape[0] > MAX_EVENTS:
        raise UserError(f"{path}: claims {shape[0]} events, more than the {MAX_EVENTS} accepted per recording")
    need = shape[0] * 4 * dtype.itemsize
    have = path.stat().st_size - offset
    if have != need:
        raise UserError(f"{path}: holds {have} data bytes, its header {shape} {dtype} needs {need} (truncated?)")
    with open_regular(path, "DVSGesture recording") as f:
        f.seek(offset)
        raw = np.frombuffer(f.read(need), dtype=dtype, count=shape[0] * 4)
    raw = raw.reshape(shape[::-1]).T if fortran else raw.reshape(shape)
    values = raw.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise UserError(f"{path}: holds NaN or infinite values")
    if not np.array_equal(values, np.round(values)):
        raise UserError(f"{path}: holds non-integer event coordinates or times")
    if len(values) and np.abs(values).max() > np.iinfo(np.int64).max // 1000:
        raise UserError(f"{path}: value {np.abs(values).max():g} is out of range for event coordinates and times")
    raw = raw.astype(np.int64)
    # checked before the cast into tonic's dtype, whose int16 x, y would wrap and bool p would
    # turn any non-zero polarity into 1
    w, h, pol = GESTURE_SENSOR
    for col, field_name, hi in ((0, "x", w), (1, "y", h), (2, "p", pol)):
        v = raw[:, col]
        if len(v) and (v.min() < 0 or v.max() >= hi):
            sensor_needs = f"the {w}x{h}x{pol} sensor needs 0..{hi - 1}"
            raise UserError(f"{path}: event {field_name} in [{v.min()}, {v.max()}], {sensor_needs}")
    raw[:, 3] *= 1000  # tonic stores milliseconds, events use microseconds
    ev = recfunctions.unstructured_to_structured(raw, DVSGesture.dtype)
    return check_events(ev, GESTURE_SENSOR, path)


def decode_nmnist(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """N-MNIST's 5-byte events decoded as tonic's ``read_mnist_file`` decodes them.

    raw : (5 * N,) uint8. Returns x, y, t (us), p of the N' <= N events that are not timer
    overflows; each overflow event (y == 240) adds 2**13 us to every later timestamp
    (a cumulative sum here, where tonic loops over overflows).
    """
    raw = raw.astype(np.int64)
    x, y = raw[0::5], raw[1::5]
    p = (raw[2::5] & 128) >> 7
    t = ((raw[2::5] & 127) << 16) | (raw[3::5] << 8) | raw[4::5]
    overflow = y == NMNIST_OVERFLOW_Y
    t = t + NMNIST_TIME_INCREMENT * np.cumsum(overflow)
    keep = ~overflow
    return x[keep], y[keep], t[keep], p[keep]


def read_nmnist_bin(path: Path) -> np.ndarray:
    """One N-MNIST recording as a structured array (x, y, t in us, p), refusing events outside
    the 34x34 sensor and files that are not whole 5-byte events."""
    from tonic.datasets import NMNIST

    path = Path(path)
    try:
        size = regular_file(path, "N-MNIST recording").st_size
        if size % 5:
            raise UserError(f"{path}: size {size} is not a multiple of 5 bytes (N-MNIST events)")
        if size // 5 > MAX_EVENTS:
            raise UserError(f"{path}: holds {size // 5} events, more than the {MAX_EVENTS} accepted per recording")
        raw = np.frombuffer(read_regular(path, 5 * MAX_EVENTS, "N-MNIST recording"), dtype=np.uint8)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    x, y, t, p = decode_nmnist(raw)
    ev = np.empty(len(x), NMNIST.dtype)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p
    return check_events(ev, NMNIST_SENSOR, path)


def _gesture_label(path: Path) -> int:
    if not path.stem.isdigit():
        raise UserError(f"{path}: a DVSGesture recording must be named <label>.npy, e.g. 3.npy")
    return int(path.stem)


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
    GESTURE_SENSOR,
    11,
    "DVSGesture",
    read_gesture_npy,
    _gesture_label,
    FrameOptions(bins=16, height=32, width=32, max_per_class=100),
    "IBM DVS128 Gesture (Amir et al. 2017), tonic layout",
)
NMNIST_LAYOUT = EventLayout(
    "nmnist",
    "NMNIST",
    ("Train", "Test"),
    "[0-9]/*.bin",
    NMNIST_SENSOR,
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
