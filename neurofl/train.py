"""Training under a hardware profile (quantization-aware for SNNs).

The SNN is quantization-aware by construction: :class:`~neurofl.models.snn.SpikingMLP` passes its
weights through ``profile.quantize_weight`` (a straight-through pre-hook) and SLAYER's CUBA neuron
keeps decays on the 1/4096 grid and thresholds on the 1/64 grid, so the network trained here is the
one that runs on the chip. The ANN is the float reference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from neurofl.data import Dataset
from neurofl.errors import UserError
from neurofl.io.atomic import atomic_write
from neurofl.models import Architecture, ModelKind, build_model
from neurofl.models.checkpoint import arch_to_dict, check_state_dict, load_tensors_file, profile_to_dict
from neurofl.profiles import HardwareProfile
from neurofl.runs.device import device_of, identity_entry


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer settings (Adam on cross-entropy of the logits, i.e. the SNN's output spike counts)."""

    learning_rate: float = 0.01
    batch_size: int = 32
    eval_batch_size: int = 256


@dataclass(frozen=True)
class EpochStats:
    """One epoch: mean training loss and accuracy, and test accuracy after the epoch (shares in [0, 1])."""

    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float


@dataclass(frozen=True)
class TrainResult:
    """A trained model with its test accuracy (share in [0, 1]) and per-epoch history."""

    model: torch.nn.Module
    kind: ModelKind
    arch: Architecture
    profile: HardwareProfile
    accuracy: float
    history: tuple[EpochStats, ...] = field(default_factory=tuple)
    resumed_from: int = 0  # epochs restored from a resume file (0: trained from scratch)


RESUME_FORMAT = "neurofl-train-state/1"


def _digest(ds: Dataset) -> dict[str, Any]:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(ds.x).tobytes())
    h.update(np.ascontiguousarray(ds.y).tobytes())
    return {"name": ds.name, "shape": list(ds.x.shape), "sha256": h.hexdigest()}


def _identity(
    kind: str,
    arch: Any,
    profile: HardwareProfile,
    train: Dataset,
    test: Dataset,
    seed: int,
    cfg: Any,
    device: torch.device | str = "cpu",
) -> str:
    """What a resumed run must share with the interrupted one (every input but the epoch count;
    the device's kind unless it is the CPU, so CPU resume files written before it still match)."""
    ident = {
        **identity_entry(device),
        "format": RESUME_FORMAT,
        "kind": kind,
        "architecture": arch_to_dict(arch),
        "profile": profile_to_dict(profile),
        "train": _digest(train),
        "test": _digest(test),
        "seed": seed,
        "config": dataclasses.asdict(cfg),
    }
    return json.dumps(ident, sort_keys=True)


def _save_state(
    path: Path,
    identity: str,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    rng: np.random.Generator,
    gen: torch.Generator,
    history: list[EpochStats],
) -> None:
    """Everything the next epoch depends on, written atomically after each epoch."""
    state = {
        "identity": identity,
        "epoch": len(history),
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "numpy_rng": json.dumps(rng.bit_generator.state),
        "torch_generator": gen.get_state(),
        "torch_global": torch.get_rng_state(),
        "history": json.dumps([dataclasses.asdict(h) for h in history]),
    }
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_state(
    path: Path,
    identity: str,
    epochs: int,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    rng: np.random.Generator,
    gen: torch.Generator,
) -> list[EpochStats]:
    """Restore a resume file into the fresh ``model``, ``opt`` and generators; return its history.

    Raises
    ------
    UserError
        The file belongs to another run (settings, data or seed differ), holds more epochs than
        asked for, or is not a valid resume file; the message says to remove it.
    """
    hint = "remove it to start over, or use another --out"
    try:
        state = load_tensors_file(path, "training resume file")
    except UserError as e:
        raise UserError(f"{e}; {hint}") from None
    keys = ("identity", "epoch", "model", "optimizer", "numpy_rng", "torch_generator", "torch_global", "history")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise UserError(f"{path}: not a neurofl training resume file; {hint}")
    if not isinstance(state["identity"], str) or state["identity"] != identity:
        raise UserError(f"{path}: holds a run with other settings, data or seed; {hint}")
    done = state["epoch"]
    if isinstance(done, bool) or not isinstance(done, int) or done < 1:
        raise UserError(f"{path}: invalid epoch count {done!r}; {hint}"[:300])
    if done > epochs:
        raise UserError(f"{path}: already holds {done} epochs, more than --epochs {epochs}; {hint}")
    weights = _checked_model_state(state["model"], model, path, hint)
    opt_state = _checked_optimizer_state(state["optimizer"], opt, path, hint)
    rng_state = _checked_numpy_state(state["numpy_rng"], path, hint)
    history = _checked_history(state["history"], done, path, hint)
    for key in ("torch_generator", "torch_global"):
        t = state[key]
        if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or tuple(t.shape) != (_TORCH_STATE_BYTES,):
            raise UserError(f"{path}: '{key}' is not a torch generator state; {hint}")
    try:  # torch checks the mt19937 state itself; an invalid one is the file's fault
        gen.set_state(state["torch_generator"])
        torch.set_rng_state(state["torch_global"])
    except RuntimeError as e:
        raise UserError(f"{path}: unusable generator state ({e}); {hint}") from None
    model.load_state_dict(weights)  # names, shapes and dtypes checked above: cannot fail
    opt.load_state_dict(opt_state)
    rng.bit_generator.state = rng_state
    return history


