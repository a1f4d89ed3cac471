"""Recorded client updates: what the server received, with what an attacker needs to invert it.

One file per captured update, ``round{R:05d}_client{C:06d}.pt`` (``..._aggregate.pt`` under
secure aggregation, where the server only ever sees the sum of the round's clients), holding
plain tensors and numbers only, so :func:`load_captured` reads it with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neurofl.checkpoint import arch_from_dict, arch_to_dict, check_state_dict, load_tensors_file
from neurofl.errors import UserError
from neurofl.federated.files import write_torch
from neurofl.models import Architecture

FORMAT = "neurofl.captured_update/1"


@dataclass(frozen=True)
class CapturedUpdate:
    """One update as the server received it.

    Attributes
    ----------
    round, client : 1-based round; client id (-1: the aggregate of a secure-aggregation round)
    profile, dataset, model_kind : names of the hardware profile, dataset and ``snn`` | ``ann``
    arch : the model topology; rebuild with ``build_model(model_kind, arch, profile, seed)``
    state_dict : the global model the client started from (``model.load_state_dict`` accepts it)
    update : name (as in ``model.weight_layers()``) -> (1, *weight_shape), after defense and the
        profile's upload quantization
    kind : ``gradient`` (FedSGD: mean gradient of the batch) or ``delta`` (FedAvg: weights after
        ``local_steps`` SGD steps with rate ``lr`` minus the start)
    batch, local_steps, lr : the client's training settings (secagg: batch = k * per-client batch)
    true_inputs : (batch, *input_shape) the samples of the first local step, kept only to score
        leakage; true_labels : (batch,) int64
    """

    round: int
    client: int
    profile: str
    dataset: str
    model_kind: str
    arch: Architecture
    state_dict: dict[str, torch.Tensor]
    update: dict[str, torch.Tensor]
    kind: str
    batch: int
    local_steps: int
    lr: float
    true_inputs: torch.Tensor | None
    true_labels: torch.Tensor | None


def file_name(round_: int, client: int) -> str:
    tail = "aggregate" if client < 0 else f"client{client:06d}"
    return f"round{round_:05d}_{tail}.pt"


def save_captured(dir: Path, item: CapturedUpdate) -> None:
    """Write ``item`` into folder ``dir`` atomically (one file per update)."""
    payload = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    payload["arch"] = arch_to_dict(item.arch)
    payload["format"] = FORMAT
    write_torch(Path(dir) / file_name(item.round, item.client), payload)


def _int(d: dict, key: str, lo: int, path: Path) -> int:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise UserError(f"{path}: '{key}' must be an integer >= {lo}, got {v!r}"[:300])
    return v


def _choice(d: dict, key: str, choices: tuple[str, ...], path: Path) -> str:
    if d[key] not in choices:
        raise UserError(f"{path}: '{key}' must be one of {', '.join(choices)}, got {d[key]!r}"[:300])
    return d[key]


@functools.lru_cache(maxsize=16)
def _expected_shapes(kind: str, arch: Any) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of the model ``arch`` describes (they do not depend on the profile)."""
    from neurofl.models import build_model
    from neurofl.profiles import load_profile

    model = build_model(kind, arch, load_profile("float32"), seed=0)  # type: ignore[arg-type]
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def _check_item(d: dict, path: Path) -> CapturedUpdate:
    """Every field's type, range and shape, against the architecture the file declares."""
    fields: dict[str, Any] = {n: d[n] for n in _NAMES}
    for key in ("round", "batch", "local_steps"):
        fields[key] = _int(d, key, 1, path)
    fields["client"] = _int(d, "client", -1, path)
    fields["model_kind"] = _choice(d, "model_kind", ("snn", "ann"), path)
    fields["kind"] = _choice(d, "kind", ("gradient", "delta"), path)
    for key in ("profile", "dataset"):
        if not isinstance(d[key], str) or not d[key]:
            raise UserError(f"{path}: '{key}' must be a name, got {d[key]!r}"[:300])
    lr = d["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise UserError(f"{path}: 'lr' must be a finite number > 0, got {lr!r}"[:300])
    fields["lr"] = float(lr)
    arch = arch_from_dict(d["arch"], str(path))
    fields["arch"] = arch
    shapes = _expected_shapes(fields["model_kind"], arch)
    state = check_state_dict(d["state_dict"], path, "state_dict")
    for name, shape in shapes.items():
        if name not in state or tuple(state[name].shape) != shape:
            got = tuple(state[name].shape) if name in state else "nothing"
            raise UserError(f"{path}: state_dict '{name}' must have shape {shape}, got {got}")
    if set(state) != set(shapes):
        raise UserError(f"{path}: state_dict has unexpected entry '{sorted(set(state) - set(shapes))[0]}'"[:300])
    update = check_state_dict(d["update"], path, "update")
    if not update:
        raise UserError(f"{path}: 'update' holds no tensors")
    for name, t in update.items():
        if name not in shapes or tuple(t.shape) != (1, *shapes[name]) or not t.is_floating_point():
            raise UserError(f"{path}: update '{name}' {tuple(t.shape)} {t.dtype} is not (1, *weight shape) float"[:300])
    batch, x, y = fields["batch"], d["true_inputs"], d["true_labels"]
    if (x is None) != (y is None):
        raise UserError(f"{path}: 'true_inputs' and 'true_labels' must both be present or both None")
    if x is not None:
        check_state_dict({"true_inputs": x, "true_labels": y}, path, "data")
        if tuple(x.shape) != (batch, *arch.input_shape) or not x.is_floating_point():
            raise UserError(f"{path}: true_inputs {tuple(x.shape)} must be float ({batch}, *{arch.input_shape})")
        if tuple(y.shape) != (batch,) or y.dtype != torch.int64:
            raise UserError(f"{path}: true_labels {tuple(y.shape)} {y.dtype} must be int64 of shape ({batch},)")
        if batch and (int(y.min()) < 0 or int(y.max()) >= arch.classes):
            raise UserError(f"{path}: true_labels outside 0..{arch.classes - 1}")
    return CapturedUpdate(**fields)


_NAMES = tuple(f.name for f in dataclasses.fields(CapturedUpdate))


def load_captured(dir: Path) -> list[CapturedUpdate]:
    """Every captured update in ``dir``, sorted by (round, client).

    Files load with ``torch.load(weights_only=True)`` (no code runs); every field is checked:
    integer rounds/batches, finite tensors, state dict and update shapes that fit the declared
    architecture (at most :data:`neurofl.checkpoint.MAX_PARAMETERS` weights), inputs and labels
    of the declared batch.

    Raises
    ------
    UserError
        The folder is missing or holds no captured updates, or a file is not a valid one.
    """
    dir = Path(dir)
    if not dir.is_dir():
        raise UserError(f"{dir}: no such folder of captured updates")
    files = sorted(dir.glob("round*_*.pt"))
    if not files:
        raise UserError(
            f"{dir}: no captured updates (round*_client*.pt); run `neurofl fl --capture-rounds ...`"
        )
    items = []
    for path in files:
        d = load_tensors_file(path, "captured update")
        if not isinstance(d, dict) or d.get("format") != FORMAT or any(n not in d for n in _NAMES):
            raise UserError(f"{path}: not a neurofl captured update (expected format {FORMAT})")
        items.append(_check_item(d, path))
    return sorted(items, key=lambda c: (c.round, c.client))
