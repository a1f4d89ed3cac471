"""SLAYER's CUBA neuron with a faster, equal forward and backward (lava-dl 0.6).

SLAYER runs each leaky integrator (current, then voltage) as a Python loop over time steps in
int64, inside an autograd function whose backward is a second Python loop (the linear leaky
filter run backwards in time). The attacks differentiate that backward again, so every step of
both loops is recorded and replayed: on the digits MLP this made one SNN attack iteration cost
5-10x the ANN's.

:class:`FusedCubaNeuron` computes the same numbers with fewer operations:

- forward: the same integer arithmetic (truncating right shift by 12 bits, truncation of the
  scaled input, float32 threshold comparison, reset to zero) on float64 states, which hold the
  integers exactly (states < 2**24, decays < 2**12, products < 2**53), with no autograd
  recording; the outputs are built by the same expression as SLAYER's (``int64 / w_scale``);
- backward: SLAYER's reverse recursion ``g_in[t] = (1 - d) g_in[t+1] + g_out[t]`` written as one
  product with the matrix ``F[t', t] = (1 - d)**(t' - t)`` (t' >= t), which is linear in the
  incoming gradient and so supports double backward with no recorded loop.

Spikes go through SLAYER's own ``Spike`` function (its surrogate gradient), unchanged. The test
``tests/models/test_cuba.py`` holds both versions equal: spikes bin for bin, input gradients
to 1e-5 relative in float64, and the second-order gradients the attacks use.
"""

from __future__ import annotations

import functools
from importlib import metadata

import numpy as np
import torch
from lava.lib.dl.slayer.neuron import cuba
from lava.lib.dl.slayer.neuron.cuba import SCALE_RHO_MULT, TAU_RHO_MULT
from lava.lib.dl.slayer.synapse import layer as slayer_synapse
from lava.lib.dl.slayer.utils import quantize

# The class below overrides SLAYER's ``dynamics`` and relies on its state layout; it was written
# against this release and is checked against it by the tests. Another release fails loudly.
LAVA_DL_VERSION = "0.6.0"
DECAY_BITS = 12


def _check_lava_dl() -> None:
    found = metadata.version("lava-dl")
    if found != LAVA_DL_VERSION:
        raise RuntimeError(
            f"neurofl's fused CUBA neuron was checked against lava-dl {LAVA_DL_VERSION}, found {found}: "
            "please report (or pin lava-dl)"
        )


@functools.lru_cache(maxsize=64)
def _filter(keep: float, steps: int, dtype: torch.dtype) -> torch.Tensor:
    t = torch.arange(steps, dtype=torch.float64)
    lag = t[:, None] - t[None, :]
    return torch.where(lag >= 0, keep ** lag.clamp(min=0), torch.zeros(())).to(dtype)


