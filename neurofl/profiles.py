"""Hardware profiles: the numeric constraints of a neuromorphic chip, loaded from TOML.

A profile says how weights are stored (SLAYER's 8-bit grid), how neuron parameters are
discretized, what a spike carries, how many time steps a sample takes, and what a device
uploads in federated learning (the update's numeric format). Shipped profiles live in
``hardware_profiles/``; any path to a TOML file works the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from neurofl.config import bounded, from_table, read_toml
from neurofl.limits import MAX_TIME_STEPS
from neurofl.resources import resolve_toml, shipped_tomls


@dataclass(frozen=True)
class WeightFormat:
    """Synaptic weight storage. ``quantized`` weights lie on SLAYER's grid: for ``bits`` b the step
    is ``2**(9-b) / scale`` and the range ``[-256, 256 - step*scale] / scale`` (b=8: step 2/64,
    [-4, 3.97], i.e. even integers in [-256, 254] once descaled)."""

    quantized: bool
    bits: int = field(metadata=bounded(1, 32))
    scale: int = field(metadata=bounded(1, 1 << 12))
    source: str

    def __post_init__(self) -> None:
        if self.quantized and self.bits > 8:
            raise ValueError(f"key 'weights.bits' = {self.bits}: quantized weights have at most 8 bits")


@dataclass(frozen=True)
class NeuronFormat:
    """Neuron parameter and state precision (CUBA LIF)."""

    decay_bits: int = field(metadata=bounded(1, 16))
    threshold_scale: int = field(metadata=bounded(1, 1 << 12))
    state_bits: int = field(metadata=bounded(2, 64))
    source: str


@dataclass(frozen=True)
class SpikeFormat:
    """What a spike carries and how analog inputs enter the chip."""

    payload: Literal["binary", "graded"]
    payload_bits: int = field(metadata=bounded(1, 32))
    input_encoding: Literal["direct", "rate"]
    source: str

    def __post_init__(self) -> None:
        if self.payload == "binary" and self.input_encoding == "direct":
            raise ValueError("key 'spikes.input_encoding' = 'direct' needs graded spikes (payload = 'graded')")


@dataclass(frozen=True)
class Simulation:
    time_steps: int = field(metadata=bounded(1, MAX_TIME_STEPS))
    source: str


@dataclass(frozen=True)
class UpdateFormat:
    """The numeric format of the update a device uploads: ``float`` (32-bit) or ``int`` with
    ``bits`` bits and one float scale per tensor."""

    format: Literal["float", "int"]
    bits: int = field(metadata=bounded(2, 32))
    rounding: Literal["nearest", "stochastic"]
    source: str


@dataclass(frozen=True)
class Resources:
    """Per-core limits and per-operation energies (used for fit checks and energy estimates)."""

    cores: int = field(metadata=bounded(1))
    neurons_per_core: int = field(metadata=bounded(1))
    input_axons_per_core: int = field(metadata=bounded(1))
    output_axons_per_core: int = field(metadata=bounded(1))
    synapse_memory_kib_per_core: int = field(metadata=bounded(1))
    energy_per_synop_pj: float = field(metadata=bounded(0.0))
    energy_per_neuron_update_pj: float = field(metadata=bounded(0.0))
    source: str


@dataclass(frozen=True)
class HardwareProfile:
    """A chip's numeric constraints. Load with :func:`load_profile`."""

    name: str
    description: str
    weights: WeightFormat
    neuron: NeuronFormat
    spikes: SpikeFormat
    simulation: Simulation
    update: UpdateFormat
    resources: Resources | None = None

    @property
    def weight_step(self) -> float:
        """Weight grid step in SLAYER units (2/64 for 8-bit Loihi weights); 0 when unquantized."""
        if not self.weights.quantized:
            return 0.0
        return 2.0 ** (9 - self.weights.bits) / self.weights.scale

    @property
    def weight_range(self) -> tuple[float, float]:
        """Inclusive weight range in SLAYER units ((-4, 3.97) for 8-bit Loihi weights)."""
        if not self.weights.quantized:
            return (-float("inf"), float("inf"))
        s = self.weights.scale
        return (-256 / s, (256 - self.weight_step * s) / s)

    def quantize_weight(self, weight: torch.Tensor, descale: bool = False) -> torch.Tensor:
        """The weight pre-hook: round to the profile's grid with a straight-through gradient.

        Matches SLAYER's ``Neuron.quantize_8bit`` for 8 bits. With ``descale`` the result is in
        integer mantissa units (as NetX stores it).
        """
        if not self.weights.quantized:
            return weight * self.weights.scale if descale else weight
        lo, hi = self.weight_range
        step = self.weight_step
        q = torch.clamp(torch.round(weight / step) * step, lo, hi)
        q = weight + (q - weight).detach()
        return q * self.weights.scale if descale else q


def shipped_profiles() -> dict[str, Path]:
    """Names and paths of the profiles shipped with neurofl."""
    return shipped_tomls("hardware_profiles")


def load_profile(name_or_path: str | Path) -> HardwareProfile:
    """Load a shipped profile by name, or any profile TOML by path.

    Raises
    ------
    UserError
        Unknown name, missing file, malformed TOML, unknown key, wrong type or value out of range.
    """
    path = resolve_toml("hardware_profiles", name_or_path, "profile")
    table = read_toml(path)
    return from_table(HardwareProfile, table, path)


def quantize_update(tensor: torch.Tensor, fmt: UpdateFormat, generator: torch.Generator | None = None) -> torch.Tensor:
    """Quantize an update the way a device uploads it, and return what the server reconstructs.

    Parameters
    ----------
    tensor : (victims, *shape)
        One update tensor per victim; each victim's tensor gets its own scale
        ``max|g| / (2**(bits-1) - 1)``.
    fmt : UpdateFormat
        The profile's upload format. ``float`` returns the tensor unchanged (float32).
    generator : torch.Generator, optional
        Randomness for stochastic rounding.

    Returns
    -------
    (victims, *shape) tensor: integers times their scale. The gradient is straight-through, so an
    attacker can differentiate through the quantizer.
    """
    if fmt.format == "float":
        return tensor
    levels = 2 ** (fmt.bits - 1) - 1
    flat = tensor.reshape(tensor.shape[0], -1)
    scale = flat.detach().abs().amax(dim=1).clamp_min(torch.finfo(tensor.dtype).tiny) / levels
    scale = scale.reshape((-1,) + (1,) * (tensor.dim() - 1))
    x = tensor.detach() / scale
    if fmt.rounding == "nearest":
        q = torch.round(x)
    else:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        q = torch.floor(x + noise)
    q = q.clamp(-levels, levels) * scale
    return tensor + (q - tensor).detach()
