"""Crafting hostile ``torch.save`` files: the zip layout torch writes, with a pickle whose storage
sizes, tensor shapes and strides are whatever the test says (torch itself cannot save such
files). Shares no code with :mod:`neurofl.io.tensorfile`."""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class FakeStorage:
    """A storage record: ``data`` bytes under key ``key``, declared to hold ``numel`` elements of
    ``kind`` (a torch storage class such as ``torch.FloatStorage``)."""

    key: str
    data: bytes
    numel: int
    kind: Any = torch.FloatStorage


@dataclass
class FakeTensor:
    """``_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`` as pickled."""

    storage: FakeStorage
    offset: int
    size: tuple
    stride: tuple

    def __reduce__(self) -> tuple:
        args = (self.storage, self.offset, tuple(self.size), tuple(self.stride), False, collections.OrderedDict())
        return (torch._utils._rebuild_tensor_v2, args)


class _Pickler(pickle.Pickler):
    def __init__(self, f: io.BytesIO):
        super().__init__(f, protocol=2)
        self.storages: dict[str, FakeStorage] = {}

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, FakeStorage):
            self.storages[obj.key] = obj
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None


def torch_zip(obj: Any, extra: dict[str, bytes] | None = None, compress: bool = False) -> bytes:
    """The bytes of a file in ``torch.save``'s zip layout holding ``obj`` (which may contain
    :class:`FakeTensor` objects)."""
    buf = io.BytesIO()
    p = _Pickler(buf)
    p.dump(obj)
    out = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w", method) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, s in p.storages.items():
            z.writestr(f"archive/data/{key}", s.data)
        z.writestr("archive/version", "3\n")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return out.getvalue()


def write_torch_zip(path: Path, obj: Any, **kw: Any) -> Path:
    """Write :func:`torch_zip` of ``obj`` to ``path``."""
    Path(path).write_bytes(torch_zip(obj, **kw))
    return Path(path)


def float_tensor(values: int, size: tuple, stride: tuple, offset: int = 0, numel: int | None = None,
                 key: str = "0") -> FakeTensor:  # fmt: skip
    """A float32 tensor record over a storage of ``values`` zeros that claims ``numel`` elements."""
    data = bytes(4 * values)
    return FakeTensor(FakeStorage(key, data, values if numel is None else numel), offset, size, stride)
