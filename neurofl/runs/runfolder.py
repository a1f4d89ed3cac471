"""The one run-folder guard: an output folder belongs to one configuration.

``config.json`` in the folder holds the run's fingerprint (settings plus the content identities of
its inputs, :mod:`neurofl.runs.identity`). A rerun with the same fingerprint resumes; another
fingerprint is refused with one line naming the settings that differ. Files inside the folder are
addressed through :meth:`RunFolder.path`, which never leaves it. A run refused before it wrote
anything leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from neurofl.errors import UserError
from neurofl.runs.identity import path_component

CONFIG = "config.json"
CONFIG_BYTES = 1 << 20  # a run's config.json is a few KB; a larger one is not ours
_SYSTEM = ("/proc", "/sys", "/dev")


def check_out_dir(out: Path, flag: str = "--out") -> Path:
    """``out`` as a folder a run may write into; refuses a file, a system folder or a path that
    cannot be created, with one line naming ``flag``."""
    out = Path(out)
    resolved = out.resolve()
    # both as written (/proc/self/cwd/x resolves to the working folder) and once links are followed
    spelled = os.path.normpath(os.path.abspath(out))
    if any(p == s or p.startswith(s + "/") for p in (spelled, str(resolved)) for s in _SYSTEM):
        raise UserError(f"{flag} {out}: a system folder, not a place for results")
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out}: exists and is not a folder")
    for parent in resolved.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {out}: '{parent}' is not a folder")
            if not out.exists() and not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"{flag} {out}: cannot create it (no write permission in '{parent}')")
            break
    if out.exists() and not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {out}: no write permission")
    return out


def _differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))


class RunFolder:
    """A run's output folder, claimed for one fingerprint.

    Use as a context manager: a :class:`UserError` raised inside it before the run wrote any file
    besides ``config.json`` removes what :meth:`claim` created, so a refused run leaves nothing.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()) / "run"
    >>> with RunFolder(d, {"seed": 0}) as run:
    ...     run.path("rows", "snn@../x").name
    'snn_.._x'
    >>> RunFolder(d, {"seed": 1}).claim()
    Traceback (most recent call last):
    ...
    neurofl.errors.UserError: ... holds a run with different settings (seed); use another --out
    """

    def __init__(self, out: Path, fingerprint: dict[str, Any], flag: str = "--out"):
        self.out = check_out_dir(out, flag)
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self._created_dir = False
        self._created_config = False
        self._before: set[Path] = set()

    @property
    def config_path(self) -> Path:
        return self.out / CONFIG

    def existing(self) -> dict[str, Any] | None:
        """The fingerprint already in the folder, or None."""
        if not self.config_path.exists():
            return None
        from neurofl.io.safeio import read_regular

        try:
            theirs = json.loads(read_regular(self.config_path, CONFIG_BYTES, "run configuration").decode())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise UserError(f"{self.config_path}: unreadable; remove it or use another --out") from None
        if not isinstance(theirs, dict):
            raise UserError(f"{self.config_path}: not a neurofl run configuration; use another --out")
        return theirs

    def claim(self) -> RunFolder:
        """Resume a run with this fingerprint, or start one; refuse another run's folder."""
        from neurofl.report import write_json

        theirs = self.existing()
        if theirs is not None:
            if theirs != self.fingerprint:
                diff = _differences(self.fingerprint, theirs)
                if diff == ["device"]:  # chunks computed on two devices would not add up to one run
                    was, now = theirs.get("device", "cpu"), self.fingerprint.get("device", "cpu")
                    raise UserError(
                        f"{self.out} holds a run computed on {was}, not {now} (their arithmetic differs); "
                        f"rerun with --device {was} to resume it, or use another --out"
                    )
                raise UserError(
                    f"{self.out} holds a run with different settings ({', '.join(diff)}); use another --out"
                )
            return self
        self._before = self._files()
        try:
            self._created_dir = not self.out.exists()
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"--out {self.out}: cannot create it ({e.strerror})") from None
        write_json(self.config_path, self.fingerprint)
        self._created_config = True
        return self

    def path(self, *parts: str) -> Path:
        """A path inside the folder; each part becomes one safe component (names never escape)."""
        return self.out.joinpath(*(path_component(p, limit=96) for p in parts))

    def _files(self) -> set[Path]:
        return {Path(root, f) for root, _dirs, files in os.walk(self.out) for f in files}

    def _only_config(self) -> bool:
        return self._files() - self._before <= {self.config_path}

    def abandon(self) -> None:
        """Undo :meth:`claim` if it created the run and nothing else was written since."""
        if not self._created_config or not self._only_config():
            return
        if self._created_dir:
            shutil.rmtree(self.out, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                self.config_path.unlink()

    def __enter__(self) -> RunFolder:
        return self.claim()

    def __exit__(self, kind, _value, _tb) -> None:
        if kind is not None and issubclass(kind, UserError):
            self.abandon()

