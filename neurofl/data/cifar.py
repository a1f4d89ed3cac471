"""CIFAR-100 from the official ``cifar-100-python`` folder (Krizhevsky 2009).

The files are Python pickles. They are read only from the data dir the user names, never
fetched implicitly (``--download`` runs torchvision's downloader, which checks the archive's
MD5), and with an unpickler that calls no constructor of any class, numpy's included: the pickle
may hold only plain builtins (dicts, lists, tuples, strings, bytes, numbers). The few globals a
numpy array's pickle names (``_reconstruct``, ``ndarray``, ``dtype``, ``_frombuffer``,
``_codecs.encode``) resolve to small stand-ins that only record the array's shape, dtype and
raw bytes; the array is built here, with ``np.frombuffer`` on those bytes, once their length is
exactly what the shape and dtype declare. So a file cannot run code, cannot make the reader
allocate more than it holds, and cannot pass uninitialised memory or a stride-0 view as data.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from neurofl.data.base import Dataset
from neurofl.data.class_cap import cap_per_class
from neurofl.data.paths import missing_message, optional_data_dir, resolve_data_dir
from neurofl.errors import UserError
from neurofl.io.safeio import read_regular

FOLDER = "cifar-100-python"
FILES = ("train", "test", "meta")
CLASSES = 100

# A cifar-100-python file is ~150 MB (train); larger files are refused before unpickling.
MAX_FILE_BYTES = 1 << 30
# Dimensions of one array in the pickle (the real files hold 1-D and 2-D arrays).
MAX_NDIM = 32


def cifar100_available(data_dir: Path | None) -> bool:
    root = optional_data_dir(data_dir)
    return root is not None and all((root / FOLDER / f).is_file() for f in FILES)


class _Refused(pickle.UnpicklingError):
    pass


class _DtypeSpec:
    """What a pickled ``numpy.dtype(name, align, copy)`` + BUILD(state) says: a plain number type
    (``[iuf]N``) and a byte order. Nothing of numpy is called until :meth:`dtype`."""

    __slots__ = ("name", "order", "built")

    def __init__(self, name: str) -> None:
        self.name, self.order, self.built = name, "=", False

    def __setstate__(self, state: Any) -> None:
        # numpy's dtype state: (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        if self.built or not isinstance(state, tuple) or len(state) not in (8, 9):
            raise _Refused("malformed numpy dtype state")
        version, order = state[0], state[1]
        if isinstance(order, bytes):
            order = order.decode("latin1")
        if version not in (3, 4) or order not in ("<", ">", "|", "=") or any(v is not None for v in state[2:5]):
            raise _Refused("numpy dtype is not a plain number type (structured, subarray or bad byte order)")
        if len(state) == 9 and state[8] is not None:
            raise _Refused("numpy dtype with metadata")
        self.order, self.built = ("=" if order == "|" else order), True

    def dtype(self) -> np.dtype:
        return np.dtype(self.order + self.name)


class _ArraySpec:
    """A pickled numpy array as shape, dtype and raw bytes, checked before any array exists."""

    __slots__ = ("shape", "dtype", "fortran", "raw")

    def __init__(self) -> None:
        self.shape: tuple[int, ...] | None = None
        self.dtype: _DtypeSpec | None = None
        self.fortran = False
        self.raw: bytes | bytearray = b""

    def fill(self, shape: Any, dtype: Any, fortran: Any, raw: Any) -> None:
        if self.shape is not None:
            raise _Refused("numpy array state set twice")
        if not isinstance(shape, tuple) or len(shape) > MAX_NDIM:
            raise _Refused("numpy array shape is not a tuple of at most 32 sizes")
        if not all(type(n) is int and n >= 0 for n in shape):
            raise _Refused("numpy array shape holds a size that is not a non-negative integer")
        if not isinstance(dtype, _DtypeSpec):
            raise _Refused("numpy array without a plain numpy dtype")
        if fortran not in (0, 1) or isinstance(fortran, float):  # False/True, or 0/1 in Python 2 files
            raise _Refused("numpy array order flag is not a boolean")
        if not isinstance(raw, (bytes, bytearray)):
            raise _Refused(f"numpy array data is a {type(raw).__name__}, not raw bytes")
        need = math.prod(shape) * int(dtype.name[1:])
        if len(raw) != need:
            raise _Refused(f"numpy array of shape {shape} {dtype.name} needs {need} bytes, the file holds {len(raw)}")
        self.shape, self.dtype, self.fortran, self.raw = shape, dtype, bool(fortran), raw

    def __setstate__(self, state: Any) -> None:
        # numpy's ndarray state: ([version,] shape, dtype, is_fortran, rawdata)
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("malformed numpy array state")
        if len(state) == 5:
            if state[0] != 1 or type(state[0]) is not int:
                raise _Refused("unknown numpy array state version")
            state = state[1:]
        self.fill(*state)

    def array(self) -> np.ndarray:
        """The array over the file's own bytes (read-only; exactly the bytes checked in :meth:`fill`)."""
        if self.shape is None or self.dtype is None:
            raise _Refused("numpy array without its data")
        flat = np.frombuffer(self.raw, self.dtype.dtype(), math.prod(self.shape))
        return flat.reshape(self.shape[::-1]).T if self.fortran else flat.reshape(self.shape)


