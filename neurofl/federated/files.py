"""Atomic file writes: a temp file in the same folder, then ``os.replace`` (never half-written)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from neurofl.atomic import atomic_write_bytes


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (creating the folder)."""
    atomic_write_bytes(path, data)


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def write_torch(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())
