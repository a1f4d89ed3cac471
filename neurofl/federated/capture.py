"""Recorded client updates: what the server received, with what an attacker needs to invert it.

One file per captured update, ``round{R:05d}_client{C:06d}.pt`` (``..._aggregate.pt`` under
secure aggregation, where the server only ever sees the sum of the round's clients), holding
plain tensors and numbers only, so :func:`load_captured` reads it with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neurofl.errors import UserError
from neurofl.federated.files import write_torch
from neurofl.models import Architecture
from neurofl.models.checkpoint import arch_from_dict, arch_to_dict, check_state_dict, load_tensors_file

FORMAT = "neurofl.captured_update/3"
# Files of format 2 (before ``minibatch``) still load: every local step on the whole batch.
OLD_FORMATS = ("neurofl.captured_update/2",)
# Bounds on what a captured file may declare (an attack allocates dummies of ``batch`` samples and
# unrolls ``local_steps`` steps per iteration): the fl settings' own ranges.
MAX_ROUND = 1_000_000
MAX_CLIENT = 1_000_000
MAX_BATCH = 1 << 16
MAX_LR = 1e3
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class CapturedUpdate:
    """One update as the server received it.

    Attributes
    ----------
    round, client : 1-based round; client id (-1: the aggregate of a secure-aggregation round)
    profile, dataset, model_kind : names of the hardware profile, dataset and ``snn`` | ``ann``
    seed : the run's seed (every random choice of the run derives from it)
    profile_table : the full resolved hardware profile (``neurofl.models.checkpoint.profile_to_dict``;
        ``profile_from_dict`` rebuilds it), so the update can be rebuilt without the profile file
    dataset_identity : ``neurofl.runs.identity.dataset_identity`` of the full dataset the run loaded
        (name, shape, classes, sha256 of its arrays)
    run : SHA-256 of the run's identity (settings and input contents, without ``rounds`` and the
        capture options); every capture of one run carries the same value
    (``neurofl fl`` always records these four; a capture written by other code may leave all four
    None, "not recorded", never some of them)
    arch : the model topology; rebuild with ``build_model(model_kind, arch, profile, seed)``
    state_dict : the global model the client started from (``model.load_state_dict`` accepts it)
    update : name (as in ``model.weight_layers()``) -> (1, *weight_shape), after defense and the
        profile's upload quantization
    kind : ``gradient`` (FedSGD: mean gradient of the batch) or ``delta`` (FedAvg: weights after
        ``local_steps`` SGD steps with rate ``lr`` minus the start)
    batch, local_steps, lr : the samples the update was computed on and the client's local steps
        and rate (secagg: batch = the sum of the k clients' batches)
    true_inputs : (batch, *input_shape) those samples, in step order, kept only to score leakage;
        true_labels : (batch,) int64. FedSGD, and FedAvg/FedProx without DP-SGD: every sample of the
        steps (:func:`neurofl.federated.client.trained_batch`); DP-SGD: the first step's Poisson
        sample (each step draws its own); secagg: each client's, concatenated in client order
    minibatch : samples per local step when the steps walk ``true_inputs`` in consecutive
        minibatches, step k on ``[(k mod (batch / minibatch)) minibatch, ...)``, as
        :func:`neurofl.attacks.fedavg.local_update` unrolls them; None: every step on the whole
        batch (FedSGD, one minibatch, DP-SGD, secagg aggregates, format-2 files)
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
    seed: int | None = None
    profile_table: dict[str, Any] | None = None
    dataset_identity: dict[str, Any] | None = None
    run: str | None = None
    minibatch: int | None = None


def file_name(round_: int, client: int) -> str:
    tail = "aggregate" if client < 0 else f"client{client:06d}"
    return f"round{round_:05d}_{tail}.pt"


def save_captured(dir: Path, item: CapturedUpdate) -> None:
    """Write ``item`` into folder ``dir`` atomically (one file per update).

    The payload goes through :func:`check_captured`, the check :func:`load_captured` runs on every
    file it reads, before anything is written: a capture the attack would refuse (a NaN update, an
    empty batch, labels out of range, ...) is refused here, and no file or folder is created.

    Raises
    ------
    UserError
        One line naming the file and the field at fault.
    """
    payload = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    payload["arch"] = arch_to_dict(item.arch)
    payload["format"] = FORMAT
    path = Path(dir) / file_name(item.round, item.client)
    check_captured(payload, path)
    write_torch(path, payload)


def _int(d: dict, key: str, lo: int, path: Path, hi: int) -> int:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise UserError(f"{path}: '{key}' must be an integer in {lo}..{hi}, got {v!r}"[:300])
    return v


def _digest(v: Any) -> bool:
    return isinstance(v, str) and len(v) == 64 and set(v) <= _HEX


def _check_provenance(d: dict, fields: dict[str, Any], arch: Any, path: Path) -> None:
    """seed, profile_table, dataset_identity and run: types, ranges, and agreement with the
    file's other fields."""
    from neurofl.models.checkpoint import MAX_WIDTH, profile_from_dict
    from neurofl.runs.identity import SEED_MAX

    keys = ("seed", "profile_table", "dataset_identity", "run")
    if all(d[k] is None for k in keys):  # not recorded (a capture written by hand or other tools)
        fields.update(dict.fromkeys(keys))
        return
    if any(d[k] is None for k in keys):
        raise UserError(f"{path}: seed, profile_table, dataset_identity and run are recorded together or not at all")
    fields["seed"] = _int(d, "seed", 0, path, SEED_MAX)
    table = d["profile_table"]
    if not isinstance(table, dict):
        raise UserError(f"{path}: 'profile_table' must be a table, got {type(table).__name__}")
    profile = profile_from_dict(table, f"{path} profile_table")
    if profile.name != fields["profile"]:
        raise UserError(f"{path}: 'profile_table' is profile {profile.name!r}, not {fields['profile']!r}"[:300])
    fields["profile_table"] = table
    ident = d["dataset_identity"]
    if not isinstance(ident, dict) or set(ident) != {"name", "shape", "classes", "sha256"}:
        raise UserError(f"{path}: 'dataset_identity' must be a table of name, shape, classes, sha256")
    shape, classes = ident["shape"], ident["classes"]
    if ident["name"] != fields["dataset"] or not _digest(ident["sha256"]):
        raise UserError(f"{path}: 'dataset_identity' names another dataset or has no sha256 digest")
    ints = isinstance(shape, list) and 2 <= len(shape) <= 5
    ints = ints and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1 << 31 for v in shape)
    if not ints or tuple(shape[1:]) != tuple(arch.input_shape):
        raise UserError(f"{path}: 'dataset_identity' shape {shape!r} does not fit inputs {arch.input_shape}"[:300])
    if isinstance(classes, bool) or not isinstance(classes, int) or not 2 <= classes <= MAX_WIDTH:
        why = f"classes must be an integer in 2..{MAX_WIDTH}, got {str(classes)[:40]}"
        raise UserError(f"{path}: 'dataset_identity' {why}")
    fields["dataset_identity"] = ident
    if not _digest(d["run"]):
        raise UserError(f"{path}: 'run' must be a SHA-256 hex digest, got {d['run']!r}"[:300])


