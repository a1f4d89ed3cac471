"""Training under a hardware profile (quantization-aware for SNNs).

The SNN is quantization-aware by construction: :class:`~neurofl.models.snn.SpikingMLP` passes its
weights through ``profile.quantize_weight`` (a straight-through pre-hook) and SLAYER's CUBA neuron
keeps decays on the 1/4096 grid and thresholds on the 1/64 grid, so the network trained here is the
one that runs on the chip. The ANN is the float reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from neurofl.data import Dataset
from neurofl.errors import UserError
from neurofl.models import Architecture, ModelKind, build_model
from neurofl.profiles import HardwareProfile


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
    correct = 0
    for i in range(0, len(ds.y), batch_size):
        x = torch.from_numpy(ds.x[i : i + batch_size])
        logits = model(x, generator=gen)
        correct += int((logits.argmax(-1).numpy() == ds.y[i : i + batch_size]).sum())
    return correct / len(ds.y)


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

    Returns
    -------
    TrainResult whose ``accuracy`` is the test accuracy after the last epoch.
    """
    if epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {epochs}")
    _check_shapes(arch, train, test)
    cfg = config or TrainConfig()
    model = build_model(kind, arch, profile, seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    history: list[EpochStats] = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(train.y))
        total_loss, correct = 0.0, 0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            x = torch.from_numpy(train.x[idx])
            y = torch.from_numpy(train.y[idx])
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
            test_accuracy=accuracy(model, test, seed, cfg.eval_batch_size),
        )
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    model.eval()
    return TrainResult(model, kind, arch, profile, history[-1].test_accuracy, tuple(history))
