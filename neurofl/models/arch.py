"""Model specifications: what a model is, independent of how it is built.

:class:`Architecture` (a fully connected topology), :class:`NeuronParams` (CUBA LIF parameters)
and :data:`ModelKind` are plain data; :mod:`neurofl.models.factory` builds models from them, and
the model modules (``ann``, ``snn``, ``conv``) import them from here, so no model module imports
the factory.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

ModelKind = Literal["snn", "ann"]
# Shapes of the spike's surrogate gradient (:func:`neurofl.models.cuba.surrogate_derivative`), all of
# area ``scale_grad`` and width ``tau_grad``; ``laplace`` is SLAYER's.
SURROGATES = ("laplace", "fast_sigmoid", "triangle", "gaussian")
RESETS = ("zero", "subtract")  # at a spike: SLAYER's and Lava's reset to zero, or subtract the threshold
PAYLOADS = ("binary", "graded")  # what a hidden spike carries
Surrogate = Literal["laplace", "fast_sigmoid", "triangle", "gaussian"]
# the neuron keys an ablation varies beyond SLAYER's own (left out of identities at their defaults)
VARIANT_KEYS = ("surrogate", "reset", "payload")


@dataclass(frozen=True)
class NeuronParams:
    """CUBA LIF parameters in SLAYER units (the values of lava-dl's NMNIST/PilotNet tutorials).

    The last three keys are the spiking ingredients the study's ablations vary (``neurofl study
    --ablate``); their defaults are SLAYER's and Lava's CUBA neuron, the only variant that exports
    to Lava (:meth:`lava_incompatibility`):

    surrogate : the spike's surrogate-gradient shape (:data:`SURROGATES`), ``laplace`` = SLAYER's
    reset : ``zero`` (SLAYER, Lava) or ``subtract`` (the voltage drops by the threshold at a spike)
    payload : what a hidden spike carries: ``binary`` (1) or ``graded`` (SLAYER's graded spike: the
        voltage at the crossing, as Loihi 2's graded spikes can carry)
    """

    threshold: float = 1.25
    current_decay: float = 0.25
    voltage_decay: float = 0.03
    tau_grad: float = 0.03
    scale_grad: float = 3.0
    surrogate: Surrogate = "laplace"
    reset: Literal["zero", "subtract"] = "zero"
    payload: Literal["binary", "graded"] = "binary"

    def __post_init__(self) -> None:
        if self.surrogate not in SURROGATES or self.reset not in RESETS or self.payload not in PAYLOADS:
            raise ValueError(f"neuron: unknown surrogate, reset or payload in {self}")
        if self.payload == "graded" and self.surrogate != "laplace":
            raise ValueError("neuron: graded spikes have SLAYER's own (one-sided) surrogate; surrogate must be "
                             f"'laplace', got {self.surrogate!r}")  # fmt: skip

    def as_slayer(self) -> dict[str, float | bool]:
        """The parameters as SLAYER's neuron dictionary (decays learned: no)."""
        return {
            "threshold": self.threshold,
            "current_decay": self.current_decay,
            "voltage_decay": self.voltage_decay,
            "tau_grad": self.tau_grad,
            "scale_grad": self.scale_grad,
            "requires_grad": False,
            **({"graded_spike": True} if self.payload == "graded" else {}),
        }

    def fused_options(self) -> dict[str, str]:
        """The keys SLAYER's neuron does not take, for :func:`neurofl.models.cuba.fuse_neurons`."""
        return {"surrogate": self.surrogate, "reset": self.reset}

    def identity(self) -> dict[str, Any]:
        """The parameters as data, without the ablation keys left at their defaults (so a neuron's
        identity, in run fingerprints and model files, is what it was before those keys existed)."""
        d = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.name in VARIANT_KEYS and d[f.name] == f.default:
                del d[f.name]
        return d

    def lava_incompatibility(self) -> str | None:
        """Why Lava's CUBA neuron (and NetX, NIR) cannot run this neuron, or None when it can."""
        if self.reset != "zero":
            return f"neuron.reset = {self.reset!r}: Lava's CUBA neuron resets to zero"
        if self.payload != "binary":
            return f"neuron.payload = {self.payload!r}: neurofl exports binary hidden spikes only"
        return None


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
