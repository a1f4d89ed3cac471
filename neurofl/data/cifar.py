"""CIFAR-100 from the official ``cifar-100-python`` folder (Krizhevsky 2009).

The files are Python pickles. They are read only from the data dir the user names, never
fetched implicitly (``--download`` runs torchvision's downloader, which checks the archive's
MD5), and with an unpickler that resolves no global but numpy's array constructors, so a
tampered file cannot run code: it is refused with a one-line error.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
from pathlib import Path
from typing import Any

import numpy as np

from neurofl.data.base import Dataset
from neurofl.data.limits import cap_per_class
from neurofl.data.paths import missing_message, optional_data_dir, resolve_data_dir
from neurofl.errors import UserError
from neurofl.safeio import read_regular

FOLDER = "cifar-100-python"
FILES = ("train", "test", "meta")
CLASSES = 100


def cifar100_available(data_dir: Path | None) -> bool:
    root = optional_data_dir(data_dir)
    return root is not None and all((root / FOLDER / f).is_file() for f in FILES)


# The only globals a cifar-100-python pickle needs (numpy arrays, pickled by numpy 1.x or 2.x);
# unpickling any other global (os.system, builtins.eval, ...) is refused, so no code from the file runs.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3 (str -> bytes, runs nothing)
}
# A cifar-100-python file is ~150 MB (train); larger files are refused before unpickling.
MAX_FILE_BYTES = 1 << 30


_MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}
# Exceptions a corrupt pickle makes the C unpickler (and numpy's array __setstate__) raise.
_CORRUPT = (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeDecodeError, LookupError,
            OverflowError, struct.error, RecursionError)  # fmt: skip


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` as numpy's own pickles call it: an empty ndarray that the pickle's
    BUILD then fills (numpy checks the data length there). Any other shape would be an array of
    uninitialised memory of whatever size the file names (167 bytes could claim 150 MB)."""
    if subtype is not np.ndarray or not isinstance(shape, tuple) or shape != (0,):
        raise pickle.UnpicklingError("numpy array reconstructed with a shape other than (0,)")
    return np.core.multiarray._reconstruct(np.ndarray, (0,), _dtype(dtype))


def _dtype(obj: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``numpy.dtype`` for plain numbers only (no object, string or structured dtypes)."""
    if not isinstance(obj, (str, bytes, np.dtype)) or not isinstance(align, bool) or not isinstance(copy, bool):
        raise pickle.UnpicklingError("malformed numpy dtype")
    try:
        dt = np.dtype(obj.decode("ascii") if isinstance(obj, bytes) else obj, align, copy)
    except (TypeError, ValueError, UnicodeDecodeError):
        raise pickle.UnpicklingError("malformed numpy dtype") from None
    if dt.kind not in "biuf" or dt.fields is not None or dt.subdtype is not None:
        raise pickle.UnpicklingError(f"numpy dtype {dt} is not a plain number type")
    return dt


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if name == "_reconstruct":
            return _reconstruct
        if (module, name) == ("numpy", "dtype"):
            return _dtype
        return super().find_class(module, name)


def _check_memo(data: bytes) -> None:
    """Refuse memo indices beyond the number of opcodes: the C unpickler sizes its memo table by
    the largest index, so one corrupt ``LONG_BINPUT`` could claim gigabytes."""
    for count, (op, arg, _) in enumerate(pickletools.genops(data)):
        if op.name in _MEMO_OPS and arg > count:
            raise pickle.UnpicklingError(f"memo index {arg} at opcode {count} (corrupt file)")


def _unpickle(path: Path) -> dict:
    """Unpickle one cifar-100-python file allowing only plain data and numpy arrays."""
    # Unpickle from memory: a length field in a corrupt file cannot make the reader allocate more
    # than the file holds (a file object's read(n) preallocates n bytes). Regular files only.
    data = read_regular(path, MAX_FILE_BYTES, "cifar-100-python file")
    try:
        _check_memo(data)
        d = _ArraysOnly(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise UserError(f"{path}: not a cifar-100-python pickle ({str(e)[:120]})") from None
    except _CORRUPT as e:  # what the unpickler and numpy's __setstate__ raise for corrupt bytes
        raise UserError(f"{path}: not a cifar-100-python pickle ({type(e).__name__})") from None
    if not isinstance(d, dict):
        raise UserError(f"{path}: not a cifar-100-python pickle (holds a {type(d).__name__}, not a dict)")
    return d


def _labels(value: Any, path: Path) -> np.ndarray:
    if isinstance(value, np.ndarray):
        ok = value.ndim == 1 and value.dtype.kind in "iu"
    else:
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok:
        raise UserError(f"{path}: 'fine_labels' must be a list of integers")
    return np.asarray(value, dtype=np.int64) if len(value) else np.zeros(0, np.int64)


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
        data = d[b"data"]
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
            raise UserError(f"{root / FOLDER / name}: 'data' must be a uint8 array, got {type(data).__name__}")
        labels = _labels(d[b"fine_labels"], root / FOLDER / name)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
            raise UserError(f"{root / FOLDER / name}: data {data.shape} is not (N, 3072) for {len(labels)} labels")
        xs.append(data.reshape(-1, 3, 32, 32))  # rows hold the R, G, B planes, each row-major
        ys.append(labels)
    x = np.concatenate(xs).astype(np.float32) / 255.0
    y = np.concatenate(ys)
    if len(y) == 0:
        raise UserError(f"{root / FOLDER}: the train and test files hold no images")
    if y.min() < 0 or y.max() >= CLASSES:
        raise UserError(f"{root / FOLDER}: fine labels outside 0..{CLASSES - 1}")
    keep = cap_per_class(y, max_per_class)
    return Dataset("cifar100", x[keep], y[keep], CLASSES, "image", f"CIFAR-100 (cifar-100-python) from {root / FOLDER}")
