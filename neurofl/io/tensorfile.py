"""Reading ``torch.save`` files that other people wrote: bounded before anything is allocated.

``torch.load(weights_only=True)`` runs no code, but it trusts the sizes a file declares: a tensor
whose shape claims 10**12 elements over a 4-byte storage makes torch grow the storage (4 TB), a
storage record shorter than the element count in the pickle makes torch read past its buffer
(a segfault), and a stride-0 tensor of 10**9 elements over one value fits a 43 KB file but costs
gigabytes in the first ``isfinite``. So before torch sees the file, :func:`load_tensors`

1. reads it (a regular file of at most :data:`MAX_FILE_BYTES`) and checks it is a zip archive in
   torch's layout whose entries are all stored uncompressed (declared sizes are then real sizes:
   no zip bomb), with no name twice;
2. walks its pickle symbolically (no object is built, nothing is called): only the globals and
   opcodes of plain tensors, dicts, lists, tuples, strings and numbers are accepted; every storage
   reference must name a record whose size is exactly ``numel * itemsize``; every tensor's offset,
   shape and strides must be non-negative integers that stay inside that storage, hold at most
   :data:`MAX_TENSOR_ELEMENTS` elements and never overlap (no stride 0 over a dimension of size
   > 1); containers nest at most :data:`MAX_NESTING` deep.

Only then does ``torch.load(weights_only=True)`` build the objects, and every tensor it returns is
checked once more against its storage (``untyped_storage().nbytes()``) before its data is touched.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from neurofl.errors import UserError
from neurofl.io.safeio import read_regular

# A checkpoint of the largest accepted model (50M float32 weights) with Adam's two moments is
# ~600 MB; larger files are refused before they are read.
MAX_FILE_BYTES = 1 << 30
# Largest single tensor (elements) and deepest nesting of containers a file may declare.
MAX_TENSOR_ELEMENTS = 1 << 28
MAX_NESTING = 32
# Entries of torch's zip layout besides data/<key> (torch 2.x writes these).
_META_ENTRIES = {"data.pkl", "byteorder", "version", ".data/version", ".data/serialization_id"}

# storage class -> (dtype, bytes per element). Complex, quantized and untyped storages are refused.
STORAGE_TYPES: dict[str, tuple[torch.dtype, int]] = {
    "FloatStorage": (torch.float32, 4),
    "DoubleStorage": (torch.float64, 8),
    "HalfStorage": (torch.float16, 2),
    "BFloat16Storage": (torch.bfloat16, 2),
    "LongStorage": (torch.int64, 8),
    "IntStorage": (torch.int32, 4),
    "ShortStorage": (torch.int16, 2),
    "CharStorage": (torch.int8, 1),
    "ByteStorage": (torch.uint8, 1),
    "BoolStorage": (torch.bool, 1),
}
DTYPES = {dtype for dtype, _ in STORAGE_TYPES.values()}


class _Refused(Exception):
    """Raised inside the scan; becomes one UserError line naming the file."""


class _Global:
    def __init__(self, name: str):
        self.name = name


class _Storage:
    def __init__(self, key: str, dtype: torch.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel


class _Tensor:
    pass


class _Mark:
    pass


_MARK = _Mark()
_GLOBALS = {"collections OrderedDict", "torch._utils _rebuild_tensor_v2", "torch._utils _rebuild_parameter"}
_GLOBALS |= {f"torch {name}" for name in STORAGE_TYPES}
_CONTAINERS = (dict, list, tuple)


def _int(v: Any, what: str, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise _Refused(f"tensor {what} {v!r} is not an integer in 0..{hi}"[:200])
    return v


def check_layout(offset: int, size: tuple[int, ...], stride: tuple[int, ...], storage_numel: int) -> int:
    """Elements of a tensor with this offset/shape/strides, after checking that it lies inside a
    storage of ``storage_numel`` elements and that no two of its elements share memory.

    >>> check_layout(0, (2, 3), (3, 1), 6)
    6
    >>> try:
    ...     check_layout(0, (10**6, 3), (0, 1), 3)
    ... except _Refused as e:
    ...     print(e)
    tensor of shape (1000000, 3) with strides (0, 1) overlaps itself
    """
    if len(size) != len(stride) or len(size) > 16:
        raise _Refused(f"tensor shape {size!r} and strides {stride!r} do not match"[:200])
    numel = 1
    for d in size:
        numel *= d
    if numel > MAX_TENSOR_ELEMENTS:
        raise _Refused(f"tensor of shape {size} declares {numel} elements, more than {MAX_TENSOR_ELEMENTS}")
    if numel == 0:
        return 0
    extent = 1  # elements spanned by the dimensions checked so far (by increasing stride)
    for s, d in sorted((s, d) for s, d in zip(stride, size, strict=True) if d > 1):
        if s < extent:
            raise _Refused(f"tensor of shape {size} with strides {stride} overlaps itself")
        extent = s * (d - 1) + extent
    last = offset + sum((d - 1) * s for d, s in zip(size, stride, strict=True))
    if last >= storage_numel:
        raise _Refused(f"tensor of shape {size} (offset {offset}) needs {last + 1} elements, its storage holds "
                       f"{storage_numel}")  # fmt: skip
    return numel


class _Scan:
    """A symbolic run of torch's weights-only unpickler: the same opcodes, no objects built."""

    def __init__(self, records: dict[str, int]):
        self.records = records  # storage key -> record bytes
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.depth: dict[int, int] = {}  # id(container) -> nesting depth of what it holds
        self.keep: list[Any] = []  # keep containers alive so ids stay unique

    def _pop(self) -> Any:
        if not self.stack:
            raise _Refused("corrupt pickle (stack underflow)")
        return self.stack.pop()

    def _pop_mark(self) -> list[Any]:
        if not self.marks:
            raise _Refused("corrupt pickle (no mark)")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def _nest(self, container: Any, items: list[Any]) -> None:
        d = max((self.depth.get(id(v), 0) for v in items if isinstance(v, _CONTAINERS)), default=0) + 1
        self.depth[id(container)] = max(self.depth.get(id(container), 1), d)
        if self.depth[id(container)] > MAX_NESTING:
            raise _Refused(f"containers nested more than {MAX_NESTING} deep")

    def _new(self, container: Any, items: list[Any]) -> Any:
        self.keep.append(container)
        self._nest(container, items)
        return container

    def _top_container(self, kind: type) -> Any:
        if not self.stack or not isinstance(self.stack[-1], kind):
            raise _Refused(f"corrupt pickle (expected a {kind.__name__})")
        return self.stack[-1]

    def _persistent(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _Refused("a persistent id that is not a storage")
        _, cls, key, _location, numel = pid
        if not isinstance(cls, _Global) or cls.name.split(" ")[-1] not in STORAGE_TYPES:
            raise _Refused(f"storage of unsupported type {getattr(cls, 'name', cls)!r}"[:200])
        if not isinstance(key, str) or key not in self.records:
            raise _Refused(f"storage {key!r} has no data record in the archive"[:200])
        dtype, size = STORAGE_TYPES[cls.name.split(" ")[-1]]
        numel = _int(numel, "storage size", self.records[key])
        if numel * size != self.records[key]:
            raise _Refused(f"storage {key} claims {numel} x {size} bytes, its record holds {self.records[key]}")
        return _Storage(key, dtype, numel)

    def _reduce(self, func: Any, args: Any) -> Any:
        if not isinstance(func, _Global) or not isinstance(args, tuple):
            raise _Refused("a call of something that is not an allowed function")
        if func.name == "collections OrderedDict":
            if args:
                raise _Refused("OrderedDict with arguments")
            return self._new(OrderedDict(), [])
        if func.name == "torch._utils _rebuild_parameter":
            if len(args) != 3 or not isinstance(args[0], _Tensor):
                raise _Refused("malformed parameter")
            return args[0]
        if func.name == "torch._utils _rebuild_tensor_v2":
            if len(args) not in (6, 7) or not isinstance(args[0], _Storage):
                raise _Refused("malformed tensor record")
            storage, offset, size, stride = args[:4]
            if not isinstance(size, tuple) or not isinstance(stride, tuple):
                raise _Refused("tensor shape and strides must be tuples")
            offset = _int(offset, "offset", storage.numel)
            size = tuple(_int(d, "dimension", MAX_TENSOR_ELEMENTS) for d in size)
            stride = tuple(_int(s, "stride", MAX_TENSOR_ELEMENTS) for s in stride)
            check_layout(offset, size, stride, storage.numel)
            if not isinstance(args[4], bool) or not isinstance(args[5], OrderedDict) or args[5]:
                raise _Refused("tensor record with hooks or a non-boolean requires_grad")
            if len(args) == 7 and args[6] is not None and not isinstance(args[6], dict):
                raise _Refused("tensor record with malformed metadata")
            return _Tensor()
        raise _Refused(f"a call of {func.name}")

    def run(self, data: bytes) -> None:  # noqa: C901 - one branch per opcode, as in the unpickler
        stack = self.stack
        try:
            ops = pickletools.genops(data)
            for op, arg, _pos in ops:
                name = op.name
                stack = self.stack
                if name == "PROTO":
                    continue
                if name == "GLOBAL":
                    if arg not in _GLOBALS:
                        raise _Refused(f"global {arg!r} is not a tensor type"[:200])
                    stack.append(_Global(arg))
                elif name == "REDUCE":
                    args = self._pop()
                    func = self._pop()
                    self.stack.append(self._reduce(func, args))
                elif name == "BUILD":  # only an OrderedDict's attributes (state_dict's _metadata)
                    state = self._pop()
                    if not stack or not isinstance(stack[-1], OrderedDict) or not isinstance(state, dict):
                        raise _Refused("BUILD of something other than an OrderedDict")
                    self._nest(stack[-1], [state])
                elif name == "BINPERSID":
                    stack.append(self._persistent(self._pop()))
                elif name == "MARK":
                    self.marks.append(self.stack)
                    self.stack = []
                elif name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE"):
                    n = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3, "EMPTY_TUPLE": 0}.get(name)
                    if n is None:
                        items = self._pop_mark()
                    else:
                        if len(stack) < n:
                            raise _Refused("corrupt pickle (stack underflow)")
                        items = stack[len(stack) - n :] if n else []
                        del stack[len(stack) - n :]
                    t = tuple(items)
                    self.stack.append(t)
                    self._new(t, items)
                elif name == "EMPTY_LIST":
                    stack.append(self._new([], []))
                elif name == "EMPTY_DICT":
                    stack.append(self._new({}, []))
                elif name in ("APPEND", "APPENDS"):
                    items = [self._pop()] if name == "APPEND" else self._pop_mark()
                    target = self._top_container(list)
                    target.extend(items)
                    self._nest(target, items)
                elif name in ("SETITEM", "SETITEMS"):
                    if name == "SETITEM":
                        value = self._pop()
                        items = [self._pop(), value]
                    else:
                        items = self._pop_mark()
                    target = self._top_container(dict)
                    if len(items) % 2:
                        raise _Refused("corrupt pickle (odd SETITEMS)")
                    for k in items[0::2]:
                        if not isinstance(k, (str, int)) or isinstance(k, bool):
                            raise _Refused(f"a mapping key of type {type(k).__name__}")
                    target.update(zip(items[0::2], items[1::2], strict=True))
                    self._nest(target, items[1::2])
                elif name in ("NONE", "NEWFALSE", "NEWTRUE", "BININT", "BININT1", "BININT2", "BINFLOAT",
                              "BINUNICODE", "SHORT_BINSTRING", "LONG1"):  # fmt: skip
                    stack.append({"NONE": None, "NEWFALSE": False, "NEWTRUE": True}.get(name, arg))
                elif name in ("BINPUT", "LONG_BINPUT"):
                    if not stack or not isinstance(arg, int):
                        raise _Refused("corrupt pickle (memo of nothing)")
                    self.memo[arg] = stack[-1]
                elif name in ("BINGET", "LONG_BINGET"):
                    if arg not in self.memo:
                        raise _Refused(f"corrupt pickle (memo {arg} unset)")
                    stack.append(self.memo[arg])
                elif name == "STOP":
                    if len(self.stack) != 1 or self.marks:
                        raise _Refused("corrupt pickle (unbalanced at STOP)")
                    return
                else:
                    raise _Refused(f"pickle opcode {name} is not used by torch.save")
        except (ValueError, struct.error, UnicodeDecodeError) as e:  # pickletools on corrupt bytes
            raise _Refused(f"corrupt pickle ({type(e).__name__})") from None
        raise _Refused("corrupt pickle (no STOP)")


