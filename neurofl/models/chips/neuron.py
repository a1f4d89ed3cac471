"""The one-state neuron of the chip networks (Speck, Akida, TrueNorth, SpiNNaker2) in plain torch.

Per time step and neuron, with ``v`` the membrane state and ``n`` the events emitted:

1. decay (``neuron.decay``): ``none`` keeps ``v`` (integrate-and-fire: Speck's IAF, Akida's
   accumulator); ``linear`` moves ``v`` toward 0 by ``min(|v|, leak)`` (TrueNorth's leak with leak
   reversal); ``exponential`` is ``v = alpha * v`` rounded to float32 (SpiNNaker2's software LIF);
2. the step's input events add their weights, each addition saturating at the signed ``state_bits``
   range when ``neuron.saturate`` (:func:`neurofl.models.chips.xylo_neuron.deliver`, the same sequential
   order as Xylo's);
3. ``n = clip(floor(v / threshold), 0, max_events)`` (binary spikes: ``max_events`` 1; Speck's
   multi-spike bins and Akida's 4-bit activations: more);
4. reset: ``subtract`` removes ``n * threshold``, ``zero`` sets ``v = 0`` where ``n > 0``.

Values are float64 tensors holding the exact integer (or float32) results; gradients come from the
smooth stand-ins of :mod:`neurofl.models.chips.xylo_neuron` (identity for the decay's rounding, clipped sums,
the smoothed staircase of :func:`~neurofl.models.chips.xylo_neuron.spike_count`), which have second
derivatives (the gradient-inversion attacks differentiate twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from neurofl.models.chips.xylo_neuron import XyloArithmetic, _exact, deliver, spike_count

Decay = Literal["none", "linear", "exponential"]


@dataclass(frozen=True)
class ChipArithmetic:
    """The profile-dependent part of the neuron: ``decay`` kind and the register arithmetic
    (``registers.state_bits``, ``saturate``, ``reset``; :class:`XyloArithmetic`)."""

    decay: Decay
    registers: XyloArithmetic


def decay_step(v: torch.Tensor, param: torch.Tensor, arith: ChipArithmetic) -> torch.Tensor:
    """The state after one step's decay.

    Parameters
    ----------
    v : (batch, neurons) states
    param : (neurons,) the leak per step (``linear``, state units) or the factor alpha (``exponential``);
        unused for ``none``

    Returns
    -------
    (batch, neurons): exact values; gradient 1 (``none``, ``linear``) or alpha (``exponential``).
    """
    if arith.decay == "none":
        return v
    if arith.decay == "linear":
        with torch.no_grad():
            exact = v - torch.sign(v) * torch.minimum(v.abs(), param.to(v.dtype))
        return _exact(v, exact)
    smooth = v * param.to(v.dtype)
    with torch.no_grad():  # SpiNNaker2's neuron multiplies float32 numbers
        exact = (v.detach().float() * param.float()).to(v.dtype)
    return _exact(smooth, exact)


def chip_step(
    v: torch.Tensor,
    increment: torch.Tensor,
    counts: torch.Tensor,
    weight: torch.Tensor,
    decay: torch.Tensor,
    threshold: torch.Tensor,
    max_events: int,
    arith: ChipArithmetic,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step of a population (steps 1-4 of the module docstring).

    Parameters
    ----------
    v : (batch, post) state before the step
    increment : (batch, post) differentiable synaptic input (only its gradient is used; see ``deliver``)
    counts : (batch, pre) integer input events this step
    weight : (pre, post) integer effective weights
    decay : (post,) leak or alpha (see :func:`decay_step`)
    threshold : (post,) positive thresholds
    max_events : most events a neuron emits per step

    Returns
    -------
    (new state, (batch, post) events emitted this step)
    """
    v = deliver(decay_step(v, decay, arith), increment, counts, weight, arith.registers)
    if arith.decay == "exponential":  # a float32 accumulation (integer sums below 2**24 are exact in it)
        v = _exact(v, v.detach().float().to(v.dtype))
    n = spike_count(v, threshold, max_events, arith.registers)
    if arith.registers.reset == "subtract":
        v = v - n.detach() * threshold
    else:
        v = v * (n.detach() == 0).to(v.dtype)
    return v, n
