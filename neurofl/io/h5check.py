"""Checking a user's HDF5 file (NetX networks, NIR graphs) before anything in it is read.

One walk for both readers: every object reached by hard links only (an external or soft link would
read another file), datasets stored in the file, uncompressed and in full, a bounded number of
objects and nesting depth, and a bounded total size declared by the datasets' metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import h5py

from neurofl.errors import UserError

T = TypeVar("T")

# what h5py raises for corrupt object headers, B-trees and heaps inside a file that opened
CORRUPT = (OSError, RuntimeError, KeyError, ValueError)


def read_hdf5(
    path: Path, what: str, read: Callable[[h5py.File], T], errors: tuple[type[BaseException], ...] = CORRUPT
) -> T:
    """``read(f)`` on ``path`` opened read-only, every failure of the file itself one line naming
    it: not HDF5 or truncated, or (``errors`` raised while reading) a malformed ``what`` file. The
    caller has checked that ``path`` is a regular file (:func:`neurofl.io.safeio.regular_file`)."""
    try:
        f = h5py.File(path, "r")
    except OSError:  # h5py's error for a file that is not HDF5, or is truncated
        raise UserError(f"{path}: not a readable HDF5 file (truncated or another format)") from None
    try:
        with f:
            return read(f)
    except errors as e:
        raise UserError(f"{path}: malformed {what} file ({type(e).__name__}: {str(e)[:120]})") from None


def check_tree(f: h5py.File, path: Path, kind: str, max_bytes: int, max_depth: int, max_objects: int) -> None:
    """Refuse ``f`` (opened from ``path``) unless it is a plain, bounded tree; nothing is read yet.

    Parameters
    ----------
    f : the open file.
    path : its path, for the messages.
    kind : what the file should be, for the messages (e.g. ``"NetX files"``).
    max_bytes : most bytes all datasets together may declare.
    max_depth : most ``/``-separated levels a group may sit at.
    max_objects : most groups and datasets in the file.
    """
    total, objects = 0, 0
    stack: list[tuple[str, h5py.Group]] = [("", f)]
    while stack:
        name, g = stack.pop()
        for key in g.keys():
            objects += 1
            if objects > max_objects:
                raise UserError(f"{path}: more than {max_objects} HDF5 objects; refused before reading")
            link = g.get(key, getlink=True)
            where = f"{name}/{key}"
            if not isinstance(link, h5py.HardLink):
                raise UserError(f"{path}: {where} is a {type(link).__name__}; {kind} hold hard links only")
            obj = g[key]
            if isinstance(obj, h5py.Group):
                if where.count("/") > max_depth:
                    raise UserError(f"{path}: {where}: groups nested deeper than {max_depth}")
                stack.append((where, obj))
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual or obj.external:
                    raise UserError(f"{path}: {where} stores its data outside the file")
                if obj.id.get_create_plist().get_nfilters():
                    raise UserError(f"{path}: {where} is compressed or filtered; {kind} store data plainly")
                size = 1
                for d in obj.shape or ():
                    size *= int(d)
                nbytes = size * obj.dtype.itemsize
                total += nbytes
                if total > max_bytes:
                    raise UserError(
                        f"{path}: {where} {tuple(obj.shape)} makes the datasets claim more than "
                        f"{max_bytes} bytes; refused before reading"
                    )
                if nbytes and obj.id.get_storage_size() < nbytes:
                    raise UserError(f"{path}: {where} declares {nbytes} bytes but stores fewer (unwritten data)")
            else:
                raise UserError(f"{path}: {where} is a {type(obj).__name__}, not a group or dataset")
