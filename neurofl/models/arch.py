"""Model specifications: what a model is, independent of how it is built.

:class:`Architecture` (a fully connected topology), :class:`NeuronParams` (CUBA LIF parameters)
and :data:`ModelKind` are plain data; :mod:`neurofl.models.factory` builds models from them, and
the model modules (``ann``, ``snn``, ``conv``) import them from here, so no model module imports
the factory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

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
        """The parameters as SLAYER's neuron dictionary (decays learned: no)."""
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
        """Inputs per sample (the product of ``input_shape``)."""
        return math.prod(self.input_shape)

    @property
    def widths(self) -> tuple[int, ...]:
        """(inputs, hidden..., classes): the width of every layer."""
        return (self.input_size, *self.hidden, self.classes)
