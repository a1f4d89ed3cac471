"""SynSense Xylo's integer neuron in plain torch, equal to xylosim bin for bin.

The arithmetic is that of xylosim 0.1.3 (``XyloIAFNeuron.cpp``, ``XyloLayer.cpp``; the C++ simulator
behind rockpool's ``XyloSim``), per time step and neuron:

1. every input event adds ``w << weight_shift`` to the synaptic current, one event at a time, each
   addition saturating at the signed ``state_bits`` range (input channels deliver at most
   ``input_max`` events per step, hidden neurons at most ``max_spikes``);
2. the current decays: ``i -= decrement(i, dash_syn)`` with ``decrement(x, d) = x >> d`` (arithmetic
   shift, i.e. floor), or ``sign(x)`` where that is 0: every nonzero state moves at least 1 toward 0;
3. the voltage integrates: ``v = sat(v + sat(i - decrement(v, dash_mem)))``;
4. the neuron emits ``n = min(floor(v / threshold), max_spikes)`` events (0 when ``v < threshold``)
   and the reset subtracts ``n * threshold`` (or sets ``v = 0`` for ``reset = "zero"``).

Values are float64 tensors holding integers (exact far beyond 16 bits). Every operation's value is
the exact integer result; its gradient is that of a smooth stand-in (``smooth + (exact -
smooth).detach()``): the shift decay differentiates as ``x * 2**-dash``, a saturating sum as the
plain sum clipped to the range, and the event count as a smoothed staircase (:func:`spike_count`).
All stand-ins are compositions of differentiable torch functions, so second derivatives exist (the
gradient-inversion attacks differentiate twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

DTYPE = torch.float64  # integers up to 2**53 are exact; Xylo's states have 16 bits


@dataclass(frozen=True)
class XyloArithmetic:
    """The profile-dependent part of the neuron (one instance per network).

    Attributes
    ----------
    state_bits : width of the signed current and voltage registers (Xylo: 16)
    saturate : saturate states at ``[-2**(state_bits-1), 2**(state_bits-1) - 1]`` (Xylo: true); without
        it states are unbounded integers
    reset : ``"subtract"`` (Xylo) removes ``events * threshold``; ``"zero"`` sets the voltage to 0
    sharpness : steepness (1/threshold units) of the smoothed staircase behind the event count's
        surrogate gradient; a training choice, not a chip number
    """

    state_bits: int = 16
    saturate: bool = True
    reset: Literal["subtract", "zero"] = "subtract"
    sharpness: float = 2.0

    @property
    def state_range(self) -> tuple[int, int]:
        """Inclusive signed register range."""
        half = 1 << (self.state_bits - 1)
        return (-half, half - 1)


def _exact(smooth: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """``exact``'s value with ``smooth``'s gradient."""
    return smooth + (exact.detach() - smooth).detach()


def shift_decrement(x: torch.Tensor, dash: torch.Tensor) -> torch.Tensor:
    """Xylo's decay step ``x >> dash``, at least 1 in magnitude toward 0 for nonzero ``x``.

    Parameters
    ----------
    x : (batch, neurons) integer-valued states
    dash : (neurons,) integer shifts

    Returns
    -------
    (batch, neurons): the decrement (``x - decrement`` is the decayed state); gradient
    ``2**-dash`` (the exponential decay it approximates).
    """
    scale = torch.exp2(-dash.to(x.dtype))
    smooth = x * scale
    with torch.no_grad():
        exact = torch.floor(x.detach() * scale)
        exact = torch.where((exact == 0) & (x != 0), torch.sign(x.detach()), exact)
    return _exact(smooth, exact)


def saturate(x: torch.Tensor, arith: XyloArithmetic) -> torch.Tensor:
    """Clip to the register range when the profile saturates (gradient 0 where clipped)."""
    if not arith.saturate:
        return x
    lo, hi = arith.state_range
    return x.clamp(lo, hi)


def deliver(
    state: torch.Tensor, increment: torch.Tensor, counts: torch.Tensor, weight: torch.Tensor, arith: XyloArithmetic
) -> torch.Tensor:
    """Add the step's input events to the synaptic current as xylosim does: presynaptic neuron by
    neuron, each event's weight added with saturation.

    Parameters
    ----------
    state : (batch, post) current before the step's input
    increment : (batch, post) the differentiable synaptic input ``counts @ weight`` (its value is not
        used, only its gradient: the synapse module computes it, see ``models/xylo_net.py``)
    counts : (batch, pre) integer events per presynaptic neuron (already capped)
    weight : (pre, post) integer effective weights (``w << weight_shift``)

    Returns
    -------
    (batch, post): the exact sequentially saturated sum; gradient of ``clip(state + increment)``.

    Notes
    -----
    ``c`` events of one weight ``w`` saturate like one addition of ``c * w`` (the running sum moves in
    one direction), so only the order of presynaptic neurons matters. When no prefix of the sum
    leaves the range (the common case) the plain sum is exact; otherwise a loop over presynaptic
    neurons reproduces xylosim's order.
    """
    smooth = saturate(state + increment, arith)
    with torch.no_grad():
        contrib = counts.detach().to(DTYPE).unsqueeze(2) * weight.detach().to(DTYPE).unsqueeze(0)  # (b, pre, post)
        prefix = state.detach().unsqueeze(1) + contrib.cumsum(1)
        lo, hi = arith.state_range
        if not arith.saturate or bool(((prefix >= lo) & (prefix <= hi)).all()):
            exact = prefix[:, -1]
        else:
            exact = state.detach().clone()
            for i in range(contrib.shape[1]):
                exact = (exact + contrib[:, i]).clamp(lo, hi)
    return _exact(smooth, exact)


def spike_count(v: torch.Tensor, threshold: torch.Tensor, max_spikes: int, arith: XyloArithmetic) -> torch.Tensor:
    """Events emitted this step: ``clip(floor(v / threshold), 0, max_spikes)``.

    Parameters
    ----------
    v : (batch, neurons) integer voltages after integration
    threshold : (neurons,) positive integer thresholds
    max_spikes : most events per step (Xylo: 31 hidden, 1 output)

    Returns
    -------
    (batch, neurons) exact counts. The gradient is that of the smoothed staircase
    ``(softplus(k (u - 1/2)) - softplus(k (u - max - 1/2))) / k`` with ``u = v / threshold`` and
    ``k = arith.sharpness``: about ``1 / threshold`` between half a threshold and ``max + 1/2``
    thresholds, decaying smoothly outside (so it has a second derivative).
    """
    u = v / threshold
    k = arith.sharpness
    smooth = (F.softplus(k * (u - 0.5)) - F.softplus(k * (u - max_spikes - 0.5))) / k
    with torch.no_grad():
        exact = torch.floor(v.detach() / threshold).clamp(0, max_spikes)
    return _exact(smooth, exact)


@dataclass(frozen=True)
class LayerState:
    """Synaptic current and voltage of one population, (batch, neurons) each."""

    current: torch.Tensor
    voltage: torch.Tensor


def layer_step(
    state: LayerState,
    increment: torch.Tensor,
    counts: torch.Tensor,
    weight: torch.Tensor,
    dash_syn: torch.Tensor,
    dash_mem: torch.Tensor,
    threshold: torch.Tensor,
    max_spikes: int,
    arith: XyloArithmetic,
) -> tuple[LayerState, torch.Tensor]:
    """One time step of a population with one synaptic state (steps 1-4 of the module docstring).

    Parameters
    ----------
    state : the population's current and voltage before the step
    increment : (batch, post) differentiable synaptic input of the step (see :func:`deliver`)
    counts : (batch, pre) integer input events this step (capped by the caller)
    weight : (pre, post) integer effective weights
    dash_syn, dash_mem : (post,) integer decay shifts
    threshold : (post,) positive integer thresholds
    max_spikes : most events a neuron emits per step

    Returns
    -------
    (new state, (batch, post) events emitted this step)
    """
    i = deliver(state.current, increment, counts, weight, arith)
    i = i - shift_decrement(i, dash_syn)  # moves toward 0: never leaves the range
    dv = saturate(i - shift_decrement(state.voltage, dash_mem), arith)
    v = saturate(state.voltage + dv, arith)
    n = spike_count(v, threshold, max_spikes, arith)
    if arith.reset == "subtract":
        v = v - n.detach() * threshold
    else:
        v = v * (n.detach() == 0).to(v.dtype)
    return LayerState(i, v), n
