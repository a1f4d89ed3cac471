"""Model checkpoints: a state dict plus a JSON header saying what the model is.

The file is a plain ``torch.save`` of ``{"header": str, "state_dict": dict}`` so that it loads
with ``torch.load(..., weights_only=True)`` (no pickled code runs). The header records the model
kind, architecture, full hardware profile, dataset, accuracy and library versions; loading refuses
a checkpoint whose header disagrees with the profile or architecture the caller asks for.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurofl.config import from_table
from neurofl.errors import UserError
from neurofl.io.atomic import atomic_write
from neurofl.models import Architecture, ModelKind, NeuronParams, build_model
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
    accuracy: float | None  # None: not measured (e.g. an imported model)
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
    d = dataclasses.asdict(arch)
    d["neuron"] = arch.neuron.identity()  # the ablation keys only where they differ from SLAYER's neuron
    return {"type": "conv" if type(arch).__name__ == "ConvArchitecture" else "mlp", **d}


# A file may claim any topology; models above this many weights are refused before being built.
MAX_PARAMETERS = 50_000_000
# Largest accepted input dimension, class count or layer width in a file's architecture.
MAX_WIDTH = 1 << 20
_COMMON_KEYS = ("input_shape", "classes", "neuron", "weight_scale")


def _positive_ints(value: Any, where: str, length: tuple[int, int]) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not length[0] <= len(value) <= length[1]:
        raise UserError(f"{where}: must be a list of {length[0]} to {length[1]} integers, got {value!r}"[:300])
    if any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_WIDTH for v in value):
        raise UserError(f"{where}: entries must be integers in 1..{MAX_WIDTH}, got {value!r}"[:300])
    return tuple(value)


def _neuron_params(d: Any, where: str) -> NeuronParams:
    n = from_table(NeuronParams, d, where, "neuron.")
    if not n.threshold > 0 or not 0 <= n.current_decay <= 1 or not 0 <= n.voltage_decay <= 1:
        raise UserError(f"{where}: neuron needs threshold > 0 and decays in [0, 1], got {n}")
    if not n.tau_grad > 0 or not n.scale_grad > 0:
        raise UserError(f"{where}: neuron needs tau_grad > 0 and scale_grad > 0, got {n}")
    return n


def parameter_count(arch: Any) -> int:
    """Weights of the model ``arch`` describes (conv kernels and dense matrices; no biases)."""
    if type(arch).__name__ == "ConvArchitecture":
        c_in = arch.input_shape[0] * (arch.input_shape[3] if len(arch.input_shape) == 4 else 1)  # ANN: C*T
        convs = arch.channels * arch.kernel**2 * (c_in + arch.channels * (len(arch.strides) - 1))
        return convs + arch.features * arch.classes
    w = arch.widths
    return sum(a * b for a, b in zip(w[:-1], w[1:], strict=False))


def arch_from_dict(d: Any, where: str = "architecture") -> Any:
    """Inverse of :func:`arch_to_dict` (headers without ``type`` are fully connected).

    Every field is type- and range-checked, and topologies above :data:`MAX_PARAMETERS` weights
    are refused before any model is built.

    Raises
    ------
    UserError
        naming ``where`` and the offending key.
    """
    if not isinstance(d, dict):
        raise UserError(f"{where}: architecture must be a table, got {type(d).__name__}")
    table = dict(d)
    kind = table.pop("type", "mlp")
    if kind not in ("mlp", "conv"):
        raise UserError(f"{where}: architecture type must be 'mlp' or 'conv', got {kind!r}"[:300])
    for key in _COMMON_KEYS:
        if key not in table:
            raise UserError(f"{where}: architecture lacks '{key}'")
    shape = _positive_ints(table["input_shape"], f"{where}: architecture.input_shape", (1, 4))
    classes = table["classes"]
    if isinstance(classes, bool) or not isinstance(classes, int) or not 2 <= classes <= MAX_WIDTH:
        raise UserError(f"{where}: architecture.classes must be an integer in 2..{MAX_WIDTH}, got {classes!r}"[:300])
    scale = table["weight_scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 1e-6 <= scale <= 1e6:
        raise UserError(f"{where}: architecture.weight_scale must be a number in [1e-6, 1e6], got {scale!r}"[:300])
    neuron = _neuron_params(table["neuron"], where)
    try:
        if kind == "conv":
            from neurofl.models.conv import ConvArchitecture

            extra = sorted(set(table) - {*_COMMON_KEYS, "channels", "kernel", "strides"})
            if extra:
                raise UserError(f"{where}: unknown architecture key '{extra[0]}'")
            channels, kernel = table.get("channels", 12), table.get("kernel", 5)
            for key, v, hi in (("channels", channels, 4096), ("kernel", kernel, 31)):
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
                    raise UserError(f"{where}: architecture.{key} must be an integer in 1..{hi}, got {v!r}"[:300])
            strides = _positive_ints(table.get("strides", [2, 2, 1]), f"{where}: architecture.strides", (1, 16))
            arch: Any = ConvArchitecture(shape, classes, channels, kernel, strides, neuron, float(scale))
        else:
            extra = sorted(set(table) - {*_COMMON_KEYS, "hidden"})
            if extra:
                raise UserError(f"{where}: unknown architecture key '{extra[0]}'")
            hidden = _positive_ints(table.get("hidden", [128]), f"{where}: architecture.hidden", (0, 64))
            arch = Architecture(shape, classes, hidden, neuron, float(scale))
        count = parameter_count(arch)
    except ValueError as e:  # ConvArchitecture's own checks
        raise UserError(f"{where}: {e}") from None
    if count > MAX_PARAMETERS:
        raise UserError(f"{where}: architecture has {count} weights, more than the {MAX_PARAMETERS} accepted")
    return arch


def header_seed(header: dict[str, Any], where: str, default: int = 0) -> int:
    """The ``seed`` a file's header records (``default`` when it records none): an integer in
    [0, :data:`neurofl.runs.identity.SEED_MAX`].

    Raises
    ------
    UserError
        The seed is not such an integer (a string, list, bool, negative or too large).
    """
    from neurofl.runs.identity import SEED_MAX

    seed = header.get("seed", default)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise UserError(f"{where}: seed must be an integer in 0..{SEED_MAX}, got {seed!r}"[:300])
    return seed


def profile_to_dict(profile: HardwareProfile) -> dict[str, Any]:
    """The profile as a TOML-shaped table (``None`` sections dropped), reloadable by :func:`profile_from_dict`."""
    return {k: v for k, v in dataclasses.asdict(profile).items() if v is not None}


def profile_from_dict(d: dict[str, Any], where: str) -> HardwareProfile:
    return from_table(HardwareProfile, d, where)


def check_accuracy(accuracy: Any, where: str, key: str = "accuracy") -> float | None:
    """A header's test accuracy (its entry ``key``): None (not measured) or a number in [0, 1]. The
    same check on write (:func:`save_checkpoint`, NetX export) and on read (:func:`load_checkpoint`,
    :func:`neurofl.deploy.netx.check_netx`)."""
    if accuracy is not None and (
        isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1
    ):
        raise UserError(f"{where}: header {key} must be a number in [0, 1], got {accuracy!r}"[:300])
    return accuracy


def check_trainable(arch: Any, train: Any, test: Any, where: str) -> None:
    """Refuse, before training, what the checkpoint ``train`` writes would hold and its loader
    refuse: an architecture outside the header's ranges (fewer than 2 classes: a chip of one output
    neuron), no training samples, training labels of fewer than 2 classes, or an empty test split
    (no test accuracy: NaN in the header).

    Raises
    ------
    UserError
        One line: ``where`` (the dataset and profile) and what is missing.
    """
    if arch.classes < 2:
        raise UserError(f"{where}: the model would have {arch.classes} output class; 2 or more needed")
    arch_from_dict(arch_to_dict(arch), f"{where}: the model")
    if len(train.y) == 0:
        raise UserError(f"{where}: the training split holds no samples")
    classes = len(np.unique(train.y))
    if classes < 2:
        raise UserError(f"{where}: the training split holds samples of {classes} class; 2 or more needed")
    if len(test.y) == 0:
        raise UserError(
            f"{where}: the test split is empty ({len(train.y)} training samples; each class needs about 3 samples "
            "for one to go to the test split), so no test accuracy can be measured"
        )


@dataclass(frozen=True)
class Header:
    """A checkpoint header, validated (:func:`check_header`)."""

    kind: ModelKind
    arch: Any
    profile: HardwareProfile
    dataset: str
    accuracy: float | None
    seed: int


def _numbers(profile: HardwareProfile) -> Any:
    """The profile's content without its texts (name, description, sources): what the chip computes."""

    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in ("name", "description", "source")}
        return obj

    return strip(dataclasses.asdict(profile))


