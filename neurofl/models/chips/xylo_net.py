"""A feed-forward Xylo network (input channels -> hidden -> output) in plain torch.

The network is the one a SynSense Xylo SNN core runs when only its input and readout weights are
used (no recurrent weights, no aliases): input events enter the hidden population, hidden events
reach the output population one step later (xylosim's ``XyloLayer.evolve`` delivers the previous
step's hidden events), and the logits are the output events summed over the sample's T steps.
Neuron arithmetic: :mod:`neurofl.models.chips.xylo_neuron`. Chip limits: :func:`fit_problems`; the network
``train`` picks for a chip: :func:`chip_architecture`. Each projection is a :class:`XyloSynapse`
applied to a whole event train, so the attack core's per-sample gradients (``weight_layers``) apply.

Images are average-pooled to fit the chip's input channels (8x8 digits: 2x2 pooling -> 16
channels) and rate-coded into event counts: each step an input channel with intensity p carries
``Binomial(input_max_per_step, p)`` events (Bernoulli for one event per step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from neurofl.errors import UserError
from neurofl.models.arch import Architecture
from neurofl.models.chips.xylo_neuron import DTYPE, LayerState, XyloArithmetic, layer_step
from neurofl.profiles import HardwareProfile

if TYPE_CHECKING:
    from neurofl.data import Splits

# xylosim delivers ``weight << shift`` as an int16 (XyloLayer::deliver_spikes -> receiveSpike(int16_t)).
XYLOSIM_WEIGHT_BITS = 16


@dataclass(frozen=True)
class XyloDesign:
    """The network's neuron parameters (its own choices, not the chip's), equal for every neuron of
    a population. A built network keeps them per neuron in its state dict (so a checkpoint holds
    what the chip is configured with).

    Attributes
    ----------
    dash_syn, dash_mem : hidden synaptic-current and membrane decay shifts (>= 1: a shift of 0 empties
        the state every step, and xylosim's int16 negation of ``-32768 >> 0`` wraps)
    dash_syn_out, dash_mem_out : the same for output neurons
    threshold, threshold_out : integer thresholds of hidden and output neurons (state units)
    weight_shift_in, weight_shift_out : left shifts applied to the integer input and readout weights
    """

    dash_syn: int = 1
    dash_mem: int = 2
    dash_syn_out: int = 1
    dash_mem_out: int = 2
    threshold: int = 512
    threshold_out: int = 512
    weight_shift_in: int = 0
    weight_shift_out: int = 0


# Hidden neurons ``train`` gives a Xylo network (fewer when the chip has fewer): 64 reach 95% on
# 8 pooled digits classes in 15 epochs (docs/profiles.md) and fit every Xylo's projections.
DEFAULT_HIDDEN = 64


def pool_factor(input_shape: tuple[int, ...], channels: int | None) -> int:
    """The smallest square pooling k (dividing height and width) that leaves at most ``channels``
    inputs: ``C * (H/k) * (W/k) <= channels``; 1 for inputs that already fit.

    Raises
    ------
    UserError
        No such k (inputs not of shape (C, H, W), or too many channels even at one pixel).
    """
    n = math.prod(input_shape)
    if channels is None or n <= channels:  # None: no published limit, inputs are not pooled
        return 1
    if len(input_shape) != 3:
        raise UserError(f"inputs of shape {input_shape} ({n} values) do not fit {channels} input channels")
    c, h, w = input_shape
    for k in range(2, min(h, w) + 1):
        if h % k == 0 and w % k == 0 and c * (h // k) * (w // k) <= channels:
            return k
    raise UserError(f"inputs of shape {input_shape} cannot be pooled to at most {channels} input channels")


def event_counts(
    p: torch.Tensor, input_max: int, encoding: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Input intensities as event counts per step, with a straight-through gradient ``input_max``.

    Parameters
    ----------
    p : (batch, inputs, T) intensities in [0, 1]
    input_max : most events an input channel carries per step (``spikes.input_max_per_step``)
    encoding : ``rate``: ``Binomial(input_max, p)`` events; ``direct``: ``round(p * input_max)``
        (an 8-bit pixel for input_max 255, Akida's input)

    Returns
    -------
    (batch, inputs, T) counts in 0..input_max.
    """
    mean = p * input_max
    with torch.no_grad():
        if encoding == "direct":
            counts = torch.round(mean.detach())
        else:
            u = torch.rand((*p.shape, input_max), generator=generator, dtype=p.dtype).to(p.device)
            counts = (u < p.detach().unsqueeze(-1)).sum(-1).to(p.dtype)
    return mean + (counts - mean).detach()


class XyloSynapse(torch.nn.Module):
    """Dense weights of one projection, applied to a whole event train at once.

    ``weight`` (post, pre) is in parameter units; the chip's integer weight is
    ``round(weight * weights.scale)`` (the profile's straight-through quantizer). forward: events
    (batch, pre, T) -> (batch, post, T) = ``quantized(weight) @ events`` in parameter units, the
    differentiable synaptic input (the neuron scales it to integer units). It is the layer the
    attack core's per-sample gradients hook (``dW = sum_t dz(t) a(t)^T``, :mod:`neurofl.leakage.gradients`).
    """

    def __init__(self, pre: int, post: int, weight_scale: float, profile: HardwareProfile):
        super().__init__()
        bound = weight_scale / math.sqrt(pre)
        self.weight = torch.nn.Parameter((torch.rand(post, pre) * 2 - 1) * bound)
        self.quantize = profile.quantize_weight

    def forward(self, events: torch.Tensor) -> torch.Tensor:
        w = self.quantize(self.weight)
        return torch.einsum("oi,nit->not", w, events.to(w.dtype))


class TwoProjectionNetwork(torch.nn.Module):
    """What Xylo's and the one-state chips' networks share: input channels (average-pooled to the
    chip's inputs, ``pool``), two projections ``synapse_in`` and ``synapse_out`` of integer weights,
    event-count inputs over ``time_steps`` and logits = output events summed over time. A subclass
    builds those attributes (and ``profile``, ``input_max``) and defines ``run``.
    """

    profile: HardwareProfile
    synapse_in: XyloSynapse
    synapse_out: XyloSynapse
    pool: int
    time_steps: int
    input_max: int

    def _bind(self, arch: Architecture, profile: HardwareProfile, what: str) -> None:
        """Check ``arch``'s single hidden population and keep what every chip network reads of
        ``arch`` and ``profile``: steps, events per step and the input pooling onto the chip."""
        if len(arch.hidden) != 1:
            raise UserError(
                f"a {what} network has one hidden population (input -> hidden -> output), "
                f"got hidden = {list(arch.hidden)}"
            )
        assert profile.chip is not None  # both networks refuse a profile without [chip] before binding
        self.arch = arch
        self.profile = profile
        self.time_steps = profile.simulation.time_steps
        self.input_max = profile.spikes.input_max_per_step
        self.hidden_max = profile.spikes.max_per_step
        self.output_max = profile.spikes.output_max_per_step
        self.pool = pool_factor(tuple(arch.input_shape), profile.chip.input_channels)
        self.inputs = math.prod(arch.input_shape) // self.pool**2

    def run(self, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input event counts (batch, inputs, T) -> hidden (batch, hidden, T) and output (batch,
        classes, T) events per step (float64 integers)."""
        raise NotImplementedError

    def integer_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The integer input (inputs, hidden) and readout (hidden, classes) weights the chip stores
        (for Xylo before its weight shift), float64 with a straight-through gradient."""
        q = self.profile.quantize_weight
        w_in, w_out = (q(s.weight, descale=True).to(DTYPE).T for s in (self.synapse_in, self.synapse_out))
        return w_in, w_out

    def weight_layers(self) -> list[tuple[str, torch.nn.Module]]:
        """(parameter name, synapse module) of both projections, for per-sample gradients."""
        return [("synapse_in.weight", self.synapse_in), ("synapse_out.weight", self.synapse_out)]

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, *input_shape) -> (batch, inputs) intensities in [0, 1] (average-pooled)."""
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        return x.reshape(x.shape[0], -1).clamp(0, 1)

    def input_spikes(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x: (batch, *input_shape) -> (batch, inputs, T) event counts in 0..input_max_per_step.

        Each step a channel of intensity p carries ``Binomial(input_max_per_step, p)`` events (``direct``
        encoding: ``round(p * input_max_per_step)``, :func:`event_counts`); the gradient is
        straight-through (``d counts / d p = input_max_per_step``).
        """
        p = self.pooled(x).unsqueeze(-1).expand(-1, -1, self.time_steps)
        return event_counts(p, self.input_max, self.profile.spikes.input_encoding, generator)

    def spikes(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Output event trains. x: (batch, *input_shape) -> (batch, classes, T), float32."""
        return self.run(self.input_spikes(x, generator))[1].to(x.dtype)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.spikes(x, generator).sum(-1)


class XyloNetwork(TwoProjectionNetwork):
    """Input channels -> ``arch.hidden[0]`` hidden -> ``arch.classes`` output Xylo neurons.

    Parameters
    ----------
    arch : an :class:`Architecture` with exactly one hidden layer; ``arch.neuron`` (CUBA parameters)
        is not used, ``arch.weight_scale`` scales the initial weights as for the SLAYER MLP
    profile : a shift-decay profile (``neuron.decay = "shift"``) with a ``[chip]`` section
    design : the neuron parameters (:class:`XyloDesign`)

    forward: x (batch, *input_shape) in [0, 1] -> logits (batch, classes) = output events over T steps.
    """

    def __init__(self, arch: Architecture, profile: HardwareProfile, design: XyloDesign | None = None):
        super().__init__()
        if profile.neuron.decay != "shift" or profile.chip is None:
            raise UserError(
                f"profile '{profile.name}': a Xylo network needs neuron.decay = 'shift' and a [chip] section"
            )
        self._bind(arch, profile, "Xylo")
        design = design or XyloDesign()
        self.arith = XyloArithmetic(profile.neuron.state_bits, profile.neuron.saturate, profile.neuron.reset)
        hidden, classes = arch.hidden[0], arch.classes
        self.synapse_in = XyloSynapse(self.inputs, hidden, arch.weight_scale, profile)
        self.synapse_out = XyloSynapse(hidden, classes, arch.weight_scale, profile)
        d = design
        for name, value, size in (
            ("dash_syn", d.dash_syn, hidden),
            ("dash_mem", d.dash_mem, hidden),
            ("threshold", d.threshold, hidden),
            ("dash_syn_out", d.dash_syn_out, classes),
            ("dash_mem_out", d.dash_mem_out, classes),
            ("threshold_out", d.threshold_out, classes),
        ):
            self.register_buffer(name, torch.full((size,), value, dtype=torch.int64))
        self.register_buffer("weight_shift", torch.tensor([d.weight_shift_in, d.weight_shift_out], dtype=torch.int64))
        self.check_parameters()

    def check_parameters(self) -> None:
        """Refuse neuron parameters the profile's registers cannot hold (one line naming the value).

        Raises
        ------
        UserError
            A decay shift outside ``1..2**neuron.decay_bits - 1``, a threshold outside
            ``1..2**(state_bits-1) - 1``, or a shifted weight wider than xylosim's int16.
        """
        n = self.profile.neuron
        max_dash = (1 << n.decay_bits) - 1
        for name in ("dash_syn", "dash_mem", "dash_syn_out", "dash_mem_out"):
            t = getattr(self, name)
            if int(t.min()) < 1 or int(t.max()) > max_dash:
                raise UserError(
                    f"profile '{self.profile.name}': {name} in [{int(t.min())}, {int(t.max())}] does not fit "
                    f"neuron.decay_bits = {n.decay_bits} (shifts 1..{max_dash})"
                )
        top = (1 << (n.state_bits - 1)) - 1
        for name in ("threshold", "threshold_out"):
            t = getattr(self, name)
            if int(t.min()) < 1 or int(t.max()) > top:
                raise UserError(
                    f"profile '{self.profile.name}': {name} in [{int(t.min())}, {int(t.max())}] does not fit "
                    f"neuron.state_bits = {n.state_bits} (thresholds 1..{top})"
                )
        wbits = self.profile.weights.bits
        for shift in self.weight_shift.tolist():
            if shift < 0 or wbits + shift > min(n.state_bits, XYLOSIM_WEIGHT_BITS):
                raise UserError(
                    f"profile '{self.profile.name}': weight shift {shift} makes {wbits}-bit weights wider than the "
                    f"{min(n.state_bits, XYLOSIM_WEIGHT_BITS)}-bit state"
                )

    def run(self, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run input event counts through the network.

        Parameters
        ----------
        counts : (batch, inputs, T) input events per channel and step (capped at input_max_per_step)

        Returns
        -------
        hidden (batch, hidden, T) and output (batch, classes, T) events per step, float64 integers.
        Output events at step t come from hidden events of step t - 1 (none at t = 0).
        """
        dtype = self.synapse_in.weight.dtype  # a synapse's input and output share its dtype (per-sample gradients)
        counts = counts.to(dtype).clamp(max=self.input_max)
        shift_in, shift_out = torch.exp2(self.weight_shift.to(DTYPE))
        w_in, w_out = (w.detach() for w in self.integer_weights())  # integers (pre, post)
        w_in, w_out = w_in * shift_in, w_out * shift_out
        scale = self.profile.weights.scale  # parameter units -> integer weights
        hidden = self._population(
            self.synapse_in(counts).to(DTYPE) * (scale * shift_in), counts, w_in,
            (self.dash_syn, self.dash_mem, self.threshold.to(DTYPE)), self.hidden_max,
        )  # fmt: skip
        delayed = F.pad(hidden[..., :-1], (1, 0)).to(dtype)  # xylosim delivers the previous step's events
        out = self._population(
            self.synapse_out(delayed).to(DTYPE) * (scale * shift_out), delayed, w_out,
            (self.dash_syn_out, self.dash_mem_out, self.threshold_out.to(DTYPE)), self.output_max,
        )  # fmt: skip
        return hidden, out

    def _population(
        self,
        increment: torch.Tensor,
        counts: torch.Tensor,
        weight: torch.Tensor,
        params: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        max_spikes: int,
    ) -> torch.Tensor:
        """Step one population through T steps. increment (batch, post, T) in state units, counts
        (batch, pre, T), weight (pre, post) integers; returns events (batch, post, T)."""
        dash_syn, dash_mem, threshold = params
        batch, post, steps = increment.shape
        state = LayerState(increment.new_zeros(batch, post), increment.new_zeros(batch, post))
        events = []
        for t in range(steps):
            state, n = layer_step(
                state, increment[..., t], counts[..., t], weight, dash_syn, dash_mem, threshold, max_spikes, self.arith
            )
            events.append(n)
        return torch.stack(events, -1)


def fit_problems(arch: Architecture, profile: HardwareProfile) -> tuple[list[str], list[str]]:
    """What keeps the input -> hidden -> output network ``arch`` off the chip of ``profile``.

    Returns
    -------
    (problems, unchecked): one line per limit exceeded, and one per limit the profile marks
    ``unknown`` (not checked). Both empty: the network fits.
    """
    chip = profile.chip
    if chip is None:
        return [f"profile '{profile.name}' has no [chip] limits"], []
    hidden = arch.hidden[0] if len(arch.hidden) == 1 else sum(arch.hidden)
    inputs = math.prod(arch.input_shape) // pool_factor(tuple(arch.input_shape), chip.input_channels) ** 2
    # The Xylo neuron has a synaptic current (one state); the chip networks' neurons have none
    # (models/chip_neuron.py). Axon-type (crossbar) weights give each signed input two axons.
    states = 1 if profile.neuron.decay == "shift" else 0
    axons = 2 if profile.weights.axon_types else 1
    problems, unchecked = [], []
    checks = [
        ("chip.input_channels", inputs, chip.input_channels, "input channels"),
        ("chip.hidden_neurons", hidden, chip.hidden_neurons, "hidden neurons"),
        ("chip.output_neurons", arch.classes, chip.output_neurons, "output neurons (one per class)"),
        ("chip.synaptic_states", states, chip.synaptic_states, "synaptic states per neuron"),
        ("chip.max_fan_in", axons * max(inputs, hidden), chip.max_fan_in, "largest fan-in (axons)"),
        ("chip.max_fan_out", axons * arch.classes, chip.max_fan_out, "hidden-neuron fan-out (axons)"),
        ("chip.input_projection", hidden, chip.input_projection, "hidden neurons the inputs reach"),
        ("chip.output_projection", hidden, chip.output_projection, "hidden neurons the outputs read"),
    ]
    if len(arch.hidden) != 1:
        problems.append(f"{len(arch.hidden)} hidden layers: this network maps one hidden population")
    for key, used, limit, what in checks:
        if limit is None:
            unchecked.append(f"{key} is unknown: {what} ({used}) not checked")
        elif used > limit:
            problems.append(f"{used} {what} > {key} = {limit}")
    return problems, unchecked


def chip_architecture(
    splits: Splits, profile: HardwareProfile, arch_name: str = "auto"
) -> tuple[Splits, Architecture, list[str]]:
    """Pick an input -> hidden -> output network that fits the chip of ``profile``, or refuse.

    Inputs are pooled to the chip's input channels (:func:`pool_factor`); the hidden population has
    :data:`DEFAULT_HIDDEN` neurons or as many as the chip's hidden neurons and projections allow; a
    dataset with more classes than output neurons keeps its first ``chip.output_neurons`` classes
    (every split is filtered alike).

    Returns
    -------
    (splits, architecture, notes): the splits to train on, the network, and one line per choice made.

    Raises
    ------
    UserError
        ``arch_name`` is ``conv``, or the network still does not fit (the message names the limit).
    """
    from neurofl.data import Splits

    chip = profile.chip
    if chip is None:
        raise UserError(f"profile '{profile.name}' has no [chip] section of limits")
    if arch_name == "conv":
        raise UserError(f"profile '{profile.name}': this chip network is fully connected; --arch conv does not map")
    ds = splits.clients
    notes = []
    shape = tuple(ds.input_shape)
    k = pool_factor(shape, chip.input_channels)
    inputs = math.prod(shape) // k**2
    if k > 1:
        notes.append(
            f"inputs {'x'.join(map(str, shape))} average-pooled {k}x{k} to {inputs} input channels "
            f"(chip.input_channels = {chip.input_channels})"
        )
    classes = ds.classes
    if chip.output_neurons is not None and classes > chip.output_neurons:
        classes = chip.output_neurons
        kept = [splits.oracle, splits.auxiliary, splits.clients, splits.test]
        before = len(ds.y)
        kept = [d.subset(np.flatnonzero(d.y < classes)) for d in kept]
        splits = Splits(*kept)
        notes.append(
            f"'{ds.name}' has {ds.classes} classes, chip.output_neurons = {chip.output_neurons}: kept classes "
            f"0..{classes - 1} ({len(splits.clients.y)} of {before} training samples)"
        )
    limits = [chip.hidden_neurons, chip.input_projection, chip.output_projection]
    hidden = min([DEFAULT_HIDDEN] + [n for n in limits if n is not None])
    arch = Architecture(shape, classes, hidden=(hidden,))
    problems, unchecked = fit_problems(arch, profile)
    if problems:
        raise UserError(f"profile '{profile.name}': the network does not fit: {problems[0]}")
    notes.append(
        f"network {inputs}-{hidden}-{classes} (input channels - hidden - output neurons) fits '{profile.name}'"
    )
    notes += unchecked
    return splits, arch, notes