def decay_filter(decay: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor:
    """The reverse-time leaky filter as a matrix.

    Parameters
    ----------
    decay : torch.Tensor
        Integer decay on the 12-bit grid (SLAYER's quantized ``current_decay`` / ``voltage_decay``),
        one element.
    steps : int
        Time steps T.
    dtype : torch.dtype
        dtype of the gradients it multiplies.

    Returns
    -------
    torch.Tensor
        (T, T) matrix ``F`` with ``F[t', t] = (1 - decay / 4096) ** (t' - t)`` for ``t' >= t`` and
        0 otherwise, so that ``g_in = g_out @ F`` for ``g`` of shape (..., T).
    """
    return _filter(1.0 - float(decay.detach().reshape(()).item()) / (1 << DECAY_BITS), steps, dtype)


def integrate(
    x: torch.Tensor, decay: torch.Tensor, w_scale: int, threshold: float | None = None
) -> torch.Tensor:
    """SLAYER's leaky-integrator forward (``_li_dynamics_fwd``), from a zero state.

    Parameters
    ----------
    x : torch.Tensor
        Input (..., T), in SLAYER's state units.
    decay : torch.Tensor
        Integer decay on the 12-bit grid, one element.
    w_scale : int
        SLAYER's state scale (integers per unit).
    threshold : float or None
        Spike threshold in state units (reset to zero when reached); None integrates without reset.

    Returns
    -------
    torch.Tensor
        The state after each step's input, before reset, (..., T), dtype of ``x``.
    """
    with torch.no_grad():
        keep = float((1 << DECAY_BITS) - int(decay.reshape(()).item())) / (1 << DECAY_BITS)
        drive = torch.trunc(w_scale * x).to(torch.float64).movedim(-1, 0).contiguous()  # (T, ...)
        th = None if threshold is None or threshold <= 0 else threshold * w_scale
        states = _scan(drive, keep, None if th is None else float(np.float32(th)))
        if th is not None and float(states.abs().max()) >= STATE_EXACT_FLOAT32:
            states = _scan(drive, keep, th, compare_float32=True)
        return (states.to(torch.int64) / w_scale).to(x.dtype).movedim(0, -1).contiguous()


# SLAYER compares its int64 state with a float threshold in float32; below this magnitude the
# state converts to float32 exactly, so a float64 comparison with the float32-rounded threshold
# decides the same.
STATE_EXACT_FLOAT32 = float(1 << 24)


def _scan(drive: torch.Tensor, keep: float, th: float | None, compare_float32: bool = False) -> torch.Tensor:
    """States (T, ...) of ``state = trunc(state * keep) + drive[t]``, reset to 0 at ``>= th``.

    On the CPU the loop runs in NumPy (the same IEEE float64 operations with a fraction of torch's
    per-call overhead on these small arrays); elsewhere in torch.
    """
    if drive.device.type == "cpu":
        return torch.from_numpy(_scan_numpy(drive.numpy(), keep, th, compare_float32))
    out = torch.empty_like(drive)
    state = torch.zeros_like(drive[0])
    for t in range(drive.shape[0]):
        o = out[t]
        torch.mul(state, keep, out=o)
        o.trunc_()
        o.add_(drive[t])
        if th is not None:
            state = o.masked_fill((o.to(torch.float32) if compare_float32 else o) >= th, 0.0)
        else:
            state = o
    return out


def _scan_numpy(drive: np.ndarray, keep: float, th: float | None, compare_float32: bool) -> np.ndarray:
    out = np.empty_like(drive)
    state = np.zeros_like(drive[0])
    th32 = None if th is None else np.float32(th)
    for t in range(drive.shape[0]):
        o = out[t]
        # trunc(state * keep_int / 4096) is SLAYER's right_shift_to_zero(state * keep_int, 12)
        np.multiply(state, keep, out=o)
        np.trunc(o, out=o)
        o += drive[t]
        if th is None:
            state = o
        elif compare_float32:
            state = o * (o.astype(np.float32) < th32)
        else:
            state = o * (o < th)
    return out


class _LeakyIntegrator(torch.autograd.Function):
    """Forward: :func:`integrate`; backward: SLAYER's linear reverse filter as one matrix product."""

    @staticmethod
    def forward(ctx, x, decay, w_scale, threshold):  # noqa: D102 (torch.autograd.Function API)
        ctx.save_for_backward(decay_filter(decay, x.shape[-1], x.dtype))
        return integrate(x, decay, w_scale, threshold)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (f,) = ctx.saved_tensors
        return grad @ f.to(grad.dtype), None, None, None


class FusedCubaNeuron(cuba.Neuron):
    """lava-dl's CUBA neuron (same parameters, state dict and export) with a fused ``dynamics``.

    Only the configuration neurofl builds is accepted: shared parameters, no learned decays, no
    persistent state, no normalization, binary spikes.

    >>> n = FusedCubaNeuron(threshold=1.25, current_decay=0.25, voltage_decay=0.03)
    >>> n(torch.full((1, 1, 4), 2.0)).tolist()
    [[[1.0, 1.0, 1.0, 1.0]]]
    """

    def __init__(self, **params):
        _check_lava_dl()
        super().__init__(**params)
        if not self.shared_param or self.requires_grad or self.persistent_state or self.norm is not None:
            raise ValueError("FusedCubaNeuron needs shared, fixed decays, no persistent state and no norm")
        if self.graded_spike or self.drop is not None:
            raise ValueError("FusedCubaNeuron supports binary spikes without dropout only")

    def dynamics(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(current, voltage) responses to ``input`` (batch, *neurons, T), as SLAYER's ``dynamics``."""
        if self.shape is None:
            if input.dim() < 3:
                raise ValueError(f"expected input (batch, neurons..., T), got shape {tuple(input.shape)}")
            self.shape = input.shape[1:-1]
            self.num_neurons = int(torch.tensor(self.shape).prod())
        elif input.shape[1:-1] != self.shape:
            raise ValueError(f"input shape {tuple(input.shape)} does not match the neuron shape {tuple(self.shape)}")
        current = _LeakyIntegrator.apply(input, quantize(self.current_decay), self.s_scale, None)
        voltage = _LeakyIntegrator.apply(
            current, quantize(self.voltage_decay), self.s_scale, self.threshold + self.threshold_eps
        )
        return current, voltage

    def spike(self, voltage: torch.Tensor) -> torch.Tensor:
        """Binary spikes where ``voltage`` reached the threshold, with SLAYER's surrogate gradient."""
        return _Spike.apply(
            voltage, self.threshold + self.threshold_eps, self.tau_rho * TAU_RHO_MULT, self.scale_rho * SCALE_RHO_MULT
        )


class _Spike(torch.autograd.Function):
    """SLAYER's ``Spike`` (binary): forward ``v >= threshold``; backward the Laplace-shaped
    surrogate ``scale / (2 tau) * exp(-|v - threshold| / tau)``, written in differentiable ops of
    ``v`` (the attacks take its derivative again)."""

    @staticmethod
    def forward(ctx, voltage, threshold, tau, scale):  # noqa: D102 (torch.autograd.Function API)
        ctx.save_for_backward(voltage)
        ctx.constants = (threshold, tau, scale)
        return (voltage >= threshold).to(voltage.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (voltage,) = ctx.saved_tensors
        threshold, tau, scale = ctx.constants
        return scale / 2 / tau * torch.exp(-(voltage - threshold).abs() / tau) * grad, None, None, None


def step_delay(spikes: torch.Tensor) -> torch.Tensor:
    """Delay spike trains (..., T) by one step (SLAYER's ``delay_shift``; the first step is 0)."""
    return torch.nn.functional.pad(spikes[..., :-1], (1, 0))


def run_block(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` for a SLAYER Dense or Conv block with a fused neuron, without SLAYER's
    autograd-function time shift; any other block (or option) runs SLAYER's own forward."""
    neuron = getattr(block, "neuron", None)
    if (
        not isinstance(neuron, FusedCubaNeuron)
        or block.delay is not None
        or block.count_log
        or getattr(block, "mask", None) is not None
    ):
        return block(x)
    s = neuron(block.synapse(x))
    return step_delay(s) if block.delay_shift else s


class MatmulDense(slayer_synapse.Dense):
    """SLAYER's Dense synapse (a Conv3d with a 1x1x1 kernel over (batch, inputs, 1, 1, T)) as one
    matrix product over (batch, inputs, T): the same sums without the convolution's set-up cost,
    which dominated these small layers. Same parameters, hooks and export."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() != 3 or self.bias is not None:
            return super().forward(input)
        weight = self.weight if self._pre_hook_fx is None else self._pre_hook_fx(self.weight)
        return torch.matmul(weight.reshape(weight.shape[0], -1), input)


def fuse_neurons(blocks: torch.nn.ModuleList, params: dict) -> None:
    """Give every SLAYER CUBA block in ``blocks`` a :class:`FusedCubaNeuron` built from ``params``
    (the neuron dictionary the blocks were built with), and every Dense synapse the matrix-product
    forward of :class:`MatmulDense`."""
    for block in blocks:
        old = getattr(block, "neuron", None)
        if old is None:
            continue
        if type(old) is not cuba.Neuron:
            raise TypeError(f"expected a SLAYER CUBA neuron, got {type(old).__name__}")
        block.neuron = FusedCubaNeuron(**params)
        if type(block.synapse) is slayer_synapse.Dense:
            block.synapse.__class__ = MatmulDense  # a subclass that only overrides forward
