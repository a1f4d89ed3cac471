"""The input -> hidden -> output network of the one-state chips (Speck, Akida, TrueNorth, SpiNNaker2).

The same topology as :class:`neurofl.models.chips.xylo_net.XyloNetwork` (inputs pooled to the chip's input
channels when it publishes a limit, event-count inputs, logits = output events summed over T), with
the neuron of :mod:`neurofl.models.chips.neuron` in the profile's arithmetic: its decay kind, register
width and saturation, reset, events per step, and weights (integers of ``weights.bits``; TrueNorth's
axon-type crossbar when ``weights.axon_types`` > 0, applied by the profile's weight quantizer).
Events reach the next population in the same step (Speck and Akida pass events on as they occur;
TrueNorth's minimum one-tick axon delay is not modelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch

from neurofl.errors import UserError
from neurofl.models.arch import Architecture
from neurofl.models.chips.neuron import ChipArithmetic, Decay, chip_step
from neurofl.models.chips.xylo_net import TwoProjectionNetwork, XyloSynapse
from neurofl.models.chips.xylo_neuron import DTYPE, XyloArithmetic
from neurofl.profiles import CHIP_DECAYS, HardwareProfile


@dataclass(frozen=True)
class ChipDesign:
    """The network's neuron parameters (its own choices, not the chip's); a built network keeps them
    per neuron in its state dict.

    Attributes
    ----------
    threshold, threshold_out : hidden and output thresholds in weight-parameter units; the integer
        threshold is ``round(threshold * weights.scale * input_max_per_step)`` for hidden neurons (an
        input channel may carry that many events per step) and ``round(threshold_out * weights.scale)``
        for output neurons
    readout_gain : multiplies the output threshold when output neurons emit several events per step over
        several steps (Speck's bins): without it the logits (events summed over T) reach hundreds and
        the softmax saturates (measured on digits, 3 epochs: 32% test accuracy at gain 1, 76% at 4)
    leak : the linear leak per step, in state units (TrueNorth's lambda)
    alpha : the exponential decay factor per step (SpiNNaker2's ``alpha_decay``)
    """

    threshold: float = 1.25
    threshold_out: float = 1.25
    readout_gain: float = 4.0
    leak: int = 1
    alpha: float = 0.9


class ChipNetwork(TwoProjectionNetwork):
    """Input channels -> ``arch.hidden[0]`` hidden -> ``arch.classes`` output neurons of a one-state chip.

    forward: x (batch, *input_shape) in [0, 1] -> logits (batch, classes) = output events over T steps.
    """

    def __init__(self, arch: Architecture, profile: HardwareProfile, design: ChipDesign | None = None):
        super().__init__()
        n = profile.neuron
        if n.decay not in CHIP_DECAYS or profile.chip is None:
            raise UserError(f"profile '{profile.name}': a chip network needs neuron.decay in {CHIP_DECAYS} and [chip]")
        self._bind(arch, profile, "chip")
        d = design or ChipDesign()
        decay_kind = cast(Decay, n.decay)  # one of CHIP_DECAYS (checked above)
        self.arith = ChipArithmetic(decay_kind, XyloArithmetic(n.state_bits, n.saturate, n.reset))
        hidden, classes = arch.hidden[0], arch.classes
        self.synapse_in = XyloSynapse(self.inputs, hidden, arch.weight_scale, profile)
        self.synapse_out = XyloSynapse(hidden, classes, arch.weight_scale, profile)
        scale = profile.weights.scale
        exact = n.decay != "exponential"  # integer thresholds except in float32 arithmetic
        th = d.threshold * scale * self.input_max
        th_out = d.threshold_out * scale
        if self.output_max > 1 and self.time_steps > 1:
            th_out *= d.readout_gain
        decay = {"none": 0.0, "linear": float(d.leak), "exponential": d.alpha}[n.decay]
        for name, value, size in (
            ("threshold", max(1, round(th)) if exact else th, hidden),
            ("threshold_out", max(1, round(th_out)) if exact else th_out, classes),
            ("decay", decay, hidden),
            ("decay_out", decay, classes),
        ):
            self.register_buffer(name, torch.full((size,), float(value), dtype=DTYPE))
        self.check_parameters()

    def check_parameters(self) -> None:
        """Refuse neuron parameters the profile's registers cannot hold (one line naming the value).

        Raises
        ------
        UserError
            An integer threshold outside ``1..2**(state_bits-1) - 1``, a leak outside
            ``0..2**(decay_bits-1) - 1``, or an alpha outside (0, 1].
        """
        n = self.profile.neuron
        top = (1 << (n.state_bits - 1)) - 1
        for name in ("threshold", "threshold_out"):
            t = getattr(self, name)
            if float(t.min()) <= 0 or (n.decay != "exponential" and float(t.max()) > top):
                raise UserError(
                    f"profile '{self.profile.name}': {name} in [{float(t.min())}, {float(t.max())}] does not fit "
                    f"neuron.state_bits = {n.state_bits} (thresholds 1..{top})"
                )
        d = torch.cat([self.decay, self.decay_out])
        if n.decay == "linear" and (float(d.min()) < 0 or float(d.max()) > (1 << (n.decay_bits - 1)) - 1):
            raise UserError(
                f"profile '{self.profile.name}': leak in [{float(d.min())}, {float(d.max())}] does not fit "
                f"neuron.decay_bits = {n.decay_bits} (signed)"
            )
        if n.decay == "exponential" and (float(d.min()) <= 0 or float(d.max()) > 1):
            raise UserError(f"profile '{self.profile.name}': decay factor alpha must lie in (0, 1]")

    def run(self, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input event counts (batch, inputs, T) -> hidden (batch, hidden, T) and output
        (batch, classes, T) events per step (float64 integers)."""
        dtype = self.synapse_in.weight.dtype
        counts = counts.to(dtype).clamp(max=self.input_max)
        w_in, w_out = (w.detach() for w in self.integer_weights())
        scale = self.profile.weights.scale
        hidden = self._population(self.synapse_in(counts).to(DTYPE) * scale, counts, w_in, False)
        out = self._population(self.synapse_out(hidden.to(dtype)).to(DTYPE) * scale, hidden.to(dtype), w_out, True)
        return hidden, out

    def _population(
        self, increment: torch.Tensor, counts: torch.Tensor, weight: torch.Tensor, out: bool
    ) -> torch.Tensor:
        """Step one population through T steps (increment (batch, post, T) in state units)."""
        threshold, decay = (self.threshold_out, self.decay_out) if out else (self.threshold, self.decay)
        max_events = self.output_max if out else self.hidden_max
        v = increment.new_zeros(increment.shape[:2])
        events = []
        for t in range(increment.shape[-1]):
            v, n = chip_step(v, increment[..., t], counts[..., t], weight, decay, threshold, max_events, self.arith)
            events.append(n)
        return torch.stack(events, -1)
