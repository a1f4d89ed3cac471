"""Where on-disk datasets live: ``--data-dir`` or the ``NEUROFL_DATA`` environment variable."""

from __future__ import annotations

import os
from pathlib import Path

from neurofl.errors import UserError

DATA_ENV = "NEUROFL_DATA"


def resolve_data_dir(data_dir: Path | None, dataset: str) -> Path:
    """The data dir to read ``dataset`` from.

    Raises
    ------
    UserError
        Neither ``data_dir`` nor ``$NEUROFL_DATA`` is set, or the folder does not exist.
    """
    if data_dir is None:
        env = os.environ.get(DATA_ENV)
        if not env:
            raise UserError(f"dataset '{dataset}' is read from disk: pass --data-dir DIR or set {DATA_ENV}")
        data_dir = Path(env)
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise UserError(f"dataset '{dataset}': data dir {data_dir} is not a folder")
    return data_dir


def optional_data_dir(data_dir: Path | None) -> Path | None:
    """``data_dir`` or ``$NEUROFL_DATA``, or None when neither is set (for availability checks)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None


def missing_message(dataset: str, where: Path, expected: list[str]) -> str:
    """One line naming the files a loader expected and where it looked."""
    return f"dataset '{dataset}': missing under {where}: {', '.join(expected)} (see docs/datasets.md)"
