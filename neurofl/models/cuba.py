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
  recording; the outputs are built by the same expression as SLAYER's (``int64 / w_scale``). On the
  CPU both integrators (current, then voltage) run in one compiled loop over blocks of neurons
  (:mod:`neurofl.models.cuba_kernel`, numba; the NumPy scan over a time-major copy is the
  reference it is held equal to); on
  any other device (CUDA) the same arithmetic runs in torch on the tensor's device, each
  integrator's loop over time steps in one TorchScript function (:func:`_leaky_scan_loop`: no
  Python dispatch per step, no copy to the host), or as one ``cumsum`` / no loop at all where the
  decay makes that exact; :func:`scan_backend` forces a path (the tests run each on the CPU);
- backward: SLAYER's reverse recursion ``g_in[t] = (1 - d) g_in[t+1] + g_out[t]`` written as one
  product with the matrix ``F[t', t] = (1 - d)**(t' - t)`` (t' >= t), which is linear in the
  incoming gradient and so supports double backward with no recorded loop; both integrators are
  one autograd node (:class:`_CubaDynamics`);
- spikes: SLAYER's binary ``Spike`` and its Laplace-shaped surrogate gradient (:class:`_Spike`),
  with the block's one-step output delay in the same node; the surrogate's own derivative (the
  attacks' second-order step) is written out in :class:`_SurrogateGrad`, op for op the chain
  autograd would record, so the numbers are equal bit for bit.

The test ``tests/models/test_cuba.py`` holds both versions equal: spikes bin for bin, input
gradients to 1e-5 relative in float64, and the second-order gradients the attacks use;
``tests/models/test_cuba_torch_scan.py`` holds the torch scan equal to the NumPy scan (and runs it
on CUDA where there is one).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import metadata
from typing import Literal

import numpy as np
import torch
from lava.lib.dl.slayer.neuron import cuba
from lava.lib.dl.slayer.neuron.cuba import SCALE_RHO_MULT, TAU_RHO_MULT
from lava.lib.dl.slayer.synapse import layer as slayer_synapse

from neurofl.models.arch import RESETS, SURROGATES
from neurofl.models.synapses import MatmulDense, TransposedGradConv

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
def _filter(keep: float, steps: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    t = torch.arange(steps, dtype=torch.float64)
    lag = t[:, None] - t[None, :]
    return torch.where(lag >= 0, keep ** lag.clamp(min=0), torch.zeros(())).to(device=device, dtype=dtype)


def decay_filter(
    decay: torch.Tensor | int, steps: int, dtype: torch.dtype, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The reverse-time leaky filter as a matrix.

    Parameters
    ----------
    decay : torch.Tensor or int
        Integer decay on the 12-bit grid (SLAYER's quantized ``current_decay`` / ``voltage_decay``),
        one element.
    steps : int
        Time steps T.
    dtype : torch.dtype
        dtype of the gradients it multiplies.
    device : torch.device or str
        Their device (the matrix is built once per decay, size, dtype and device, then cached).

    Returns
    -------
    torch.Tensor
        (T, T) matrix ``F`` with ``F[t', t] = (1 - decay / 4096) ** (t' - t)`` for ``t' >= t`` and
        0 otherwise, so that ``g_in = g_out @ F`` for ``g`` of shape (..., T).
    """
    return _filter(1.0 - _decay_int(decay) / (1 << DECAY_BITS), steps, dtype, torch.device(device))


def _decay_int(decay: torch.Tensor | int) -> int:
    """The integer decay of a one-element tensor (or an int)."""
    return int(decay.detach().reshape(()).item()) if isinstance(decay, torch.Tensor) else int(decay)


def _keep(decay: torch.Tensor | int) -> float:
    """``1 - decay / 4096`` (exact in float64): the fraction of a state kept after one step."""
    return float((1 << DECAY_BITS) - _decay_int(decay)) / (1 << DECAY_BITS)


Reset = Literal["zero", "subtract"]
ScanBackend = Literal["auto", "numpy", "torch"]
_SCAN_BACKEND: ContextVar[ScanBackend] = ContextVar("scan_backend", default="auto")


@contextmanager
def scan_backend(backend: ScanBackend) -> Iterator[None]:
    """Within this block, the integer scans (:func:`cuba_states`, :func:`integrate`) run on
    ``backend``: ``"torch"`` (the path CUDA tensors take, forced also for CPU tensors: the tests
    and ``scripts/bench_neuron_scan.py`` compare it with NumPy), ``"numpy"`` (the NumPy reference
    scan; CPU float32/float64 tensors only, others still take torch), or ``"auto"`` (the default:
    for CPU float32/float64 tensors :func:`cuba_states` runs the compiled
    :func:`~neurofl.models.cuba_kernel.cuba_scan` and :func:`integrate` NumPy; torch for everything else).

    >>> with scan_backend("torch"):
    ...     integrate(torch.tensor([[0.5, 0.5]]), 1024, 64).tolist()
    [[0.5, 0.875]]
    """
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"scan backend {backend!r}: expected 'auto', 'numpy' or 'torch'")
    token = _SCAN_BACKEND.set(backend)
    try:
        yield
    finally:
        _SCAN_BACKEND.reset(token)


def _use_numpy(x: torch.Tensor) -> bool:
    """Whether the scan of ``x`` runs in NumPy: the backend chosen by :func:`scan_backend` and
    ``x`` on the CPU in float32/float64 (:func:`_numpy_ok`)."""
    return _SCAN_BACKEND.get() != "torch" and _numpy_ok(x)


def integrate(
    x: torch.Tensor, decay: torch.Tensor | int, w_scale: int, threshold: float | None = None, reset: Reset = "zero"
) -> torch.Tensor:
    """SLAYER's leaky-integrator forward (``_li_dynamics_fwd``), from a zero state.

    Parameters
    ----------
    x : torch.Tensor
        Input (..., T), in SLAYER's state units.
    decay : torch.Tensor or int
        Integer decay on the 12-bit grid, one element.
    w_scale : int
        SLAYER's state scale (integers per unit).
    threshold : float or None
        Spike threshold in state units (reset when reached); None integrates without reset.
    reset : {"zero", "subtract"}
        At a spike the state is set to zero (SLAYER, Lava) or drops by the threshold.

    Returns
    -------
    torch.Tensor
        The state after each step's input, before reset, (..., T), dtype and device of ``x``.
    """
    keep = _keep(decay)
    th = _state_threshold(threshold, w_scale)
    with torch.no_grad():
        if _use_numpy(x):
            xn = x.detach().numpy()
            states_np = _states_numpy(_drive_numpy(xn, w_scale), keep, th, reset)
            return torch.from_numpy(_from_time_major(_state_units(states_np, w_scale, xn.dtype), x.shape))
        x = x.detach()
        states = _states_torch(_drive_torch(x, w_scale), keep, th, reset)
        return _from_time_major_torch(_state_units_torch(states, w_scale, x.dtype), x.shape)


def cuba_states(
    x: torch.Tensor, current_decay: int, voltage_decay: int, w_scale: int, threshold: float, reset: Reset = "zero"
) -> tuple[torch.Tensor, torch.Tensor]:
    """SLAYER's CUBA dynamics: the current integrates ``x``, the voltage (with reset at
    ``threshold``: to zero, or by subtracting it with ``reset="subtract"``) integrates the current;
    both as :func:`integrate` computes them, from zero. On the CPU one compiled loop
    (:func:`neurofl.models.cuba_kernel.cuba_scan`; ``scan_backend("numpy")``: the NumPy scan it is
    held equal to), torch on the tensor's device otherwise (see :func:`scan_backend`).

    x : (..., T) in SLAYER's state units; current_decay, voltage_decay : integer decays on the
    12-bit grid -> (current, voltage), each (..., T) of ``x``'s dtype and device
    """
    th = _state_threshold(threshold, w_scale)
    with torch.no_grad():  # both integrators in the time-major layout, with no round trip between
        if not _use_numpy(x):
            x = x.detach()
            current_states = _states_torch(_drive_torch(x, w_scale), _keep(current_decay), None)
            current = _state_units_torch(current_states, w_scale, x.dtype)
            drive = torch.trunc(current * w_scale).to(torch.float64)  # the voltage integrates it
            voltage = _state_units_torch(_states_torch(drive, _keep(voltage_decay), th, reset), w_scale, x.dtype)
            return _from_time_major_torch(current, x.shape), _from_time_major_torch(voltage, x.shape)
        if _SCAN_BACKEND.get() == "auto":  # the compiled scan; "numpy" keeps the reference below
            from neurofl.models.cuba_kernel import cuba_scan

            flat = x.detach().reshape(-1, x.shape[-1]).numpy()
            cur, vol = cuba_scan(flat, w_scale, _keep(current_decay), _keep(voltage_decay), th, reset)
            return torch.from_numpy(cur).reshape(x.shape), torch.from_numpy(vol).reshape(x.shape)
        xn = x.detach().numpy()
        drive_np = _drive_numpy(xn, w_scale)
        current_np = _state_units(_states_numpy(drive_np, _keep(current_decay), None), w_scale, xn.dtype)
        drive_np = np.trunc(current_np * xn.dtype.type(w_scale)).astype(np.float64)  # the voltage integrates it
        voltage_np = _state_units(_states_numpy(drive_np, _keep(voltage_decay), th, reset), w_scale, xn.dtype)
        return (
            torch.from_numpy(_from_time_major(current_np, x.shape)),
            torch.from_numpy(_from_time_major(voltage_np, x.shape)),
        )


def _numpy_ok(x: torch.Tensor) -> bool:
    """Whether :func:`integrate` can run ``x`` through NumPy (CPU, float32 or float64)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _state_threshold(threshold: float | None, w_scale: int) -> float | None:
    """The reset threshold in integer state units, or None for an integrator without reset."""
    return None if threshold is None or threshold <= 0 else threshold * w_scale


def _drive_numpy(x: np.ndarray, w_scale: int) -> np.ndarray:
    """Each step's integer input, SLAYER's ``(w_scale * input).to(int64)`` (the product in ``x``'s
    dtype), as float64 in the time-major layout: (..., T) -> (T, N)."""
    drive = np.trunc(x * x.dtype.type(w_scale))
    return np.ascontiguousarray(drive.reshape(-1, x.shape[-1]).T, dtype=np.float64)


def _states_numpy(drive: np.ndarray, keep: float, th: float | None, reset: Reset = "zero") -> np.ndarray:
    """Integer states (T, N) from ``drive`` (T, N), reset at ``th`` (integer state units) with
    SLAYER's float32 comparison; see :func:`_scan_numpy`."""
    sub = th if reset == "subtract" else None
    states = _scan_numpy(drive, keep, None if th is None else float(np.float32(th)), False, sub)
    if th is not None and states.size and max(-states.min(), states.max()) >= STATE_EXACT_FLOAT32:
        states = _scan_numpy(drive, keep, th, True, sub)
    return states


def _state_units(states: np.ndarray, w_scale: int, dtype: np.dtype) -> np.ndarray:
    """SLAYER's output ``int64 state / w_scale`` (a float32 division), then cast to ``dtype``.

    states : any shape -> same shape
    """
    out = states.astype(np.float32)
    out /= np.float32(w_scale)
    return out.astype(dtype, copy=False)


def _from_time_major(a: np.ndarray, shape: torch.Size) -> np.ndarray:
    """(T, N) -> contiguous ``shape`` (..., T)."""
    return np.ascontiguousarray(a.T).reshape(shape)


# SLAYER compares its int64 state with a float threshold in float32; below this magnitude the
# state converts to float32 exactly, so a float64 comparison with the float32-rounded threshold
# decides the same.
STATE_EXACT_FLOAT32 = float(1 << 24)


def _scan_numpy(
    drive: np.ndarray, keep: float, th: float | None, compare_float32: bool, subtract: float | None = None
) -> np.ndarray:
    """States (T, N) of ``state = trunc(state * keep) + drive[t]`` from zero; where a state reaches
    ``th`` the next step starts from zero, or (``subtract``: the threshold in state units) from the
    state minus it."""
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
        elif subtract is not None:
            fired = o.astype(np.float32) >= th32 if compare_float32 else o >= th
            state = o - subtract * fired
        elif compare_float32:
            state = o * (o.astype(np.float32) < th32)
        else:
            state = o * (o < th)
    return out


# The torch scan (CUDA tensors, or any tensor under scan_backend("torch")): the arithmetic of
# _scan_numpy op for op on float64 states on the tensor's device. The threshold is always compared
# in float32, as SLAYER compares (its int64 state against a Python float promotes both to float32).


def _drive_torch(x: torch.Tensor, w_scale: int) -> torch.Tensor:
    """SLAYER's ``(w_scale * input).to(int64)`` (the product in ``x``'s dtype) as float64 in the
    time-major layout, on ``x``'s device: (..., T) -> (T, N)."""
    return torch.trunc(x * w_scale).reshape(-1, x.shape[-1]).t().to(torch.float64).contiguous()


def _state_units_torch(states: torch.Tensor, w_scale: int, dtype: torch.dtype) -> torch.Tensor:
    """SLAYER's output ``int64 state / w_scale`` (a float32 division), then cast to ``dtype``.

    The divisor is a tensor on ``states``' device: CUDA divides by a host scalar as a product with
    its float32 reciprocal, which is not the correctly rounded quotient that NumPy, the CPU and
    SLAYER's CPU forward compute when ``w_scale`` is not a power of two.

    states : any shape -> same shape
    """
    return (states.to(torch.float32) / torch.full((), w_scale, dtype=torch.float32, device=states.device)).to(dtype)


def _from_time_major_torch(a: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """(T, N) -> contiguous ``shape`` (..., T)."""
    return a.t().contiguous().reshape(shape)


def _states_torch(drive: torch.Tensor, keep: float, th: float | None, reset: Reset = "zero") -> torch.Tensor:
    """Integer states (T, N) of ``state = trunc(state * keep) + drive[t]`` from zero, reset (to 0,
    or by ``th`` with ``reset="subtract"``) where ``float32(state) >= float32(th)``; float64 on
    ``drive``'s device (T, N) -> (T, N).

    Equal value for value to :func:`_states_numpy` (zeros may differ in sign). Without a
    threshold and with ``keep == 1`` (decay 0: no truncation) the scan is ``cumsum``, and with
    ``keep == 0`` (decay 4096: nothing kept, so a reset changes nothing) it is ``drive`` itself:
    integer sums below 2**53 are exact in any order. Otherwise the loop over time steps runs as
    one TorchScript call (:func:`_leaky_scan_loop`).
    """
    if drive.numel() == 0 or keep == 0.0:
        return drive.clone()
    if keep == 1.0 and th is None:
        return torch.cumsum(drive, dim=0)
    th32 = 0.0 if th is None else float(np.float32(th))
    mode = 0 if th is None else (2 if reset == "subtract" else 1)
    return _scripted_scan()(drive, keep, th32, mode, 0.0 if th is None else float(th))


def _leaky_scan_loop(drive: torch.Tensor, keep: float, th32: float, mode: int, th: float) -> torch.Tensor:
    """The loop of :func:`_states_torch` (compiled by :func:`_scripted_scan`): states (T, N) from
    ``drive`` (T, N), float64; ``mode`` 0: no reset, 1: reset to zero, 2: subtract ``th`` (the
    threshold in state units) where the state reached ``th32`` (the float32-rounded threshold).
    Each step's ops are out-of-place, so TorchScript's fuser may join them into one kernel on CUDA."""
    zero = torch.zeros_like(drive[0])
    state = zero
    states: list[torch.Tensor] = []
    for t in range(drive.shape[0]):
        # trunc(state * keep_int / 4096) is SLAYER's right_shift_to_zero(state * keep_int, 12)
        o = torch.trunc(state * keep) + drive[t]
        states.append(o)
        if mode == 1:
            state = torch.where(o.to(torch.float32) >= th32, zero, o)
        elif mode == 2:
            state = torch.where(o.to(torch.float32) >= th32, o - th, o)
        else:
            state = o
    return torch.stack(states)


@functools.cache
def _scripted_scan() -> Callable[[torch.Tensor, float, float, int, float], torch.Tensor]:
    """:func:`_leaky_scan_loop` compiled by ``torch.jit.script`` (once, on first use)."""
    return torch.jit.script(_leaky_scan_loop)


class _CubaDynamics(torch.autograd.Function):
    """Forward: :func:`cuba_states`; backward: SLAYER's two linear reverse filters as matrix
    products, ``g_x = (g_current + g_voltage @ F_voltage) @ F_current`` (the voltage's input is the
    current), the same products autograd chained for two separate integrators."""

    @staticmethod
    def forward(ctx, x, current_decay, voltage_decay, w_scale, threshold, reset="zero"):  # noqa: D102 (autograd API)
        steps = x.shape[-1]
        filters = tuple(decay_filter(d, steps, x.dtype, x.device) for d in (current_decay, voltage_decay))
        ctx.save_for_backward(*filters)
        ctx.set_materialize_grads(False)
        return cuba_states(x, current_decay, voltage_decay, w_scale, threshold, reset)

    @staticmethod
    def backward(ctx, g_current, g_voltage):  # noqa: D102
        f_current, f_voltage = ctx.saved_tensors
        g = g_current
        if g_voltage is not None:
            g_from_voltage = g_voltage @ f_voltage.to(g_voltage.dtype)
            g = g_from_voltage if g is None else g + g_from_voltage
        return None if g is None else g @ f_current.to(g.dtype), None, None, None, None, None


class FusedCubaNeuron(cuba.Neuron):
    """lava-dl's CUBA neuron (same parameters, state dict and export) with a fused ``dynamics``.

    Only the configuration neurofl builds is accepted: shared parameters, no learned decays, no
    persistent state, no normalization, no dropout. Beyond SLAYER's neuron (the ablations' ingredients,
    :class:`~neurofl.models.arch.NeuronParams`): ``surrogate``, the surrogate gradient's shape
    (:func:`surrogate_derivative`; SLAYER's is ``laplace``), and ``reset`` = ``subtract`` (the voltage
    drops by the threshold at a spike instead of SLAYER's reset to zero). SLAYER's ``graded_spike``
    (a spike carries the voltage at the crossing, with SLAYER's graded surrogate) is supported.

    >>> n = FusedCubaNeuron(threshold=1.25, current_decay=0.25, voltage_decay=0.03)
    >>> n(torch.full((1, 1, 4), 2.0)).tolist()
    [[[1.0, 1.0, 1.0, 1.0]]]
    """

    shape: torch.Size | None  # SLAYER's: the neuron shape, set by the first input

    def __init__(self, surrogate: str = "laplace", reset: str = "zero", **params):
        _check_lava_dl()
        super().__init__(**params)
        if not self.shared_param or self.requires_grad or self.persistent_state or self.norm is not None:
            raise ValueError("FusedCubaNeuron needs shared, fixed decays, no persistent state and no norm")
        if self.drop is not None:
            raise ValueError("FusedCubaNeuron supports neurons without dropout only")
        if surrogate not in SURROGATES or reset not in RESETS:
            raise ValueError(f"FusedCubaNeuron: unknown surrogate {surrogate!r} or reset {reset!r}")
        if self.graded_spike and surrogate != "laplace":
            raise ValueError("FusedCubaNeuron: graded spikes have SLAYER's graded surrogate only")
        self.surrogate = "graded" if self.graded_spike else surrogate
        self.reset: Reset = "subtract" if reset == "subtract" else "zero"

    def dynamics(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(current, voltage) responses to ``input`` (batch, *neurons, T), as SLAYER's ``dynamics``."""
        if self.shape is None:
            if input.dim() < 3:
                raise ValueError(f"expected input (batch, neurons..., T), got shape {tuple(input.shape)}")
            self.shape = input.shape[1:-1]
            self.num_neurons = int(torch.tensor(self.shape).prod())
        elif input.shape[1:-1] != self.shape:
            raise ValueError(f"input shape {tuple(input.shape)} does not match the neuron shape {tuple(self.shape)}")
        return _CubaDynamics.apply(
            input,
            round(float(self.current_decay)),  # SLAYER's quantize(decay); Python rounds half to even, as torch
            round(float(self.voltage_decay)),
            self.s_scale,
            self.threshold + self.threshold_eps,
            self.reset,
        )

    def spike(self, voltage: torch.Tensor, delay: bool = False) -> torch.Tensor:
        """Spikes where ``voltage`` reached the threshold (1, or the voltage for graded spikes), with
        the neuron's surrogate gradient; with ``delay``, delayed by one step as :func:`step_delay`
        does (in the same autograd node).

        voltage : (batch, *neurons, T) -> (batch, *neurons, T)
        """
        return _Spike.apply(
            voltage,
            self.threshold + self.threshold_eps,
            self.tau_rho * TAU_RHO_MULT,
            self.scale_rho * SCALE_RHO_MULT,
            delay,
            self.surrogate,
        )

    def delayed_spikes(self, input: torch.Tensor) -> torch.Tensor:
        """``step_delay(self(input))``, with the delay inside the spike's autograd node (fewer
        recorded operations for the attacks' second-order step).

        input : (batch, *neurons, T) -> (batch, *neurons, T)
        """
        _, voltage = self.dynamics(input)
        return self.spike(voltage, delay=True)


_SURROGATE_WIDTH: ContextVar[float] = ContextVar("surrogate_width", default=1.0)


@contextmanager
def surrogate_width(width: float) -> Iterator[None]:
    """Within this block, spike backward passes use a surrogate ``width`` times as wide (same area).

    For an attacker's own input gradient only: the victim's update and the attacker's simulation of
    it are computed outside the block with the model's surrogate, so they stay equal; a wider
    surrogate then lets the input gradient reach pixels whose neurons sit far from threshold.

    >>> with surrogate_width(4.0):
    ...     pass
    """
    if not width > 0:
        raise ValueError(f"surrogate width must be > 0, got {width}")
    token = _SURROGATE_WIDTH.set(width)
    try:
        yield
    finally:
        _SURROGATE_WIDTH.reset(token)


def surrogate_derivative(offset: torch.Tensor, tau: float, scale: float, shape: str) -> torch.Tensor:
    """The surrogate ``d spike / d v`` at ``offset = v - threshold`` (any shape, same shape out).

    Every binary shape has width ``tau`` and area ``scale`` (its integral over the voltage; the fast
    sigmoid's heavy tails put 20/21 of it within 20 widths of the threshold):

    ================  ================================================================  ====================
    ``laplace``       ``scale / (2 tau) * exp(-|x| / tau)``                              SLAYER (Shrestha and
                                                                                         Orchard 2018)
    ``fast_sigmoid``  ``scale / (2 tau) / (1 + |x| / tau)**2``                           SuperSpike (Zenke and
                                                                                         Ganguli 2018)
    ``triangle``      ``scale / tau * max(0, 1 - |x| / tau)``                            Esser et al. 2016,
                                                                                         Bellec et al. 2018
    ``gaussian``      ``scale / (sqrt(2 pi) tau) * exp(-x**2 / (2 tau**2))``             Wu et al. 2018
    ``graded``        ``scale * exp(min(x, 0) / tau)``                                   SLAYER's graded spike
    ================  ================================================================  ====================

    >>> x = torch.linspace(-1, 1, 20001, dtype=torch.float64)
    >>> [round(float(torch.trapezoid(surrogate_derivative(x, 0.05, 3.0, s), x)), 4) for s in SURROGATES]
    [3.0, 2.8571, 3.0, 3.0]
    """
    if shape == "laplace":
        return scale / 2 / tau * offset.abs().neg().div(tau).exp()
    if shape == "fast_sigmoid":
        return scale / 2 / tau / (1 + offset.abs() / tau) ** 2
    if shape == "triangle":
        return scale / tau * (1 - offset.abs() / tau).clamp(min=0)
    if shape == "gaussian":
        return scale / (math.sqrt(2 * math.pi) * tau) * torch.exp(-(offset**2) / (2 * tau**2))
    if shape == "graded":
        return scale * torch.exp(offset.clamp(max=0) / tau)
    raise ValueError(f"unknown surrogate shape {shape!r}")


def _surrogate_second(offset: torch.Tensor, rho: torch.Tensor, tau: float, scale: float, shape: str) -> torch.Tensor:
    """``d rho / d offset`` of :func:`surrogate_derivative` (``rho`` its value at ``offset``), for
    every shape but ``laplace`` (whose chain :class:`_SurrogateGrad` writes out op for op)."""
    if shape == "fast_sigmoid":
        return -2 * rho / (tau + offset.abs()) * offset.sgn()
    if shape == "triangle":
        return -scale / tau**2 * offset.sgn() * (offset.abs() < tau).to(offset.dtype)
    if shape == "gaussian":
        return -rho * offset / tau**2
    if shape == "graded":  # clamp(max=0) passes the gradient where offset <= 0
        return rho / tau * (offset <= 0).to(offset.dtype)
    raise ValueError(f"no written second derivative for surrogate shape {shape!r}")


class _Spike(torch.autograd.Function):
    """SLAYER's ``Spike``: forward ``v >= threshold`` (binary; ``(v >= threshold) * v`` for
    ``shape = "graded"``), then :func:`step_delay` when ``delay``; backward the surrogate of
    ``shape`` (:func:`surrogate_derivative`; SLAYER's Laplace-shaped ``scale / (2 tau) *
    exp(-|v - threshold| / tau)`` by default) times the incoming gradient, as :class:`_SurrogateGrad`
    (differentiable again w.r.t. ``v`` and the incoming gradient: the attacks take its derivative)."""

    @staticmethod
    def forward(ctx, voltage, threshold, tau, scale, delay, shape="laplace"):  # noqa: D102 (autograd API)
        ctx.save_for_backward(voltage)
        ctx.constants = (threshold, tau, scale, delay, shape)
        if shape != "graded":
            return _crossings(voltage, threshold, delay)
        spikes = _crossings(voltage, threshold) * voltage.detach()
        return step_delay(spikes) if delay else spikes

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (voltage,) = ctx.saved_tensors
        threshold, tau, scale, delay, shape = ctx.constants
        tau = tau * _SURROGATE_WIDTH.get()
        if torch.is_grad_enabled():  # create_graph: the attack will differentiate this backward
            g_voltage = _SurrogateGrad.apply(voltage, grad, threshold, tau, scale, delay, shape)
        else:
            g_voltage, _ = _SurrogateGrad.evaluate(voltage, grad, threshold, tau, scale, delay, shape)
        return g_voltage, None, None, None, None, None


class _SurrogateGrad(torch.autograd.Function):
    """The spike's backward ``grad * scale / (2 tau) * exp(-|v - threshold| / tau)`` as one node
    with its derivative written out, instead of autograd's chain of seven recorded operations
    (and likewise for the other shapes of :func:`surrogate_derivative`, their derivatives by
    :func:`_surrogate_second`).

    With ``delay`` the spikes were delayed by one step, so ``grad`` (w.r.t. the delayed spikes) is
    first moved one step earlier (:func:`step_advance`, the adjoint of :func:`step_delay`).

    Forward and both derivatives evaluate the very expressions (in the same order) that autograd
    evaluates for the plain-ops version, so the numbers are equal bit for bit (tested). It can be
    differentiated once more (the attack's second-order step), not twice.

    voltage, grad : (..., T), same shape -> (..., T)
    """

    @staticmethod
    def forward(ctx, voltage, grad, threshold, tau, scale, delay, kind="laplace"):  # noqa: D102 (autograd API)
        out, saved = _SurrogateGrad.evaluate(voltage, grad, threshold, tau, scale, delay, kind)
        ctx.save_for_backward(*saved)
        ctx.constants = (tau, scale, delay, kind)
        return out

    @staticmethod
    def evaluate(
        voltage: torch.Tensor, grad: torch.Tensor, threshold: float, tau: float, scale: float, delay: bool,
        kind: str = "laplace",
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The forward without autograd's bookkeeping (for a backward pass that records nothing):
        the result and the tensors the derivative needs (offset, moved grad, shape, rho)."""
        if delay:
            grad = step_advance(grad)
        offset = voltage - threshold
        if kind != "laplace":
            rho = surrogate_derivative(offset, tau, scale, kind)
            return rho * grad, (offset, grad, rho, rho)
        shape = offset.abs().neg_().div_(tau).exp_()  # exp(-|v - threshold| / tau), op for op
        rho = scale / 2 / tau * shape
        return rho * grad, (offset, grad, shape, rho)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gg):  # noqa: D102
        offset, grad, shape, rho = ctx.saved_tensors
        tau, scale, delay, kind = ctx.constants
        g_voltage = g_grad = None
        if ctx.needs_input_grad[0] and kind != "laplace":
            g_voltage = gg * grad * _surrogate_second(offset, rho, tau, scale, kind)
        elif ctx.needs_input_grad[0]:  # autograd's chain: Mul, Mul(scalar), Exp, Div, Neg, Abs, Sub
            g_voltage = (gg * grad).mul_(scale / 2 / tau).mul_(shape).div_(tau).neg_().mul_(offset.sgn())
        if ctx.needs_input_grad[1]:
            g_grad = step_delay(gg * rho) if delay else gg * rho
        return g_voltage, g_grad, None, None, None, None, None


def _crossings(voltage: torch.Tensor, threshold: float, delay: bool = False) -> torch.Tensor:
    """``(voltage >= threshold).to(voltage.dtype)``, compared in ``voltage``'s dtype as torch does,
    then :func:`step_delay` when ``delay``; in NumPy on the CPU, where torch's boolean kernels cost
    several times more at these sizes, with the delay written straight into the output (one pass,
    no zero-filled copy; not under :func:`padded_shifts`).

    voltage : (..., T) -> same shape
    """
    if not _numpy_ok(voltage):
        spikes = (voltage >= threshold).to(voltage.dtype)
    else:
        v = voltage.detach().numpy()
        th = v.dtype.type(threshold)
        if delay and v.shape[-1] > 0 and not _PADDED_SHIFTS.get():
            out = np.empty(v.shape, v.dtype)
            out[..., 0] = 0
            np.greater_equal(v[..., :-1], th, out=out[..., 1:], casting="unsafe")  # True -> 1.0, False -> 0.0
            return torch.from_numpy(out)
        spikes = torch.from_numpy((v >= th).astype(v.dtype))
    return step_delay(spikes) if delay else spikes


_PADDED_SHIFTS: ContextVar[bool] = ContextVar("padded_shifts", default=False)


@contextmanager
def padded_shifts() -> Iterator[None]:
    """Within this block the one-step shifts (:func:`step_delay`, :func:`step_advance`, the spikes'
    delay) run on ``F.pad`` (:func:`_padded_shift`): the reference the fill-free shifts are held
    equal to, bit for bit (``tests/models/test_cuba.py``, ``scripts/bench_spike_shifts.py``).

    >>> x = torch.tensor([[1.0, 2.0, 3.0]])
    >>> with padded_shifts():
    ...     step_delay(x).tolist()
    [[0.0, 1.0, 2.0]]
    """
    token = _PADDED_SHIFTS.set(True)
    try:
        yield
    finally:
        _PADDED_SHIFTS.reset(token)


def _padded_shift(x: torch.Tensor, later: bool) -> torch.Tensor:
    """:func:`_shift` by ``F.pad`` (the reference, and the path autograd records)."""
    return torch.nn.functional.pad(x[..., :-1], (1, 0)) if later else torch.nn.functional.pad(x[..., 1:], (0, 1))


def _shift(x: torch.Tensor, later: bool) -> torch.Tensor:
    """``x`` (..., T) moved one step later (``later``) or earlier along T, the vacated step 0.

    ``F.pad`` zero-fills its whole output before copying into it; outside a recorded graph this
    writes the zeros into the one vacated step only (the same values, in a contiguous result as
    ``F.pad``'s). A tensor autograd records, a non-contiguous one, an empty T or a call under
    :func:`padded_shifts` takes :func:`_padded_shift`.
    """
    recorded = x.requires_grad and torch.is_grad_enabled()
    if x.shape[-1] == 0 or not x.is_contiguous() or recorded or _PADDED_SHIFTS.get():
        return _padded_shift(x, later)
    out = torch.empty_like(x)
    if later:
        out[..., 0] = 0
        out[..., 1:] = x[..., :-1]
    else:
        out[..., -1] = 0
        out[..., :-1] = x[..., 1:]
    return out


def step_delay(spikes: torch.Tensor) -> torch.Tensor:
    """Delay spike trains (..., T) by one step (SLAYER's ``delay_shift``; the first step is 0)."""
    return _shift(spikes, later=True)


def step_advance(grad: torch.Tensor) -> torch.Tensor:
    """Move (..., T) one step earlier, the last step 0: the adjoint of :func:`step_delay`."""
    return _shift(grad, later=False)


def run_block(block: torch.nn.Module, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
    """``block(x)`` for a SLAYER Dense or Conv block with a fused neuron, without SLAYER's
    autograd-function time shift (the one-step delay runs inside the spike's node unless the neuron
    has module hooks, which need its own call); any other block (or option) runs SLAYER's forward.

    x : (..., T), or (..., 1) for an input the same at every one of ``steps`` time steps: the
    synapse then runs once and its current is repeated (an ``expand``, whose backward sums the
    steps' gradients). -> (..., T) output spikes
    """
    steps = x.shape[-1] if steps is None else steps
    neuron = getattr(block, "neuron", None)
    if (
        not isinstance(neuron, FusedCubaNeuron)
        or block.delay is not None
        or block.count_log
        or getattr(block, "mask", None) is not None
    ):
        return block(over_steps(x, steps))
    z = over_steps(block.synapse(x), steps)
    if block.delay_shift and not (neuron._forward_hooks or neuron._forward_pre_hooks):
        return neuron.delayed_spikes(z)
    s = neuron(z)
    return step_delay(s) if block.delay_shift else s


def over_steps(x: torch.Tensor, steps: int) -> torch.Tensor:
    """(..., 1) -> (..., steps), a view; (..., steps) unchanged."""
    if x.shape[-1] == steps:
        return x
    if x.shape[-1] != 1:
        raise ValueError(f"an input of {x.shape[-1]} time steps for a network of {steps}")
    return x.expand(*x.shape[:-1], steps)


def fuse_neurons(
    blocks: torch.nn.ModuleList, params: dict, surrogate: str = "laplace", reset: str = "zero"
) -> None:
    """Give every SLAYER CUBA block in ``blocks`` a :class:`FusedCubaNeuron` built from ``params``
    (the neuron dictionary the blocks were built with) and the options SLAYER's neuron does not
    take (``surrogate``, ``reset``), and every Dense and Conv synapse the forward of
    :class:`~neurofl.models.synapses.MatmulDense` and
    :class:`~neurofl.models.synapses.TransposedGradConv`."""
    for block in blocks:
        old = getattr(block, "neuron", None)
        if old is None:
            continue
        if type(old) is not cuba.Neuron:
            raise TypeError(f"expected a SLAYER CUBA neuron, got {type(old).__name__}")
        block.neuron = FusedCubaNeuron(surrogate, reset, **params)
        if type(block.synapse) is slayer_synapse.Dense:
            block.synapse.__class__ = MatmulDense  # subclasses that only override forward
        elif type(block.synapse) is slayer_synapse.Conv:
            block.synapse.__class__ = TransposedGradConv