class _StandIn:
    """What ``find_class`` returns: a callable that only builds the records above. It has no
    attributes to set and refuses BUILD, so a pickle cannot alter it."""

    __slots__ = ("name", "fn")

    def __init__(self, name: str, fn: Any) -> None:
        self.name, self.fn = name, fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __setstate__(self, state: Any) -> None:
        raise _Refused(f"state set on {self.name}")

    def __reduce__(self) -> Any:  # never pickled back
        raise TypeError("not picklable")


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


_PLAIN_DTYPE = re.compile(r"[iu][1248]|f[248]")


def _dtype(name: Any, align: Any = False, copy: Any = True) -> _DtypeSpec:
    """``numpy.dtype(name, align, copy)`` as numpy pickles it, for plain numbers only."""
    text = _text(name)
    if text is None or not _PLAIN_DTYPE.fullmatch(text) or align not in (0, 1) or copy not in (0, 1):
        raise _Refused(f"numpy dtype {str(name)[:20]!r} is not a plain number type")
    return _DtypeSpec(text)


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> _ArraySpec:
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``: an empty record that the pickle's BUILD fills."""
    if subtype is not _NDARRAY or shape != (0,) or type(shape) is not tuple or _text(dtype) is None:
        raise _Refused("numpy array reconstructed other than as numpy's own pickles do")
    return _ArraySpec()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> _ArraySpec:
    """numpy's protocol-5 ``_frombuffer(buffer, dtype, shape, order)``."""
    if order not in ("C", "F"):
        raise _Refused("numpy array order is not C or F")
    spec = _ArraySpec()
    spec.fill(shape, dtype, order == "F", buf)
    return spec


def _refuse_call(*args: Any) -> Any:
    raise _Refused("numpy.ndarray may be named, not called")


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode(str, 'latin1')``: how Python-3 protocol-2 pickles store bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode called other than for bytes")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    if args:
        raise _Refused("bytes() called with arguments")
    return b""


_NDARRAY = _StandIn("numpy.ndarray", _refuse_call)
_STAND_INS = {
    ("numpy.core.multiarray", "_reconstruct"): _StandIn("_reconstruct", _reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): _StandIn("_reconstruct", _reconstruct),
    ("numpy.core.numeric", "_frombuffer"): _StandIn("_frombuffer", _frombuffer),
    ("numpy._core.numeric", "_frombuffer"): _StandIn("_frombuffer", _frombuffer),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _StandIn("numpy.dtype", _dtype),
    ("_codecs", "encode"): _StandIn("_codecs.encode", _codecs_encode),
    ("builtins", "bytes"): _StandIn("bytes", _empty_bytes),  # b"" in a protocol-2 pickle
    ("__builtin__", "bytes"): _StandIn("bytes", _empty_bytes),
}