# What zipfile raises for a corrupt archive (bad headers, offsets, CRCs, names, methods).
_BAD_ZIP = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, struct.error, OSError, EOFError,
            UnicodeDecodeError, NotImplementedError, KeyError, zlib.error)  # fmt: skip


def _records(z: zipfile.ZipFile, data: bytes) -> tuple[str, dict[str, int]]:
    """The archive's prefix and its storage records (key -> bytes), after checking the layout."""
    infos = z.infolist()
    names = [i.filename for i in infos]
    if not names or len(set(names)) != len(names):
        raise _Refused("empty archive or an entry named twice")
    prefix = names[0].split("/", 1)[0]
    records: dict[str, int] = {}
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise _Refused(f"entry {info.filename!r} is compressed (torch.save stores entries)"[:200])
        head, _, rest = info.filename.partition("/")
        if head != prefix or not rest:
            raise _Refused(f"entry {info.filename!r} outside the archive folder {prefix!r}"[:200])
        if rest.startswith("data/") and rest[5:].isdigit():
            records[rest[5:]] = info.file_size
        elif rest not in _META_ENTRIES:
            raise _Refused(f"unexpected entry {info.filename!r} (not a torch.save file)"[:200])
        if info.header_offset + info.file_size > len(data):
            raise _Refused(f"entry {info.filename!r} extends past the end of the file"[:200])
    if f"{prefix}/data.pkl" not in names:
        raise _Refused("no data.pkl in the archive")
    return prefix, records