def _choice(d: dict, key: str, choices: tuple[str, ...], path: Path) -> str:
    if d[key] not in choices:
        raise UserError(f"{path}: '{key}' must be one of {', '.join(choices)}, got {d[key]!r}"[:300])
    return d[key]


@functools.lru_cache(maxsize=16)
def _expected_shapes(kind: str, arch: Any, profile_json: str | None = None) -> dict[str, tuple[int, ...]]:
    """State-dict shapes of the model ``arch`` describes under the capture's profile (``profile_json``,
    its ``profile_table`` as JSON; None: not recorded, float32's). A SLAYER network's do not depend
    on the profile; a chip network's (Xylo, Speck, Akida, SpiNNaker2, TrueNorth) have other entries,
    so the network the run trained is built, as the writer built it."""
    from neurofl.models import build_model
    from neurofl.models.checkpoint import profile_from_dict
    from neurofl.profiles import load_profile

    profile = load_profile("float32") if profile_json is None else profile_from_dict(json.loads(profile_json), "")
    model = build_model(kind, arch, profile, seed=0)  # type: ignore[arg-type]
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def _minibatch(d: dict, fields: dict[str, Any], path: Path) -> int | None:
    """The file's ``minibatch``: None, or samples per step that walk the batch in equal minibatches
    over the local steps (:func:`neurofl.attacks.fedavg.minibatch_problem`)."""
    from neurofl.attacks.fedavg import minibatch_problem

    v, batch, steps = d["minibatch"], fields["batch"], fields["local_steps"]
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= batch:
        raise UserError(f"{path}: 'minibatch' must be None or an integer in 1..{batch}, got {v!r}"[:300])
    if minibatch_problem(batch, steps, v) is not None:
        raise UserError(f"{path}: 'minibatch' {v} must divide 'batch' {batch} and, over 'local_steps' {steps}, "
                        "use every sample of it (local_steps x minibatch >= batch)")  # fmt: skip
    return v


