"""One place that turns (architecture, kind, profile) into a model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from neurofl.profiles import HardwareProfile

ModelKind = Literal["snn", "ann"]


@dataclass(frozen=True)
class NeuronParams:
    """CUBA LIF parameters in SLAYER units (the values of lava-dl's NMNIST/PilotNet tutorials)."""

    threshold: float = 1.25
    current_decay: float = 0.25
    voltage_decay: float = 0.03
    tau_grad: float = 0.03
    scale_grad: float = 3.0

    def as_slayer(self) -> dict[str, float | bool]:
        return {
            "threshold": self.threshold,
            "current_decay": self.current_decay,
            "voltage_decay": self.voltage_decay,
            "tau_grad": self.tau_grad,
            "scale_grad": self.scale_grad,
            "requires_grad": False,
        }


@dataclass(frozen=True)
class Architecture:
    """A fully connected topology shared by the SNN and its matched ANN.

    ``weight_scale`` multiplies PyTorch's default initialization (SLAYER's ``weight_scale``),
    so that an untrained SNN already spikes under the profile's weight grid.
    """

    input_shape: tuple[int, ...]
    classes: int
    hidden: tuple[int, ...] = (128,)
    neuron: NeuronParams = field(default_factory=NeuronParams)
    weight_scale: float = 4.0

    @property
    def input_size(self) -> int:
        n = 1
        for s in self.input_shape:
            n *= s
        return n

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.input_size, *self.hidden, self.classes)


def build_model(kind: ModelKind, arch: Architecture, profile: HardwareProfile, seed: int) -> torch.nn.Module:
    """Build a freshly initialized model; the same ``seed`` gives the same weights.

    ``arch`` is an :class:`Architecture` (fully connected) or a
    :class:`neurofl.models.conv.ConvArchitecture`. The ANN is always float (it is the
    reference); the SNN follows ``profile``.
    """
    from neurofl.models.ann import MLP
    from neurofl.models.conv import ConvANN, ConvArchitecture, ConvSNN
    from neurofl.models.snn import SpikingMLP

    snn, ann = (ConvSNN, ConvANN) if isinstance(arch, ConvArchitecture) else (SpikingMLP, MLP)
    torch.manual_seed(seed)
    if kind == "snn":
        return snn(arch, profile)
    if kind == "ann":
        return ann(arch)
    raise ValueError(f"unknown model kind {kind!r}")