def scan(data: bytes) -> None:
    """Check the bytes of a ``torch.save`` file as described in the module docstring.

    Raises
    ------
    _Refused
        naming what is wrong (callers turn it into a :class:`UserError` naming the file).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            prefix, records = _records(z, data)
            pkl = z.read(f"{prefix}/data.pkl")
    except _BAD_ZIP as e:
        raise _Refused(f"not a readable torch zip archive ({type(e).__name__})") from None
    _Scan(records).run(pkl)


def _check_loaded(obj: Any) -> None:
    """Every tensor in ``obj`` lies inside its storage and does not overlap itself; containers are
    plain and not nested too deep (the scan checked the file; this checks what torch built)."""
    todo: list[tuple[Any, int]] = [(obj, 0)]
    while todo:
        v, depth = todo.pop()
        if depth > MAX_NESTING:
            raise _Refused(f"containers nested more than {MAX_NESTING} deep")
        if isinstance(v, torch.Tensor):
            if v.layout != torch.strided or v.dtype not in DTYPES or v.device.type != "cpu":
                raise _Refused(f"tensor of unsupported kind ({v.layout}, {v.dtype})")
            itemsize = v.element_size()
            held = v.untyped_storage().nbytes() // itemsize
            check_layout(v.storage_offset(), tuple(v.shape), tuple(v.stride()), held)
        elif isinstance(v, dict):
            todo.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, (list, tuple)):
            todo.extend((x, depth + 1) for x in v)
        elif not (v is None or isinstance(v, (bool, int, float, str, bytes))):
            raise _Refused(f"an object of type {type(v).__name__}")


def load_tensors(path: Path | str, what: str = "tensor file") -> Any:
    """A ``torch.save`` file's content, loaded with ``weights_only=True`` on the CPU after the
    checks in the module docstring.

    Raises
    ------
    UserError
        One line naming ``path`` and what is wrong: not a regular file, too large, not a torch zip
        archive, anything but plain tensors and data, or a tensor that does not fit its storage.
    """
    path = Path(path)
    data = read_regular(path, MAX_FILE_BYTES, what)
    try:
        scan(data)
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, UnicodeDecodeError) as e:
            # what the scan cannot see: a corrupt record (CRC), or torch's own refusals
            raise _Refused(f"{type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}") from None
        _check_loaded(obj)
    except _Refused as e:
        raise UserError(f"{path}: not a readable {what} ({e})"[:400]) from None
    return obj
