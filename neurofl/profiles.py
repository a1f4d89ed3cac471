"""Hardware profiles: the numeric constraints of a neuromorphic chip, loaded from TOML.

A profile says how weights are stored (SLAYER's 8-bit grid), how neuron parameters are
discretized, what a spike carries, how many time steps a sample takes, and what a device
uploads in federated learning (the update's numeric format). Shipped profiles live in
``hardware_profiles/``; any path to a TOML file works the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from neurofl.config import bounded, from_table, read_toml
from neurofl.io.limits import MAX_TIME_STEPS
from neurofl.shipped import resolve_toml, shipped_tomls

# What neurofl's models can honour (see docs/profiles.md, "Keys and where they take effect").
# SLAYER's CUBA neuron (lava-dl 0.6) quantizes decays on a 12-bit grid (p_scale = 1 << 12), as do
# Lava's bit-accurate LIF (du, dv) and neurofl's fused neuron (models/cuba.py, DECAY_BITS).
SUPPORTED_DECAY_BITS = 12
# neurofl builds SLAYER neurons with their default scale 1 << 6: thresholds on a 1/64 grid and states
# in units of 1/(64 * 64); the export's state check (deploy/trace.py) and NetX's vThMant assume it.
SUPPORTED_THRESHOLD_SCALE = 64
# Shift decays (SynSense Xylo, ``v -= v >> dash``): the dash parameter's width may be 1..8 bits (Xylo: 4);
# the torch neuron (models/xylo_neuron.py) takes any dash in 0..2**decay_bits - 1.
MAX_SHIFT_DECAY_BITS = 8
# Shift-decay neurons compare integer states with integer thresholds: no threshold grid finer than 1.
SHIFT_THRESHOLD_SCALE = 1
# A "count" spike carries the number of events a neuron emitted in one step (Xylo: up to 31); neurofl
# and xylosim hold counts in 8 bits (xylosim: uint8_t), so at most 2**8 - 1 events per step.
MAX_COUNT_BITS = 8
# Neurons of the one-state chip network (models/chip_net.py): integrate-and-fire without decay (Speck, Akida),
# a linear leak toward 0 (TrueNorth) and a float32 exponential decay (SpiNNaker2's software LIF).
CHIP_DECAYS = ("none", "linear", "exponential")
# Integer weights of chips other than SLAYER's grid: up to 16 bits (TrueNorth: 9-bit signed weights per axon type).
MAX_INTEGER_WEIGHT_BITS = 16
# A float32 state or decay factor (SpiNNaker2's software neuron on the Cortex-M4F FPU) has 32 bits.
FLOAT32_BITS = 32
# Unquantized weights and float updates are float32: a bits key other than 32 would claim a precision
# nothing applies.
FLOAT_BITS = 32
# A graded (direct) input x in [0, 1] travels as the payload x * 2**6 (NetX's spike_exp, deploy/export.py
# INPUT_FRAC_BITS), up to 64: 7 magnitude bits and a sign.
MIN_GRADED_PAYLOAD_BITS = 8


@dataclass(frozen=True)
class WeightFormat:
    """Synaptic weight storage. ``quantized`` weights lie on SLAYER's grid: for ``bits`` b the step
    is ``2**(9-b) / scale`` and the range ``[-256, 256 - step*scale] / scale`` (b=8: step 2/64,
    [-4, 3.97], i.e. even integers in [-256, 254] once descaled). Under shift-decay neurons
    (``neuron.decay = "shift"``, Xylo) weights are plain signed integers instead: step ``1 / scale``,
    range ``[-2**(b-1), 2**(b-1) - 1] / scale`` (b=8: int8 once descaled); so under every decay but
    ``multiplier``. ``axon_types`` > 0 is IBM TrueNorth's crossbar: a synapse is on or off, and a neuron
    holds one ``bits``-bit signed weight per axon type (:func:`neurofl.models.chips.crossbar.crossbar_weight`)."""

    quantized: bool
    bits: int = field(metadata=bounded(1, 32))
    scale: int = field(metadata=bounded(1, 1 << 12))
    source: str
    axon_types: int = field(default=0, metadata=bounded(0, 16))

    def __post_init__(self) -> None:
        if self.quantized and self.bits > MAX_INTEGER_WEIGHT_BITS:
            raise ValueError(
                f"key 'weights.bits' = {self.bits}: quantized weights have at most {MAX_INTEGER_WEIGHT_BITS} bits"
            )
        if self.axon_types == 1 or self.axon_types % 2:
            raise ValueError(
                f"key 'weights.axon_types' = {self.axon_types}: 0 (a weight per synapse) or an even count "
                "(half the axon types excitatory, half inhibitory)"
            )
        if not self.quantized and self.bits != FLOAT_BITS:
            raise ValueError(
                f"key 'weights.bits' = {self.bits}: unquantized weights are float32 (bits = {FLOAT_BITS}); "
                "set quantized = true for a lower precision"
            )


@dataclass(frozen=True)
class NeuronFormat:
    """Neuron parameter and state arithmetic.

    ``decay = "multiplier"`` is SLAYER's CUBA LIF (every Loihi profile): ``decay_bits`` and
    ``threshold_scale`` are refused unless they are SLAYER's (12 and 64), states do not saturate and
    a spike resets the voltage to zero; ``state_bits`` bounds the signed current and voltage registers
    in the export check only. ``decay = "shift"`` is SynSense Xylo's integer neuron
    (:mod:`neurofl.models.chips.xylo_neuron`): states decay by ``x -= x >> dash`` with ``dash`` stored in
    ``decay_bits`` bits, thresholds are integers (``threshold_scale = 1``), states are ``state_bits``-bit
    registers that saturate when ``saturate`` is true, and ``reset`` is ``"subtract"`` (the threshold
    times the spike count) or ``"zero"``. ``"none"``, ``"linear"`` and ``"exponential"`` are the
    one-state neurons of :mod:`neurofl.models.chips.neuron` (no synaptic current): integrate-and-fire
    without decay (Speck, Akida; ``decay_bits = 0``), a leak of at most ``2**(decay_bits-1) - 1`` per
    step toward 0 (TrueNorth), and ``v = alpha * v`` in float32 (SpiNNaker2; ``decay_bits`` and
    ``state_bits`` 32, no saturation).
    """

    decay_bits: int = field(metadata=bounded(0, 32))
    threshold_scale: int = field(metadata=bounded(1, 1 << 12))
    state_bits: int = field(metadata=bounded(2, 64))
    source: str
    decay: Literal["multiplier", "shift", "none", "linear", "exponential"] = "multiplier"
    saturate: bool = False
    reset: Literal["zero", "subtract"] = "zero"

    def __post_init__(self) -> None:
        if self.decay == "multiplier":
            self._check_slayer()
            return
        bits = self.decay_bits
        if self.decay == "shift" and not 1 <= bits <= MAX_SHIFT_DECAY_BITS:
            raise ValueError(
                f"key 'neuron.decay_bits' = {bits}: a shift decay's dash has 1..{MAX_SHIFT_DECAY_BITS} bits (Xylo: 4)"
            )
        if self.decay == "none" and bits != 0:
            raise ValueError(f"key 'neuron.decay_bits' = {bits}: decay = 'none' has no decay parameter (0 bits)")
        if self.decay == "linear" and not 2 <= bits <= MAX_INTEGER_WEIGHT_BITS:
            raise ValueError(
                f"key 'neuron.decay_bits' = {bits}: a linear leak is a signed integer of 2..{MAX_INTEGER_WEIGHT_BITS} "
                "bits (TrueNorth: 9)"
            )
        if self.decay == "exponential":
            for key, value in (("decay_bits", bits), ("state_bits", self.state_bits)):
                if value != FLOAT32_BITS:
                    raise ValueError(
                        f"key 'neuron.{key}' = {value}: exponential-decay neurons compute in float32 "
                        f"({key} = {FLOAT32_BITS})"
                    )
            if self.saturate:
                raise ValueError("key 'neuron.saturate' = true: float32 states (decay = 'exponential') do not saturate")
        if self.threshold_scale != SHIFT_THRESHOLD_SCALE:
            raise ValueError(
                f"key 'neuron.threshold_scale' = {self.threshold_scale}: {self.decay}-decay neurons compare states "
                f"with thresholds in weight units (threshold_scale = {SHIFT_THRESHOLD_SCALE})"
            )

    def _check_slayer(self) -> None:
        if self.decay_bits != SUPPORTED_DECAY_BITS:
            raise ValueError(
                f"key 'neuron.decay_bits' = {self.decay_bits}: not supported, only {SUPPORTED_DECAY_BITS} "
                "(SLAYER's CUBA neuron and Lava's LIF quantize decays to 12 bits)"
            )
        if self.threshold_scale != SUPPORTED_THRESHOLD_SCALE:
            raise ValueError(
                f"key 'neuron.threshold_scale' = {self.threshold_scale}: not supported, only "
                f"{SUPPORTED_THRESHOLD_SCALE} (SLAYER's CUBA neuron scale; thresholds on a 1/64 grid)"
            )
        if self.saturate:
            raise ValueError(
                "key 'neuron.saturate' = true: SLAYER's CUBA integrator (decay = 'multiplier') does not saturate "
                "its states; use decay = 'shift' for a saturating neuron"
            )
        if self.reset != "zero":
            raise ValueError(
                f"key 'neuron.reset' = {self.reset!r}: SLAYER's CUBA neuron (decay = 'multiplier') resets to zero; "
                "use decay = 'shift' for a subtractive reset"
            )


@dataclass(frozen=True)
class SpikeFormat:
    """What a spike carries and how analog inputs enter the chip.

    ``binary``: one event per neuron and step. ``graded``: one event with a ``payload_bits``-bit
    payload (Loihi 2). ``count``: up to ``2**payload_bits - 1`` events per hidden neuron and step
    (Xylo: 31, 5 bits; Akida: a 4-bit activation). ``input_max_per_step`` and ``output_max_per_step``
    bound the events per step of an input channel and of an output neuron (Xylo: 15 and 1); single-event
    payloads need 1. A ``direct`` input under ``count`` is the deterministic count
    ``round(x * input_max_per_step)`` (Akida's 8-bit input pixels); ``rate`` draws it.
    """

    payload: Literal["binary", "graded", "count"]
    payload_bits: int = field(metadata=bounded(1, 32))
    input_encoding: Literal["direct", "rate", "regular"]  # regular: deterministic rate code (data/encoding.py)
    source: str
    input_max_per_step: int = field(default=1, metadata=bounded(1, (1 << MAX_COUNT_BITS) - 1))
    output_max_per_step: int = field(default=1, metadata=bounded(1, (1 << MAX_COUNT_BITS) - 1))

    @property
    def max_per_step(self) -> int:
        """Events a hidden neuron may emit in one step (1 unless ``payload = "count"``)."""
        return (1 << self.payload_bits) - 1 if self.payload == "count" else 1

    def __post_init__(self) -> None:
        if self.payload == "binary" and self.input_encoding == "direct":
            raise ValueError(
                f"key 'spikes.payload' = {self.payload!r} cannot carry a direct input "
                "(key 'spikes.input_encoding' = 'direct' needs graded spikes or event counts)"
            )
        if self.payload == "binary" and self.payload_bits != 1:
            raise ValueError(f"key 'spikes.payload_bits' = {self.payload_bits}: binary spikes carry 1 bit")
        if self.payload == "graded" and self.payload_bits < MIN_GRADED_PAYLOAD_BITS:
            raise ValueError(
                f"key 'spikes.payload_bits' = {self.payload_bits}: graded spikes need at least "
                f"{MIN_GRADED_PAYLOAD_BITS} bits (a direct input up to 1.0 is sent as the signed payload 64)"
            )
        if self.payload == "count" and self.payload_bits > MAX_COUNT_BITS:
            raise ValueError(
                f"key 'spikes.payload_bits' = {self.payload_bits}: a spike count has at most {MAX_COUNT_BITS} bits "
                "(neurofl and xylosim count events per step in 8 bits)"
            )
        for key in ("input_max_per_step", "output_max_per_step"):
            n = getattr(self, key)
            if self.payload != "count" and n != 1:
                raise ValueError(
                    f"key 'spikes.{key}' = {n}: {self.payload} spikes are single events per step "
                    "(several events per step need payload = 'count')"
                )
        if self.output_max_per_step > self.max_per_step:
            raise ValueError(
                f"key 'spikes.output_max_per_step' = {self.output_max_per_step}: more than the "
                f"{self.max_per_step} events per step a count of {self.payload_bits} bits holds"
            )


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

    def __post_init__(self) -> None:
        if self.format == "float" and self.bits != FLOAT_BITS:
            raise ValueError(
                f"key 'update.bits' = {self.bits}: a float update is float32 (bits = {FLOAT_BITS}); "
                "use format = 'int' for fewer bits"
            )
        if self.format == "float" and self.rounding != "nearest":
            raise ValueError(
                f"key 'update.rounding' = {self.rounding!r}: a float update is not rounded "
                "(rounding = 'nearest'); use format = 'int'"
            )


# Largest per-operation energy a profile may give, in pJ (1 uJ; published figures are 1..100 pJ): a
# larger one (1e308) would make an energy per inference no float holds (reported as null).
MAX_ENERGY_PJ = 1e6


@dataclass(frozen=True, kw_only=True)
class Resources:
    """Per-core limits (fit checks of SLAYER models, Loihi-type profiles only) and per-operation
    energies (energy per inference of every SNN: :mod:`neurofl.deploy.resources`,
    :mod:`neurofl.deploy.chip_resources`).

    A chip network's profile (one with ``[chip]``) gives the energies only: its fit is checked
    against ``[chip]``. An energy nobody publishes is written ``"unknown"`` (``None`` here), and the
    energy per inference is then ``None``, never zero.
    """

    cores: int | None = field(default=None, metadata=bounded(1))
    neurons_per_core: int | None = field(default=None, metadata=bounded(1))
    input_axons_per_core: int | None = field(default=None, metadata=bounded(1))
    output_axons_per_core: int | None = field(default=None, metadata=bounded(1))
    synapse_memory_kib_per_core: int | None = field(default=None, metadata=bounded(1))
    energy_per_synop_pj: float | None = field(metadata=bounded(0, MAX_ENERGY_PJ))
    energy_per_neuron_update_pj: float | None = field(metadata=bounded(0, MAX_ENERGY_PJ))
    source: str

    def __post_init__(self) -> None:
        for key in RESOURCES_UNKNOWN:
            v = getattr(self, key)
            if v is not None and v < 0:
                raise ValueError(f"key 'resources.{key}' must be >= 0 or \"{UNKNOWN}\", got {v}")

    @property
    def energy_known(self) -> bool:
        """Whether both per-operation energies are published (else no energy per inference)."""
        return self.energy_per_synop_pj is not None and self.energy_per_neuron_update_pj is not None


# The TOML spelling of a limit the vendor does not publish (kept as None); only these keys take it.
UNKNOWN = "unknown"
CHIP_UNKNOWN = (
    "input_channels", "hidden_neurons", "output_neurons", "synaptic_states",
    "max_fan_in", "max_fan_out", "input_projection", "output_projection",
)  # fmt: skip
RESOURCES_UNKNOWN = ("energy_per_synop_pj", "energy_per_neuron_update_pj")
UNKNOWN_ALLOWED = CHIP_UNKNOWN + RESOURCES_UNKNOWN
# Per-core limits of the SLAYER mapping model: required without [chip], refused with it.
PER_CORE_LIMITS = (
    "cores", "neurons_per_core", "input_axons_per_core", "output_axons_per_core", "synapse_memory_kib_per_core",
)  # fmt: skip


@dataclass(frozen=True)
class ChipLimits:
    """Whole-chip limits of a chip network (SynSense Xylo, Speck, Akida, SpiNNaker2, TrueNorth): I/O
    channels, neurons, synaptic states and fan-in/fan-out (in axons).

    Checked by the fit check (:func:`neurofl.models.chips.xylo_net.fit_problems`) in training, ``evaluate``,
    ``verify`` and the architecture choice of ``train``. A limit the vendor does not publish is
    written ``"unknown"`` in the TOML (``None`` here) and is reported as not checked, never guessed.
    """

    input_channels: int | None
    hidden_neurons: int | None
    output_neurons: int | None
    synaptic_states: int | None
    max_fan_in: int | None
    max_fan_out: int | None
    input_projection: int | None
    output_projection: int | None
    source: str

    def __post_init__(self) -> None:
        for key in CHIP_UNKNOWN:
            v = getattr(self, key)
            low = 0 if key == "synaptic_states" else 1  # IAF chips (Speck, TrueNorth) have no synaptic state
            if v is not None and v < low:
                raise ValueError(f"key 'chip.{key}' must be >= {low} or \"{UNKNOWN}\", got {v}")


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
    chip: ChipLimits | None = None

    def __post_init__(self) -> None:
        self._check_cross_section()
        texts = {"name": self.name, "description": self.description}
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if dataclasses.is_dataclass(section) and not isinstance(section, type):
                texts[f"{f.name}.source"] = section.source  # type: ignore[attr-defined]  # every section has one
        for key, text in texts.items():
            if not text.strip():
                raise ValueError(f"key '{key}' must not be empty")

    def _check_cross_section(self) -> None:
        """Rules that tie keys of different sections together (each names the key it refuses)."""
        shift = self.neuron.decay != "multiplier"  # every integer-state chip network (Xylo and models/chip_net.py)
        decay = self.neuron.decay
        if self.weights.quantized and self.weights.bits > 8 and decay in ("multiplier", "shift"):
            raise ValueError(
                f"key 'weights.bits' = {self.weights.bits}: {decay}-decay chips store at most 8-bit weights "
                "(Lava Dense mantissas; xylosim int8)"
            )
        if self.weights.axon_types and decay not in CHIP_DECAYS:
            raise ValueError(
                f"key 'weights.axon_types' = {self.weights.axon_types}: axon-type weights (TrueNorth's crossbar) "
                f"are modelled for decay = {' | '.join(CHIP_DECAYS)} only"
            )
        if self.weights.quantized and self.neuron.state_bits < self.weights.bits:
            raise ValueError(
                f"key 'neuron.state_bits' = {self.neuron.state_bits}: smaller than key 'weights.bits' = "
                f"{self.weights.bits} (a state register must hold one weight)"
            )
        if shift and self.spikes.payload == "graded":
            raise ValueError(
                f"key 'spikes.payload' = 'graded': {decay}-decay neurons emit events or event counts, "
                "not graded payloads; use 'binary' or 'count'"
            )
        if not shift and self.spikes.input_encoding == "direct" and self.spikes.payload != "graded":
            raise ValueError(
                "key 'spikes.input_encoding' = 'direct': SLAYER's direct input needs graded spikes (payload = 'graded')"
            )
        if not shift and self.spikes.payload == "count":
            raise ValueError(
                "key 'spikes.payload' = 'count': SLAYER's CUBA neuron (neuron.decay = 'multiplier') emits one "
                "event per step; several events per step need neuron.decay = 'shift'"
            )
        if shift and self.spikes.input_encoding == "regular":
            raise ValueError(
                f"key 'spikes.input_encoding' = 'regular': the deterministic rate code is modelled for SLAYER "
                f"networks only (neuron.decay = 'multiplier'), not {decay}-decay chip networks"
            )
        if shift and not self.weights.quantized:
            raise ValueError(
                f"key 'weights.quantized' = false: {decay}-decay neurons take integer weights (quantized = true)"
            )
        if shift and self.chip is None:
            raise ValueError(f"key 'chip': a {decay}-decay profile needs the [chip] section of chip limits")
        if not shift and self.chip is not None:
            raise ValueError(
                "key 'chip': [chip] limits are checked for the chip networks (decay other than 'multiplier') only; "
                "Loihi-type chips use [resources]"
            )
        r = self.resources
        if r is not None:
            given = [k for k in PER_CORE_LIMITS if getattr(r, k) is not None]
            if self.chip is not None and given:
                raise ValueError(
                    f"key 'resources.{given[0]}': per-core limits are checked for SLAYER models (Loihi-type "
                    "chips) only; a chip network's fit is checked against [chip]"
                )
            missing = [k for k in PER_CORE_LIMITS if getattr(r, k) is None]
            if self.chip is None and missing:
                raise ValueError(f"missing key 'resources.{missing[0]}'")

    @property
    def arithmetic(self) -> str:
        """One line naming the arithmetic every SNN row of this profile is computed in (report tables)."""
        w, n, sp = self.weights, self.neuron, self.spikes
        weights = f"int{w.bits}" if self.integer_weights else (f"{w.bits}-bit grid" if w.quantized else "float32")
        if w.axon_types:
            weights += f" x {w.axon_types} axon types"
        neuron = {
            "multiplier": "CUBA LIF (SLAYER)",
            "shift": "shift-decay LIF",
            "none": "IAF",
            "linear": "linear-leak IF",
            "exponential": "float32 LIF",
        }[n.decay]
        state = "float32" if n.decay == "exponential" else f"{n.state_bits}-bit{' sat' if n.saturate else ''}"
        spikes = {"binary": "binary", "graded": f"graded {sp.payload_bits}-bit", "count": f"<= {sp.max_per_step}/step"}
        return f"{weights} weights, {neuron}, {state} state, {n.reset} reset, {spikes[sp.payload]} spikes"

    @property
    def integer_weights(self) -> bool:
        """Whether weights are plain signed integers (every decay but SLAYER's multiplier) rather than
        SLAYER's grid."""
        return self.weights.quantized and self.neuron.decay != "multiplier"

    @property
    def weight_step(self) -> float:
        """Weight grid step in SLAYER units (2/64 for 8-bit Loihi weights, 1/scale for integer
        weights); 0 when unquantized."""
        if not self.weights.quantized:
            return 0.0
        if self.integer_weights:
            return 1.0 / self.weights.scale
        return 2.0 ** (9 - self.weights.bits) / self.weights.scale

    @property
    def weight_range(self) -> tuple[float, float]:
        """Inclusive weight range in SLAYER units ((-4, 3.97) for 8-bit Loihi weights; int8 / scale
        for 8-bit integer weights)."""
        if not self.weights.quantized:
            return (-float("inf"), float("inf"))
        s = self.weights.scale
        if self.integer_weights:
            half = 2 ** (self.weights.bits - 1)
            return (-half / s, (half - 1) / s)
        return (-256 / s, (256 - self.weight_step * s) / s)

    def quantize_weight(self, weight: torch.Tensor, descale: bool = False) -> torch.Tensor:
        """The weight pre-hook: round to the profile's grid with a straight-through gradient.

        Matches SLAYER's ``Neuron.quantize_8bit`` for 8 bits. With ``descale`` the result is in
        integer mantissa units (as NetX stores it).
        """
        if not self.weights.quantized:
            return weight * self.weights.scale if descale else weight
        if self.weights.axon_types:
            from neurofl.models.chips.crossbar import crossbar_weight

            return crossbar_weight(weight, self.weights, self.weight_range, descale)
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
    for section, keys in (("chip", CHIP_UNKNOWN), ("resources", RESOURCES_UNKNOWN)):
        values = table.get(section)
        if isinstance(values, dict):  # "unknown" (an unpublished number) is None in the dataclass
            table[section] = {k: None if k in keys and v == UNKNOWN else v for k, v in values.items()}
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