_TORCH_STATE_BYTES = 5056  # torch's CPU generator (mt19937) state, as get_state() returns it


def _checked_model_state(weights: Any, model: torch.nn.Module, path: Path, hint: str) -> dict[str, torch.Tensor]:
    weights = check_state_dict(weights, path, "model")
    expected = model.state_dict()
    if set(weights) != set(expected):
        raise UserError(f"{path}: model entries do not match the architecture; {hint}")
    for k, t in expected.items():
        if tuple(weights[k].shape) != tuple(t.shape) or weights[k].dtype != t.dtype:
            raise UserError(f"{path}: model entry '{k}' has the wrong shape or dtype; {hint}"[:300])
    return weights


def _checked_optimizer_state(saved: Any, opt: torch.optim.Optimizer, path: Path, hint: str) -> dict[str, Any]:
    """Adam's state for this model: the same parameter groups as a fresh optimizer, and per
    parameter a finite step count and moments of the parameter's shape."""
    fresh = opt.state_dict()
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"}:
        raise UserError(f"{path}: 'optimizer' is not an optimizer state; {hint}")
    from neurofl.runs.identity import canonical_json  # loaded data may hold tensors: compare as plain data

    if canonical_json(saved["param_groups"]) != canonical_json(fresh["param_groups"]):
        raise UserError(f"{path}: optimizer settings differ from this run's; {hint}")
    params = [p for g in opt.param_groups for p in g["params"]]
    per_param = saved["state"]
    if not isinstance(per_param, dict) or not set(per_param) <= set(range(len(params))):
        raise UserError(f"{path}: optimizer state names unknown parameters; {hint}")
    for i, entry in per_param.items():
        ok = isinstance(entry, dict) and set(entry) == {"step", "exp_avg", "exp_avg_sq"}
        ok = ok and all(isinstance(v, torch.Tensor) and v.dtype == torch.float32 for v in entry.values())
        ok = ok and entry["step"].dim() == 0 and float(entry["step"]) >= 0
        ok = ok and all(tuple(entry[k].shape) == tuple(params[i].shape) for k in ("exp_avg", "exp_avg_sq"))
        ok = ok and all(bool(torch.isfinite(v).all()) for v in entry.values())
        ok = ok and bool((entry["exp_avg_sq"] >= 0).all())
        if not ok:
            raise UserError(f"{path}: optimizer state of parameter {i} is malformed; {hint}"[:300])
    return saved


def _checked_numpy_state(text: Any, path: Path, hint: str) -> dict[str, Any]:
    """numpy's PCG64 state, as ``bit_generator.state`` gives it (JSON in the file)."""
    bad = UserError(f"{path}: 'numpy_rng' is not a numpy PCG64 state; {hint}")
    if not isinstance(text, str) or len(text) > 4096:
        raise bad
    try:
        st = json.loads(text)
    except (ValueError, RecursionError):
        raise bad from None
    if not isinstance(st, dict) or set(st) != {"bit_generator", "state", "has_uint32", "uinteger"}:
        raise bad
    inner = st["state"]
    if st["bit_generator"] != "PCG64" or not isinstance(inner, dict) or set(inner) != {"state", "inc"}:
        raise bad
    ints = [(inner["state"], 1 << 128), (inner["inc"], 1 << 128), (st["has_uint32"], 2), (st["uinteger"], 1 << 32)]
    if any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < hi for v, hi in ints):
        raise bad
    return st


def _checked_history(text: Any, done: int, path: Path, hint: str) -> list[EpochStats]:
    bad = UserError(f"{path}: 'history' is not a list of {done} epochs; {hint}")
    if not isinstance(text, str) or len(text) > (1 << 20):
        raise bad
    try:
        rows = json.loads(text)
    except (ValueError, RecursionError):
        raise bad from None
    names = [f.name for f in dataclasses.fields(EpochStats)]
    if not isinstance(rows, list) or len(rows) != done:
        raise bad
    out = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or sorted(row) != sorted(names) or row["epoch"] != i:
            raise bad
        if any(isinstance(row[k], bool) or not isinstance(row[k], (int, float)) for k in names):
            raise bad
        out.append(EpochStats(**row))
    return out


def _check_shapes(arch: Architecture, *datasets: Dataset) -> None:
    for ds in datasets:
        if tuple(ds.input_shape) != tuple(arch.input_shape):
            raise UserError(
                f"dataset '{ds.name}' has inputs of shape {ds.input_shape}, the architecture expects {arch.input_shape}"
            )
        if len(ds.y) and (ds.y.min() < 0 or ds.y.max() >= arch.classes):
            raise UserError(f"dataset '{ds.name}' has labels outside 0..{arch.classes - 1}")


