"""Recorded client updates: what the server received, with what an attacker needs to invert it.

One file per captured update, ``round{R:05d}_client{C:06d}.pt`` (``..._aggregate.pt`` under
secure aggregation, where the server only ever sees the sum of the round's clients), holding
plain tensors and numbers only, so :func:`load_captured` reads it with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from neurofl.errors import UserError
from neurofl.federated.files import write_torch
from neurofl.models import Architecture
from neurofl.models.factory import NeuronParams

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
    payload["arch"] = dataclasses.asdict(item.arch)
    payload["format"] = FORMAT
    write_torch(Path(dir) / file_name(item.round, item.client), payload)


def _arch(d: dict) -> Architecture:
    return Architecture(
        input_shape=tuple(d["input_shape"]),
        classes=int(d["classes"]),
        hidden=tuple(d["hidden"]),
        neuron=NeuronParams(**d["neuron"]),
        weight_scale=float(d["weight_scale"]),
    )


def load_captured(dir: Path) -> list[CapturedUpdate]:
    """Every captured update in ``dir``, sorted by (round, client).

    Raises
    ------
    UserError
        The folder is missing or holds no captured updates, or a file is not one.
    """
    dir = Path(dir)
    if not dir.is_dir():
        raise UserError(f"{dir}: no such folder of captured updates")
    files = sorted(dir.glob("round*_*.pt"))
    if not files:
        raise UserError(
            f"{dir}: no captured updates (round*_client*.pt); run `neurofl fl --capture-rounds ...`"
        )
    names = [f.name for f in dataclasses.fields(CapturedUpdate)]
    items = []
    for path in files:
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
            raise UserError(f"{path}: not a readable captured update ({type(e).__name__})") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT or any(n not in d for n in names):
            raise UserError(f"{path}: not a neurofl captured update (expected format {FORMAT})")
        try:
            fields = {n: d[n] for n in names}
            fields["arch"] = _arch(d["arch"])
            items.append(CapturedUpdate(**fields))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path}: malformed captured update ({e})") from None
    return sorted(items, key=lambda c: (c.round, c.client))
