"""Model checkpoints: a state dict plus a JSON header saying what the model is.

The file is a plain ``torch.save`` of ``{"header": str, "state_dict": dict}`` so that it loads
with ``torch.load(..., weights_only=True)`` (no pickled code runs). The header records the model
kind, architecture, full hardware profile, dataset, accuracy and library versions; loading refuses
a checkpoint whose header disagrees with the profile or architecture the caller asks for.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from neurofl.config import from_table
from neurofl.errors import UserError
from neurofl.models import Architecture, ModelKind, build_model
from neurofl.models.factory import NeuronParams
from neurofl.profiles import HardwareProfile

FORMAT = "neurofl-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (eval mode) and what its header says."""

    model: torch.nn.Module
    kind: ModelKind
    arch: Any
    profile: HardwareProfile
    dataset: str
    accuracy: float
    header: dict[str, Any]


def versions() -> dict[str, str]:
    """Versions of the libraries that define a model's numerics."""
    out = {}
    for pkg in ("neurofl", "lava-dl", "lava-nc", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def arch_to_dict(arch: Any) -> dict[str, Any]:
    """An architecture as JSON-able data, with ``type`` = ``mlp`` or ``conv``."""
    return {"type": "conv" if type(arch).__name__ == "ConvArchitecture" else "mlp", **dataclasses.asdict(arch)}


def arch_from_dict(d: dict[str, Any]) -> Any:
    """Inverse of :func:`arch_to_dict` (headers without ``type`` are fully connected)."""
    common = {
        "input_shape": tuple(d["input_shape"]),
        "classes": int(d["classes"]),
        "neuron": NeuronParams(**d["neuron"]),
        "weight_scale": float(d["weight_scale"]),
    }
    if d.get("type", "mlp") == "conv":
        from neurofl.models.conv import ConvArchitecture

        return ConvArchitecture(
            channels=int(d["channels"]), kernel=int(d["kernel"]), strides=tuple(d["strides"]), **common
        )
    return Architecture(hidden=tuple(d["hidden"]), **common)


def profile_to_dict(profile: HardwareProfile) -> dict[str, Any]:
    """The profile as a TOML-shaped table (``None`` sections dropped), reloadable by :func:`profile_from_dict`."""
    return {k: v for k, v in dataclasses.asdict(profile).items() if v is not None}


def profile_from_dict(d: dict[str, Any], where: str) -> HardwareProfile:
    return from_table(HardwareProfile, d, where)


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then move the result onto ``path`` (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    kind: ModelKind,
    arch: Any,
    profile: HardwareProfile,
    dataset: str,
    accuracy: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``model`` and its header to ``path`` atomically; return the header."""
    header = {
        "format": FORMAT,
        "kind": kind,
        "architecture": arch_to_dict(arch),
        "profile": profile_to_dict(profile),
        "dataset": dataset,
        "accuracy": accuracy,
        "versions": versions(),
        **(extra or {}),
    }
    payload = {"header": json.dumps(header), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))
    return header


def load_checkpoint(
    path: Path,
    profile: HardwareProfile | None = None,
    arch: Any | None = None,
    kind: ModelKind | None = None,
) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint` and rebuild its model.

    Parameters
    ----------
    path : the ``.pt`` file
    profile, arch, kind : when given, the header must match them exactly

    Raises
    ------
    UserError
        Missing or unreadable file, not a neurofl checkpoint, or a header that does not match.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupt files
        raise UserError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(payload, dict) or "header" not in payload or "state_dict" not in payload:
        raise UserError(f"{path}: not a neurofl checkpoint (no header/state_dict)")
    try:
        header = json.loads(payload["header"])
        if header.get("format") != FORMAT:
            raise UserError(f"{path}: unsupported checkpoint format {header.get('format')!r} (expected {FORMAT})")
        got_kind = header["kind"]
        got_arch = arch_from_dict(header["architecture"])
        got_profile = profile_from_dict(header["profile"], f"{path} header")
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: malformed checkpoint header ({type(e).__name__}: {e})") from None
    if kind is not None and got_kind != kind:
        raise UserError(f"{path}: checkpoint holds a '{got_kind}' model, not '{kind}'")
    if profile is not None and got_profile != profile:
        raise UserError(
            f"{path}: checkpoint was trained under profile '{got_profile.name}', which differs from the requested "
            f"profile '{profile.name}'"
        )
    if arch is not None and got_arch != arch:
        raise UserError(f"{path}: checkpoint architecture {got_arch.widths} does not match the requested {arch.widths}")
    model = build_model(got_kind, got_arch, got_profile, seed=0)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise UserError(
            f"{path}: state dict does not fit the architecture in its header ({str(e).splitlines()[0]})"
        ) from None
    model.eval()
    return Checkpoint(
        model, got_kind, got_arch, got_profile, header.get("dataset", "?"), header.get("accuracy"), header
    )
