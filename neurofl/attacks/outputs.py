"""An attack run's folder: config.json, report.json, reconstructions.npz and .png (atomic writes)."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from neurofl import __version__
from neurofl.atomic import atomic_write_bytes
from neurofl.errors import UserError
from neurofl.report import reconstructions_png, write_json


def fingerprint(cfg: Any) -> dict[str, Any]:
    """The settings that determine a run's result, as JSON data."""
    return {"neurofl_version": __version__, **json.loads(json.dumps(dataclasses.asdict(cfg), default=str))}


def load_finished(out: Path, cfg: Any) -> dict[str, Any] | None:
    """The report of a finished run with the same settings in ``out``; None if there is none.
    Raises UserError if ``out`` holds a run with other settings."""
    cfg_path, rep_path = out / "config.json", out / "report.json"
    if not cfg_path.is_file():
        return None
    try:
        theirs = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError):
        raise UserError(f"{cfg_path}: unreadable; remove it or use another --out") from None
    mine = fingerprint(cfg)
    if theirs != mine:
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise UserError(f"{out} holds a run with different settings ({', '.join(diff)}); use another --out")
    if not rep_path.is_file():
        return None
    return json.loads(rep_path.read_text())


def save_run(out: Path, cfg: Any, report: dict[str, Any], rec: np.ndarray, truth: np.ndarray) -> None:
    """Write the run's files; report.json last, so its presence means the run finished."""
    write_json(out / "config.json", fingerprint(cfg))
    buf = io.BytesIO()
    np.savez_compressed(buf, reconstructions=rec, originals=truth)
    atomic_write_bytes(out / "reconstructions.npz", buf.getvalue())
    if rec.ndim == 4:
        name = f"{report['results'][0]['model']}@{report['results'][0]['profile']}"
        reconstructions_png(out / "reconstructions.png", truth, {name: rec})
    write_json(out / "report.json", report)
