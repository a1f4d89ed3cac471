"""Atomic file writes: a temp file in the same folder, then ``os.replace`` (never half-written)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from neurofl.io.atomic import atomic_write_bytes
from neurofl.report import write_json

__all__ = ["write_bytes", "write_json", "write_torch"]  # write_json: the one JSON writer (NaN -> null)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (creating the folder)."""
    atomic_write_bytes(path, data)


def write_torch(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())