class _PlainOnly(pickle.Unpickler):
    """Plain builtins only: every global is a stand-in above, or refused."""

    def find_class(self, module: str, name: str) -> Any:
        stand_in = _STAND_INS.get((module, name))
        if stand_in is None:
            raise _Refused(f"refusing to load global {module}.{name}")
        return stand_in


_MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}
# Exceptions a corrupt pickle makes the C unpickler raise.
_CORRUPT = (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeDecodeError, LookupError,
            OverflowError, struct.error, RecursionError)  # fmt: skip


def _check_memo(data: bytes) -> None:
    """Refuse memo indices beyond the number of opcodes: the C unpickler sizes its memo table by
    the largest index, so one corrupt ``LONG_BINPUT`` could claim gigabytes."""
    for count, (op, arg, _) in enumerate(pickletools.genops(data)):
        if op.name in _MEMO_OPS and isinstance(arg, int) and arg > count:
            raise pickle.UnpicklingError(f"memo index {arg} at opcode {count} (corrupt file)")


def _unpickle(path: Path) -> dict:
    """Unpickle one cifar-100-python file allowing only plain data and numpy arrays' records."""
    # Unpickle from memory: a length field in a corrupt file cannot make the reader allocate more
    # than the file holds (a file object's read(n) preallocates n bytes). Regular files only.
    data = read_regular(path, MAX_FILE_BYTES, "cifar-100-python file")
    try:
        _check_memo(data)
        d = _PlainOnly(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise UserError(f"{path}: not a cifar-100-python pickle ({str(e)[:120]})") from None
    except _CORRUPT as e:  # what the unpickler raises for corrupt bytes
        raise UserError(f"{path}: not a cifar-100-python pickle ({type(e).__name__})") from None
    if not isinstance(d, dict):
        raise UserError(f"{path}: not a cifar-100-python pickle (holds a {type(d).__name__}, not a dict)")
    return d


def _array(value: Any, path: Path, key: str) -> Any:
    """An array record of the pickle as a numpy array over the file's bytes; anything else as is."""
    if not isinstance(value, _ArraySpec):
        return value
    try:
        return value.array()
    except pickle.UnpicklingError as e:
        raise UserError(f"{path}: '{key}': {e}") from None


def _labels(value: Any, path: Path) -> np.ndarray:
    if isinstance(value, np.ndarray):
        ok = value.ndim == 1 and value.dtype.kind in "iu"
    else:
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok:
        raise UserError(f"{path}: 'fine_labels' must be a list of integers")
    if len(value) and isinstance(value, list) and not all(-(1 << 62) < v < 1 << 62 for v in value):
        raise UserError(f"{path}: fine labels outside 0..{CLASSES - 1}")
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
        path = root / FOLDER / name
        d = _unpickle(path)
        if b"data" not in d or b"fine_labels" not in d:
            raise UserError(f"{path}: lacks the keys 'data' and 'fine_labels'")
        data = _array(d[b"data"], path, "data")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
            raise UserError(f"{path}: 'data' must be a uint8 array, got {type(data).__name__}")
        labels = _labels(_array(d[b"fine_labels"], path, "fine_labels"), path)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
            raise UserError(f"{path}: data {data.shape} is not (N, 3072) for {len(labels)} labels")
        xs.append(data.reshape(-1, 3, 32, 32))  # rows hold the R, G, B planes, each row-major
        ys.append(labels)
    y = np.concatenate(ys)
    if len(y) == 0:
        raise UserError(f"{root / FOLDER}: the train and test files hold no images")
    if y.min() < 0 or y.max() >= CLASSES:
        raise UserError(f"{root / FOLDER}: fine labels outside 0..{CLASSES - 1}")
    keep = cap_per_class(y, max_per_class)  # before converting: only the kept images become floats
    x = np.concatenate(xs)[keep].astype(np.float32) / 255.0
    return Dataset("cifar100", x, y[keep], CLASSES, "image", f"CIFAR-100 (cifar-100-python) from {root / FOLDER}")
