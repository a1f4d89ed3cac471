"""Opening input files without surprises: regular files only, sizes bounded before reading.

Every reader of a user's file goes through here. A FIFO, device, socket or folder where a file is
expected is refused (reading a FIFO blocks forever, a device can be endless); the file is opened
with ``O_NONBLOCK`` and checked with ``fstat`` on the open descriptor, so what is checked is what
is read. Sizes are checked against a bound before any byte is read.

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> os.mkfifo(os.path.join(d, "fifo"))
>>> regular_file(os.path.join(d, "fifo"), "profile")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
neurofl.errors.UserError: .../fifo: a FIFO, not a regular file (profile)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from neurofl.errors import UserError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _refuse_mode(path: Path, st: os.stat_result, what: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{path}: {_kind(st.st_mode)}, not a regular file ({what})")


def regular_file(path: Path | str, what: str = "file") -> os.stat_result:
    """``os.stat`` of ``path`` (following links), refusing anything but a regular file.

    Raises
    ------
    UserError
        ``path`` is missing, unreadable, or a folder, FIFO, device or socket.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file ({what})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    _refuse_mode(path, st, what)
    return st


def open_regular(path: Path | str, what: str = "file", limit: int | None = None) -> BinaryIO:
    """``path`` opened for binary reading, checked on the open descriptor: a regular file of at
    most ``limit`` bytes (when given).

    Raises
    ------
    UserError
        Missing, unreadable, not a regular file, or larger than ``limit``.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file ({what})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot open ({e.strerror or type(e).__name__})") from None
    try:
        st = os.fstat(fd)
        _refuse_mode(path, st, what)
        if limit is not None and st.st_size > limit:
            raise UserError(f"{path}: {st.st_size} bytes, more than the {limit} accepted for a {what}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path | str, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``; a file that grows past it while
    being read is refused too).

    Raises
    ------
    UserError
        As :func:`open_regular`, or a read error.
    """
    path = Path(path)
    chunks: list[bytes] = []
    total = 0
    with open_regular(path, what, limit) as f:
        # read(n) allocates n bytes up front: ask for what fstat says is there (+1 to see growth),
        # then for bounded chunks (files such as /proc's report size 0)
        want = os.fstat(f.fileno()).st_size + 1
        try:
            while total <= limit:
                chunk = f.read(min(want, limit + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                want = 1 << 20
        except OSError as e:
            raise UserError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    if total > limit:
        raise UserError(f"{path}: more than the {limit} bytes accepted for a {what}")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def regular_files(paths: list[Path], what: str = "file") -> list[Path]:
    """``paths`` (e.g. a folder's glob), each checked with :func:`regular_file`."""
    for p in paths:
        regular_file(p, what)
    return paths