def _check_item(d: dict, path: Path) -> CapturedUpdate:
    """Every field's type, range and shape, against the architecture the file declares."""
    from neurofl.io.limits import MAX_LOCAL_STEPS

    fields: dict[str, Any] = {n: d[n] for n in _NAMES}
    for key, hi in (("round", MAX_ROUND), ("batch", MAX_BATCH), ("local_steps", MAX_LOCAL_STEPS)):
        fields[key] = _int(d, key, 1, path, hi)
    fields["client"] = _int(d, "client", -1, path, MAX_CLIENT - 1)
    fields["model_kind"] = _choice(d, "model_kind", ("snn", "ann"), path)
    fields["kind"] = _choice(d, "kind", ("gradient", "delta"), path)
    for key in ("profile", "dataset"):
        if not isinstance(d[key], str) or not d[key]:
            raise UserError(f"{path}: '{key}' must be a name, got {d[key]!r}"[:300])
    lr = d["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or not 0 < lr <= MAX_LR:
        raise UserError(f"{path}: 'lr' must be a finite number in (0, {MAX_LR:g}], got {lr!r}"[:300])
    fields["lr"] = float(lr)
    arch = arch_from_dict(d["arch"], str(path))
    fields["arch"] = arch
    _check_provenance(d, fields, arch, path)
    table = fields["profile_table"]
    shapes = _expected_shapes(fields["model_kind"], arch, None if table is None else json.dumps(table, sort_keys=True))
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
    fields["minibatch"] = _minibatch(d, fields, path)
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
MAX_FILES = 100_000


def check_captured(d: Any, path: Path) -> CapturedUpdate:
    """Validate one captured update's payload (what its file holds): the one check
    :func:`save_captured` runs before writing and :func:`load_captured` runs on every file it reads.

    Checked: the format and fields; every field's type and range, the provenance, the state dict
    and update against the declared architecture, finite tensors, inputs and labels of the declared
    batch, a minibatch that walks it (:func:`_check_item`). (The file's name is checked against its
    round and client by the reader; the writer makes the name from them.) A file of an
    :data:`OLD_FORMATS` format has no ``minibatch``: it reads as None.

    Raises
    ------
    UserError
        One line naming ``path`` and the field at fault.
    """
    if isinstance(d, dict) and d.get("format") in OLD_FORMATS:
        d = {**d, "minibatch": None}
    if not isinstance(d, dict) or d.get("format") != FORMAT and d.get("format") not in OLD_FORMATS:
        raise UserError(f"{path}: not a neurofl captured update (expected format {FORMAT})")
    if any(n not in d for n in _NAMES):
        missing = next(n for n in _NAMES if n not in d)
        raise UserError(f"{path}: not a neurofl captured update (format {d['format']} without '{missing}')")
    return _check_item(d, path)


def load_captured(dir: Path) -> list[CapturedUpdate]:
    """Every captured update in ``dir``, sorted by (round, client).

    Files load with ``torch.load(weights_only=True)`` (no code runs); every field is checked:
    integer rounds/batches, finite tensors, state dict and update shapes that fit the declared
    architecture (at most :data:`neurofl.models.checkpoint.MAX_PARAMETERS` weights), inputs and labels
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
    if len(files) > MAX_FILES:
        raise UserError(f"{dir}: {len(files)} captured updates, more than the {MAX_FILES} read at once")
    items: list[CapturedUpdate] = []
    for path in files:
        d = load_tensors_file(path, "captured update")  # refuses FIFOs, devices, sockets, folders
        item = check_captured(d, path)
        if items and item.run != items[0].run:
            mine, theirs = (str(r)[:12] if r else "not recorded" for r in (item.run, items[0].run))
            raise UserError(
                f"{path}: captured in another run than {files[0].name} (run {mine} vs {theirs}); "
                "keep one run's updates per folder"
            )
        if file_name(item.round, item.client) != path.name:
            raise UserError(f"{path}: holds round {item.round} client {item.client}, not what its name says")
        items.append(item)
    return sorted(items, key=lambda c: (c.round, c.client))


def capture_digest(dir: Path) -> str:
    """SHA-256 of what an attack reads from a folder of captured updates: every field of every file
    but ``run`` (the digest of the run's settings). Two runs whose servers received the same uploads
    from the same global model get the same value, e.g. DP-FedAvg at any epsilon in round 1, whose
    noise is added after the server has the clipped uploads."""
    from neurofl.runs.identity import arrays_digest, table_digest

    files = []
    for path in sorted(Path(dir).glob("round*_*.pt")):
        tensors, plain = {}, {}
        for key, v in load_tensors_file(path, "captured update").items():
            if isinstance(v, torch.Tensor):
                tensors[key] = v
            elif isinstance(v, dict) and any(isinstance(t, torch.Tensor) for t in v.values()):
                tensors.update({f"{key}.{name}": t for name, t in v.items()})
            elif key != "run":
                plain[key] = v
        names = sorted(tensors)
        files.append([path.name, plain, names, arrays_digest(*(tensors[n].cpu().numpy() for n in names))])
    return table_digest(files)