def label_by_content(profile: HardwareProfile) -> HardwareProfile:
    """``profile`` as a file recorded it, named by its content where its name is a shipped profile's
    but its numbers are not: ``NAME~DIGEST`` (the first 8 hex digits of its numbers' digest), so no
    row, report or later header shows it as the shipped chip (as ``evaluate`` tells apart two
    profiles of one name). A shipped name with the shipped numbers, or any other name, is kept."""
    from neurofl.profiles import load_profile, shipped_profiles
    from neurofl.runs.identity import table_digest

    if profile.name not in shipped_profiles() or _numbers(load_profile(profile.name)) == _numbers(profile):
        return profile
    return dataclasses.replace(profile, name=f"{profile.name}~{table_digest(_numbers(profile))[:8]}")


def check_header(header: Any, where: str) -> Header:
    """Validate a checkpoint header: the one check :func:`save_checkpoint` runs before writing and
    :func:`load_checkpoint` runs after reading, so nothing is written that the loader refuses.

    Checked: the format, the kind (``snn`` or ``ann``), the architecture (:func:`arch_from_dict`:
    ranges, 2 or more classes, at most :data:`MAX_PARAMETERS` weights), the profile (every key
    and range; relabelled by content: :func:`label_by_content`), the dataset (a string), the test
    accuracy (None or a number in [0, 1]: NaN is refused) and the seed.

    Raises
    ------
    UserError
        One line naming ``where`` and the key at fault.
    """
    if not isinstance(header, dict):
        raise UserError(f"{where}: checkpoint header must be a JSON object")
    if header.get("format") != FORMAT:
        raise UserError(f"{where}: unsupported checkpoint format {header.get('format')!r} (expected {FORMAT})"[:300])
    kind = header.get("kind")
    if kind not in ("snn", "ann"):
        raise UserError(f"{where}: header kind must be 'snn' or 'ann', got {kind!r}"[:300])
    for key in ("architecture", "profile"):
        if key not in header:
            raise UserError(f"{where}: checkpoint header lacks '{key}'")
    arch = arch_from_dict(header["architecture"], f"{where} header")
    profile = label_by_content(profile_from_dict(header["profile"], f"{where} header"))
    dataset = header.get("dataset", "?")
    if not isinstance(dataset, str) or not dataset.strip():
        raise UserError(f"{where}: header dataset must be a dataset name, got {dataset!r}"[:300])
    accuracy = check_accuracy(header.get("accuracy"), where)
    seed = header_seed(header, f"{where} header")
    return Header(kind, arch, profile, dataset, accuracy, seed)


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    kind: ModelKind,
    arch: Any,
    profile: HardwareProfile,
    dataset: str,
    accuracy: float | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``model`` and its header to ``path`` atomically; return the header.

    The header is checked by :func:`check_header`, as :func:`load_checkpoint` checks it, on its
    JSON text (what the file will hold: a NaN accuracy is refused here, not by a later reader);
    a profile named as a shipped one but holding other numbers is recorded under its content
    label (:func:`label_by_content`).

    Raises
    ------
    UserError
        The header would not load (nothing is written).
    """
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
    checked = check_header(json.loads(json.dumps(header)), str(path))
    header["profile"] = profile_to_dict(checked.profile)
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
        Missing or unreadable file, not a neurofl checkpoint, or a header that does not match
        (:func:`check_header`, the check :func:`save_checkpoint` ran).
    """
    path = Path(path)
    payload = load_tensors_file(path, "checkpoint")
    if not isinstance(payload, dict) or "header" not in payload or "state_dict" not in payload:
        raise UserError(f"{path}: not a neurofl checkpoint (no header/state_dict)")
    if not isinstance(payload["header"], str):
        raise UserError(f"{path}: checkpoint header must be a JSON string, got {type(payload['header']).__name__}")
    try:
        header = json.loads(payload["header"])
    except (json.JSONDecodeError, RecursionError) as e:
        raise UserError(f"{path}: malformed checkpoint header ({type(e).__name__})") from None
    h = check_header(header, str(path))
    state = check_state_dict(payload["state_dict"], path)
    if kind is not None and h.kind != kind:
        raise UserError(f"{path}: checkpoint holds a '{h.kind}' model, not '{kind}'")
    if profile is not None and h.profile != profile:
        raise UserError(
            f"{path}: checkpoint was trained under profile '{h.profile.name}', which differs from the requested "
            f"profile '{profile.name}'"
        )
    if arch is not None and h.arch != arch:
        raise UserError(f"{path}: checkpoint architecture {h.arch.widths} does not match the requested {arch.widths}")
    try:
        model = build_model(h.kind, h.arch, h.profile, seed=0)
    except UserError as e:  # e.g. a profile SLAYER's neurons cannot run: the file is at fault
        raise UserError(f"{path}: {e}") from None
    load_state(model, state, path)
    model.eval()
    return Checkpoint(model, h.kind, h.arch, h.profile, h.dataset, h.accuracy, header)


