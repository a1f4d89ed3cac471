"""NIR neuron nodes <-> SLAYER's CUBA LIF neuron: a pure mapping, with what it rounds or refuses.

SLAYER's CUBA neuron (``lava/lib/dl/slayer/neuron/cuba.py``) steps, for input ``x[t]``::

    u[t] = (1 - a_u) u[t-1] + x[t]          a_u = current_decay  (on the 1/4096 grid)
    v[t] = (1 - a_v) v[t-1] + u[t]          a_v = voltage_decay  (on the 1/4096 grid)
    s[t] = v[t] > theta;  v[t] = 0 after a spike       theta on the profile's threshold grid

NIR states its neurons as ODEs. **Assumption:** they are integrated by forward Euler with the step
``dt`` the exporting framework used (NIR files do not record it: snnTorch writes with
``dt = 1e-4``; Norse 1.1.0 writes ``tau = dt * tau_inv`` instead of ``1 / tau_inv``, so its files
read correctly with ``dt`` equal to the square of its step, ``1e-6`` for its default ``1e-3``).
Euler's step of ``tau_syn I' = -I + w_in S`` and ``tau_mem v' = (v_leak - v) + r I`` is the CUBA
step above with

===========  ==============  ==============  ======================================  ===========
NIR node     current_decay   voltage_decay   gain folded into the incoming weights   threshold
===========  ==============  ==============  ======================================  ===========
CubaLIF      dt / tau_syn    dt / tau_mem    (dt w_in / tau_syn) (dt r / tau_mem)    v_threshold
LIF          1 (no memory)   dt / tau        dt r / tau                              v_threshold
IF           1 (no memory)   0 (no leak)     r                                       v_threshold
===========  ==============  ==============  ======================================  ===========

The gain is linear in the input, so it moves exactly into the weights (row by row: ``w_in`` and
``r`` may differ per neuron). What the chip cannot express is refused: ``v_leak != 0``, a time
constant below ``dt`` (a decay above 1: wrong ``dt``?), and per-neuron time constants or
thresholds that differ (a SLAYER block shares one parameter set). What it rounds is reported:
decays to 1/4096, thresholds to the profile's grid. NIR resets by subtracting the threshold, the
chip resets to zero: reported for every layer (snnTorch and Norse import NIR with reset to zero).

:func:`nir_from_cuba` is the inverse (CubaLIF with ``w_in = 1 / a_u``, ``r = 1 / a_v``: unit
gains, snnTorch's convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurofl.errors import UserError

DECAY_STEPS = 4096  # SLAYER's 12-bit decay grid (p_scale = 1 << 12)


@dataclass(frozen=True)
class CubaNeuron:
    """A NIR neuron node as SLAYER CUBA parameters.

    current_decay, voltage_decay : fractions in [0, 1] on the 1/4096 grid
    threshold : in the node's voltage units (before the profile's grid)
    gain : (neurons,) factor each neuron's incoming weights are multiplied by
    notes : what was rounded, one phrase each
    """

    current_decay: float
    voltage_decay: float
    threshold: float
    gain: np.ndarray
    notes: tuple[str, ...]


def _uniform(node: str, params: dict[str, np.ndarray], key: str, neurons: int) -> float:
    v = np.asarray(params[key], dtype=np.float64).reshape(-1)
    if v.size not in (1, neurons):
        raise UserError(f"node {node!r}: {key} has {v.size} values, the layer has {neurons} neurons")
    if v.size and not np.all(v == v[0]):
        raise UserError(
            f"node {node!r}: {key} differs between neurons ({v.min():g} to {v.max():g}); a SLAYER block "
            "shares one neuron parameter set"
        )
    return float(v[0])


def _per_neuron(node: str, params: dict[str, np.ndarray], key: str, neurons: int) -> np.ndarray:
    v = np.asarray(params[key], dtype=np.float64).reshape(-1)
    if v.size not in (1, neurons):
        raise UserError(f"node {node!r}: {key} has {v.size} values, the layer has {neurons} neurons")
    return np.broadcast_to(v, (neurons,)).copy()


def _decay(node: str, key: str, tau: float, dt: float, notes: list[str], what: str) -> float:
    if not tau > 0:
        raise UserError(f"node {node!r}: {key} = {tau:g}: a time constant must be positive")
    exact = dt / tau
    if exact > 1 + 1e-6:
        raise UserError(
            f"node {node!r}: {key} = {tau:g} s is shorter than the step dt = {dt:g} s (decay {exact:g} > 1); "
            "pass the --dt the exporting framework used"
        )
    q = int(round(min(exact, 1.0) * DECAY_STEPS))
    if abs(q / DECAY_STEPS - exact) > 1e-6 * max(exact, 1e-12) and abs(q / DECAY_STEPS - exact) > 1e-9:
        notes.append(f"{what} decay {exact:.6g} -> {q}/{DECAY_STEPS}")
    return q / DECAY_STEPS


def cuba_from_nir(node: str, kind: str, params: dict[str, np.ndarray], neurons: int, dt: float) -> CubaNeuron:
    """Map one NIR neuron node (``CubaLIF``, ``LIF`` or ``IF``) of ``neurons`` neurons to CUBA.

    Parameters
    ----------
    node : the node's name (for messages)
    kind : its NIR type
    params : its parameters (scalars or one value per neuron)
    neurons : the layer's width
    dt : the Euler step in seconds the file's time constants assume

    Raises
    ------
    UserError
        One line naming the node, the key, the value and why the chip cannot express it.
    """
    notes: list[str] = []
    if kind in ("CubaLIF", "LIF"):
        leak = _per_neuron(node, params, "v_leak", neurons)
        if np.any(leak != 0):
            raise UserError(f"node {node!r}: v_leak = {leak[leak != 0][0]:g}; the chip's neurons leak to 0 only")
    threshold = _uniform(node, params, "v_threshold", neurons)
    if not threshold > 0:
        raise UserError(f"node {node!r}: v_threshold = {threshold:g}; the chip needs a positive threshold")
    r = _per_neuron(node, params, "r", neurons)
    if kind == "CubaLIF":
        tau_syn = _uniform(node, params, "tau_syn", neurons)
        tau_mem = _uniform(node, params, "tau_mem", neurons)
        a_u = _decay(node, "tau_syn", tau_syn, dt, notes, "current")
        a_v = _decay(node, "tau_mem", tau_mem, dt, notes, "voltage")
        w_in = _per_neuron(node, params, "w_in", neurons) if "w_in" in params else np.ones(neurons)
        gain = (dt * w_in / tau_syn) * (dt * r / tau_mem)
    elif kind == "LIF":
        tau = _uniform(node, params, "tau", neurons)
        a_u = 1.0
        a_v = _decay(node, "tau", tau, dt, notes, "voltage")
        gain = dt * r / tau
    elif kind == "IF":
        a_u, a_v, gain = 1.0, 0.0, r
    else:
        raise UserError(f"node {node!r}: {kind} is not a spiking neuron neurofl maps (CubaLIF, LIF, IF)")
    if not np.all(np.isfinite(gain)) or np.any(gain == 0):
        raise UserError(f"node {node!r}: the input gain (w_in, r over the time constants) is zero or not finite")
    return CubaNeuron(a_u, a_v, threshold, gain, tuple(notes))


def nir_from_cuba(current_decay: float, voltage_decay: float, threshold: float, neurons: int, dt: float) -> dict:
    """CubaLIF parameters (one value per neuron) for SLAYER CUBA neurons stepped every ``dt`` seconds.

    ``tau = dt / decay``; ``w_in = tau_syn / dt`` and ``r = tau_mem / dt`` make both Euler gains 1.

    Raises
    ------
    UserError
        A decay of 0 (no leak), which has no finite NIR time constant.
    """
    for key, a in (("current_decay", current_decay), ("voltage_decay", voltage_decay)):
        if not 0 < a <= 1:
            raise UserError(f"neuron {key} = {a:g}: NIR time constants need a decay in (0, 1]")
    ones = np.ones(neurons, dtype=np.float64)
    tau_syn, tau_mem = dt / current_decay, dt / voltage_decay
    return {
        "tau_syn": ones * tau_syn,
        "tau_mem": ones * tau_mem,
        "r": ones * (tau_mem / dt),
        "v_leak": ones * 0.0,
        "v_threshold": ones * threshold,
        "w_in": ones * (tau_syn / dt),
    }