@torch.no_grad()
def accuracy(model: torch.nn.Module, ds: Dataset, seed: int = 0, batch_size: int = 256) -> float:
    """Share of ``ds`` classified correctly (argmax of the logits; ties go to the lowest class).

    ``seed`` fixes the stochastic input encoding (rate code), so the figure is reproducible.
    """
    if len(ds.y) == 0:
        return float("nan")
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    dev = device_of(model)
    correct = 0
    for i in range(0, len(ds.y), batch_size):
        x = torch.from_numpy(ds.x[i : i + batch_size]).to(dev)
        logits = model(x, generator=gen)
        correct += int((logits.argmax(-1).cpu().numpy() == ds.y[i : i + batch_size]).sum())
    return correct / len(ds.y)


def eval_batch_under(model: torch.nn.Module, arch: Any, cfg: TrainConfig, limit: int) -> int:
    """The evaluation batch (at most ``cfg.eval_batch_size``) whose no-grad pass fits ``limit``
    bytes (:mod:`neurofl.runs.memory`); the accuracy is the same at any batch, the rate code's draws
    included. Raises :class:`UserError` (one line naming ``--max-memory``) when a training step on
    ``cfg.batch_size`` samples does not fit: it cannot be split without changing the model."""
    from neurofl.runs import memory

    with torch.random.fork_rng(devices=[]):  # a rate-coded model on the CPU draws from the global generator here
        fp = memory.footprint(model, tuple(arch.input_shape))
    what = f"a training step on a batch of {cfg.batch_size} samples x {fp.time_steps} time steps"
    memory.check_fits(memory.training_step(fp, cfg.batch_size), limit, what, "the profile's time steps")
    return memory.units_that_fit(memory.inference(fp), limit, cfg.eval_batch_size, "evaluating one sample",
                                 "the profile's time steps")  # fmt: skip


def train_model(
    kind: ModelKind,
    arch: Architecture,
    profile: HardwareProfile,
    train: Dataset,
    test: Dataset,
    epochs: int,
    seed: int,
    on_epoch: Callable[[EpochStats], None] | None = None,
    config: TrainConfig | None = None,
    resume: Path | None = None,
    device: torch.device | str = "cpu",
    max_memory: int | None = None,
) -> TrainResult:
    """Train a model of ``kind`` on ``train`` under ``profile``; report accuracy on ``test``.

    Parameters
    ----------
    kind : ``snn`` (SLAYER, constrained by ``profile``) or ``ann`` (float reference)
    arch : the topology; ``arch.input_shape`` must match the datasets
    train, test : datasets with x (N, *input_shape) in [0, 1] and y (N,)
    epochs : passes over ``train`` (>= 1)
    seed : initialization, shuffling and input-encoding randomness
    on_epoch : called after each epoch with its :class:`EpochStats` (e.g. a progress bar)
    config : optimizer settings (defaults: Adam, lr 0.01, batch 32)
    resume : a file for the training state: written atomically after every epoch and, when it
        already exists, restored first (model, optimizer, random generators), so a run killed at
        any moment and restarted gives the model an uninterrupted run gives, bit for bit
    device : where the model and batches live (random draws stay on the CPU generators); the
        resume file records a non-CPU device and refuses another
    max_memory : a working-memory budget in bytes (:mod:`neurofl.runs.memory`): a training step that
        does not fit is refused before anything runs or is written, and the test split is evaluated
        in batches that fit (None: no check, batches of ``config.eval_batch_size``)

    Returns
    -------
    TrainResult whose ``accuracy`` is the test accuracy after the last epoch.
    """
    if epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {epochs}")
    _check_shapes(arch, train, test)
    cfg = config or TrainConfig()
    model = build_model(kind, arch, profile, seed)
    eval_batch = cfg.eval_batch_size if max_memory is None else eval_batch_under(model, arch, cfg, max_memory)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    history: list[EpochStats] = []
    identity = _identity(kind, arch, profile, train, test, seed, cfg, device) if resume is not None else ""
    if resume is not None and Path(resume).exists():
        history = _load_state(Path(resume), identity, epochs, model, opt, rng, gen)
    resumed_from = len(history)
    for epoch in range(resumed_from + 1, epochs + 1):
        model.train()
        order = rng.permutation(len(train.y))
        total_loss, correct = 0.0, 0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            x = torch.from_numpy(train.x[idx]).to(device)
            y = torch.from_numpy(train.y[idx]).to(device)
            logits = model(x, generator=gen)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total_loss += float(loss) * len(idx)
            correct += int((logits.argmax(-1) == y).sum())
        stats = EpochStats(
            epoch=epoch,
            loss=total_loss / len(order),
            train_accuracy=correct / len(order),
            test_accuracy=accuracy(model, test, seed, eval_batch),
        )
        history.append(stats)
        if resume is not None:
            _save_state(Path(resume), identity, model, opt, rng, gen, history)
        if on_epoch is not None:
            on_epoch(stats)
    model.eval()
    return TrainResult(model, kind, arch, profile, history[-1].test_accuracy, tuple(history), resumed_from)