def load_tensors_file(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain data only, no code runs,
    and every size the file declares bounded before anything is allocated
    (:func:`neurofl.io.tensorfile.load_tensors`).

    Raises
    ------
    UserError
        The file is not a regular file, is unreadable, truncated, too large, or holds anything but
        plain tensors (inside their storage, not overlapping) and plain data.
    """
    from neurofl.io.tensorfile import load_tensors

    return load_tensors(path, what)


def check_state_dict(state: Any, path: Path, what: str = "state_dict") -> dict[str, torch.Tensor]:
    """A mapping of names to finite tensors, or a one-line :class:`UserError` naming ``path``.

    Floating-point entries must hold no NaN or infinity; other dtypes must be integer or bool.
    """
    if not isinstance(state, dict):
        raise UserError(f"{path}: {what} must be a mapping of tensors, got {type(state).__name__}")
    for name, t in state.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor):
            raise UserError(f"{path}: {what} entry {name!r} is not a named tensor"[:300])
        if t.is_complex() or t.dtype in (torch.quint8, torch.qint8, torch.qint32):
            raise UserError(f"{path}: {what} entry '{name}' has unsupported dtype {t.dtype}"[:300])
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UserError(f"{path}: {what} entry '{name}' holds NaN or infinite values"[:300])
    return state


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """``model.load_state_dict(state)`` (strict: same names, same shapes) with one-line errors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        name, how = (missing[0], "lacks") if missing else (extra[0], "has an unexpected")
        raise UserError(f"{path}: state dict {how} entry '{name}' for the architecture in its header"[:300])
    for name, t in expected.items():
        if tuple(state[name].shape) != tuple(t.shape):
            raise UserError(
                f"{path}: state dict entry '{name}' has shape {tuple(state[name].shape)}, the architecture in its "
                f"header needs {tuple(t.shape)}"
            )
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as e:
        raise UserError(f"{path}: state dict does not fit the architecture ({str(e).splitlines()[0]})"[:300]) from None
