"""The CUBA neuron's two integer scans (current, then voltage) as one compiled loop for the CPU.

:func:`neurofl.models.cuba.cuba_states` runs both integrators with NumPy: each of the T steps is a
few whole-array passes over a time-major copy, and the current goes through memory between the
two scans. Here one numba loop walks a block of neurons through time, the current feeding the
voltage in registers, on the input's own (neurons, T) layout: the same integer arithmetic value
for value (held equal to the NumPy scan and to SLAYER by ``tests/models/test_cuba_kernel.py``),
about 10x faster on the attacks' SNN shapes (``scripts/bench_neuron_scan.py``).

The arithmetic, per neuron and step (SLAYER's, on float64 states that hold its int64 integers
exactly below 2**53):

- drive ``trunc(w_scale * x)``, the product in ``x``'s dtype;
- state ``trunc(state * keep) + drive`` (``keep = 1 - decay / 4096``: SLAYER's truncating right
  shift by 12 bits);
- output ``float32(state) / float32(w_scale)`` in ``x``'s dtype;
- the voltage's drive is the current output times ``w_scale`` (again in ``x``'s dtype); where
  ``float32(voltage state) >= float32(threshold)`` the next step starts from zero (``mode`` 1) or
  from the state minus the threshold (``mode`` 2). A float32 comparison is SLAYER's (its int64
  state against a Python float); below 2**24 it equals the NumPy scan's float64 one.
"""

from __future__ import annotations

import numba
import numpy as np

BLOCK = 64  # neurons stepped together: their independent chains overlap in the pipeline

MODES = {None: 0, "zero": 1, "subtract": 2}  # no reset (an integrator), reset to zero, subtract


@numba.njit(nogil=True, cache=True)
def _scan(x, w_scale, keep_c, keep_v, th, th32, mode, current, voltage):  # numba infers the types
    n, steps = x.shape
    ws32 = np.float32(w_scale)
    sc = np.zeros(BLOCK)
    sv = np.zeros(BLOCK)
    for b0 in range(0, n, BLOCK):
        m = min(BLOCK, n - b0)
        sc[:] = 0.0
        sv[:] = 0.0
        for t in range(steps):
            for j in range(m):
                i = b0 + j
                o = np.trunc(sc[j] * keep_c) + np.trunc(np.float64(x[i, t] * w_scale))
                sc[j] = o
                current[i, t] = np.float32(o) / ws32
                ov = np.trunc(sv[j] * keep_v) + np.trunc(np.float64(current[i, t] * w_scale))
                voltage[i, t] = np.float32(ov) / ws32
                if mode == 0:
                    sv[j] = ov
                elif mode == 1:  # a product, as the NumPy scan's: an infinite state resets to NaN
                    sv[j] = ov * (1.0 if np.float32(ov) < th32 else 0.0)
                else:
                    sv[j] = ov - th if np.float32(ov) >= th32 else ov


def cuba_scan(
    x: np.ndarray, w_scale: int, keep_current: float, keep_voltage: float, threshold: float | None, reset: str
) -> tuple[np.ndarray, np.ndarray]:
    """Current and voltage of CUBA neurons driven by ``x``, from a zero state.

    Parameters
    ----------
    x : np.ndarray
        Input (N, T), float32 or float64, in SLAYER's state units (one row per neuron).
    w_scale : int
        SLAYER's state scale (integers per unit).
    keep_current, keep_voltage : float
        ``1 - decay / 4096`` of each integrator (exact in float64).
    threshold : float or None
        The voltage's reset threshold in integer state units (``threshold * w_scale``); None: no reset.
    reset : {"zero", "subtract"}
        What a spike does to the voltage state.

    Returns
    -------
    tuple of np.ndarray
        (current, voltage), each (N, T) in ``x``'s dtype.

    >>> c, v = cuba_scan(np.full((1, 3), 0.5, np.float32), 64, 0.75, 1.0, None, "zero")
    >>> c.tolist(), v.tolist()
    ([[0.5, 0.875, 1.15625]], [[0.5, 1.375, 2.53125]])
    """
    x = np.ascontiguousarray(x)
    current, voltage = np.empty_like(x), np.empty_like(x)
    th = 0.0 if threshold is None else float(threshold)
    mode = MODES[None if threshold is None else reset]
    _scan(x, x.dtype.type(w_scale), keep_current, keep_voltage, th, float(np.float32(th)), mode, current, voltage)
    return current, voltage
