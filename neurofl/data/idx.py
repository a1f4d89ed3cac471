"""IDX files (the MNIST format, LeCun et al.): MNIST and Fashion-MNIST from the data dir.

An IDX file is a big-endian header -- two zero bytes, a type code, the number of dimensions,
one uint32 per dimension -- followed by the array. Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurofl.data.base import Dataset
from neurofl.data.class_cap import cap_per_class
from neurofl.data.paths import missing_message, optional_data_dir, resolve_data_dir
from neurofl.errors import UserError
from neurofl.io.safeio import open_regular

# IDX type code -> numpy dtype (big-endian)
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

SPLITS = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))

# Debian's package dataset-fashion-mnist installs the real files here (`dpkg -L dataset-fashion-mnist`).
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


# Largest array an IDX file may declare, in bytes of data (MNIST's training images: 47M); refused
# before reading. A gzipped file is decompressed only up to this many bytes (+1), while streaming.
MAX_IDX_BYTES = 1 << 26
MAX_IDX_ELEMENTS = MAX_IDX_BYTES  # the same bound in values (bytes for the uint8 images)
# Largest file (compressed or not) opened at all.
MAX_IDX_FILE_BYTES = 1 << 28
# The image size of the MNIST-format datasets neurofl reads.
IMAGE_SHAPE = (28, 28)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into an array of its declared type and shape.

    Only regular files are opened. The header is read first; a file declaring more than
    :data:`MAX_IDX_BYTES` bytes of data is refused, and only the declared bytes (plus one, to
    detect trailing data) are ever read or decompressed, so a hostile or gzip-bomb file cannot
    exhaust memory. Float arrays must be finite.

    Raises
    ------
    UserError
        The file is truncated, too large, holds NaN/inf, or is not an IDX file.
    """
    path = Path(path)
    raw_file = open_regular(path, "IDX file", MAX_IDX_FILE_BYTES)
    try:
        with raw_file, (gzip.GzipFile(fileobj=raw_file, mode="rb") if path.suffix == ".gz" else raw_file) as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
                raise UserError(f"{path}: not an IDX file (bad magic number)")
            ndim = magic[3]
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise UserError(f"{path}: truncated IDX header")
            shape = tuple(int(d) for d in np.frombuffer(dims, ">u4", ndim))
            dtype = np.dtype(_IDX_TYPES[magic[2]])
            count = 1
            for d in shape:
                count *= d  # Python ints: no overflow
            need = count * dtype.itemsize
            if need > MAX_IDX_BYTES:
                raise UserError(f"{path}: header claims shape {shape}, more than {MAX_IDX_BYTES} bytes of data")
            raw = f.read(need + 1)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise UserError(f"{path}: cannot read ({type(e).__name__}: {str(e)[:100]})") from None
    if len(raw) != need:
        more = "more than" if len(raw) > need else f"{len(raw)} bytes, not"
        raise UserError(f"{path}: holds {more} the {need} data bytes its header {shape} needs")
    out = np.frombuffer(raw, dtype, count).reshape(shape).astype(dtype.newbyteorder("="))
    if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
        raise UserError(f"{path}: holds NaN or infinite values")
    return out


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).exists():  # a FIFO or folder here is refused by read_idx, by name
            return folder / name
    return None


@dataclass(frozen=True)
class IdxSource:
    """An IDX dataset: where to look under the data dir, and what it is."""

    name: str
    folders: tuple[str, ...]  # relative to the data dir, tried in order
    classes: int
    description: str
    torchvision: str  # the torchvision dataset class that --download runs
    system_folder: Path | None = None  # a system-wide copy, tried last


MNIST = IdxSource("mnist", ("mnist", "MNIST/raw"), 10, "MNIST handwritten digits (IDX)", "MNIST")
FASHION_MNIST = IdxSource(
    "fashion-mnist",
    ("fashion-mnist", "FashionMNIST/raw"),
    10,
    "Fashion-MNIST (Xiao et al. 2017, IDX)",
    "FashionMNIST",
    DEBIAN_FASHION_MNIST,
)


def idx_folder(src: IdxSource, data_dir: Path | None) -> Path | None:
    """The first candidate folder holding all four files, or None."""
    candidates = [data_dir / f for f in src.folders] if data_dir is not None else []
    if src.system_folder is not None:
        candidates.append(src.system_folder)
    for folder in candidates:
        if all(_find(folder, stem) for pair in SPLITS for stem in pair):
            return folder
    return None


def idx_available(src: IdxSource, data_dir: Path | None) -> bool:
    return idx_folder(src, optional_data_dir(data_dir)) is not None


def load_idx_dataset(
    src: IdxSource, data_dir: Path | None, download: bool, max_per_class: int | None = None
) -> Dataset:
    """Train and test files concatenated, scaled to [0, 1].

    Returns x: (N, 1, 28, 28) float32, y: (N,) int64; ``max_per_class`` keeps the first
    images of each class (file order) to bound memory.
    """
    root = optional_data_dir(data_dir)
    folder = idx_folder(src, root)
    if folder is None and download:
        root = resolve_data_dir(data_dir, src.name)
        import torchvision.datasets as tvd

        for train in (True, False):
            getattr(tvd, src.torchvision)(str(root), train=train, download=True)
        folder = idx_folder(src, root)
    expected = [f"{s}[.gz]" for pair in SPLITS for s in pair]
    if folder is None:
        where = root / src.folders[0] if root is not None else src.system_folder
        if where is None:
            where = resolve_data_dir(None, src.name)  # raises the "pass --data-dir" error
        raise UserError(missing_message(src.name, where, expected))
    xs, ys = [], []
    for images_stem, labels_stem in SPLITS:
        images_path, labels_path = _find(folder, images_stem), _find(folder, labels_stem)
        if images_path is None or labels_path is None:
            raise UserError(missing_message(src.name, folder, expected))
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.dtype != np.uint8:
            raise UserError(f"{images_path}: images must be unsigned bytes (IDX type 0x08), got {images.dtype}")
        if labels.dtype.kind not in "iu":
            raise UserError(f"{labels_path}: labels must be integers, got {labels.dtype}")
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(f"{folder}: {images_stem} {images.shape} does not match {labels_stem} {labels.shape}")
        if images.shape[1:] != IMAGE_SHAPE:
            raise UserError(f"{images_path}: images of {images.shape[1:]} pixels, {src.name} has {IMAGE_SHAPE}")
        xs.append(images)
        ys.append(labels)
    y = np.concatenate(ys).astype(np.int64)
    if len(y) == 0:
        raise UserError(f"{folder}: the IDX files hold no images")
    if y.min() < 0 or y.max() >= src.classes:
        raise UserError(f"{folder}: labels outside 0..{src.classes - 1}")
    keep = cap_per_class(y, max_per_class)  # before converting: only the kept images become floats
    x = np.concatenate(xs)[keep][:, None].astype(np.float32) / 255.0
    return Dataset(src.name, x, y[keep], src.classes, "image", f"{src.description} from {folder}")
