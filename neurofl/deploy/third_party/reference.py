"""The reference of a third-party NetX network (:class:`neurofl.deploy.third_party.reader.ForeignNet`), built
from the file alone: SLAYER's CUBA integer arithmetic (:func:`neurofl.models.cuba.integrate`, held
equal to SLAYER's own neuron by ``tests/models/test_cuba.py``) on the file's integer mantissas.

Units are Lava's: a synaptic input ``a`` (weight mantissa x spikes) enters the current as ``a << 6``,
a bias mantissa ``b`` enters the voltage as ``b << 6`` every step, the neuron fires when the voltage
exceeds ``vThMant << 6`` and resets it to 0 (lava/proc/lif/models.py, ``PyLifResetModelBitAcc``).
SLAYER's integrator with state scale 64 computes exactly these integers: its drive ``trunc(64 x)``
is ``a << 6`` for integer ``a``, and its decay ``trunc(s * (4096 - d) / 4096)`` is Lava's
sign-magnitude right shift.

Time: every layer sees the previous layer's spikes of the same sample step (the one-step lag per
layer in Lava is an offset of the whole layer, see :mod:`neurofl.deploy.third_party.lava`).

A sigma-delta network's reference is :func:`neurofl.deploy.third_party.sdnn.simulate`: its states never
reset and its biases act before the input arrives, so it runs Lava's whole timeline of each sample
(``steps + blocks - 1`` steps) and each layer is then read over the same window of ``steps`` steps
as a CUBA layer's; its messages are graded integers, its "voltage" the last layer's ``sigma``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurofl.deploy.third_party.reader import INTEGRATOR, ForeignNet, Layer, SigmaDeltaNeuron
from neurofl.models.cuba import integrate

# Lava's alignment of synaptic input, bias (NetX's bias_exp = 6) and threshold: 6 bits
SHIFT = 64
# Lava's LIF keeps u and v in 24-bit signed registers (wrapping u, clipping v): beyond them the
# reference, which has no such limit, no longer describes the chip
STATE_LIMIT = 1 << 23


@dataclass(frozen=True)
class Reference:
    """Per layer (input layer first when it has a neuron), spikes (N, n, T) int8 in (C, H, W) flat
    order (an SDNN layer's graded messages, int64); the last layer's voltage after each step (after
    a spike's reset; an SDNN layer's ``sigma``) (N, n, T) int64; per layer the largest |current| or
    |voltage| (SDNN: sigma, activation, delta) reached, in Lava's integer units."""

    spikes: tuple[np.ndarray, ...]
    voltage: np.ndarray
    peak_states: tuple[int, ...]


def _synapse(layer: Layer, s: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Synaptic input (N, out, T) of ``layer`` for spikes ``s`` (N, in, T), weight-mantissa units."""
    n, _, steps = s.shape
    assert layer.weight is not None  # a conv or dense layer (the input layer has no synapse)
    if layer.kind == "conv":
        x = torch.from_numpy(s.astype(np.float64)).reshape(n, *in_shape, steps).permute(0, 4, 1, 2, 3)
        x = x.reshape(n * steps, *in_shape)
        w_conv = torch.from_numpy(layer.weight)
        with torch.no_grad():
            z = torch.nn.functional.conv2d(x, w_conv, stride=layer.stride, padding=layer.padding)
        return z.reshape(n, steps, -1).permute(0, 2, 1).numpy()
    w = layer.weight
    if layer.delay is None:
        return np.einsum("oi,nit->not", w, s.astype(np.float64))
    out = np.zeros((n, w.shape[0], steps))
    for d in np.unique(layer.delay).tolist():  # a spike crossing a synapse of delay d arrives d steps later
        if d < steps:
            part = np.einsum("oi,nit->not", np.where(layer.delay == d, w, 0.0), s[..., : steps - d].astype(np.float64))
            out[..., d:] += part
    return out


def _bias(layer: Layer) -> np.ndarray | None:
    """(neurons,) bias mantissas in (C, H, W) flat order, or None."""
    if layer.bias is None:
        return None
    if layer.kind == "conv":  # one per channel
        return np.repeat(layer.bias, layer.size // layer.shape[0])
    return layer.bias


def lif(a: np.ndarray, layer: Layer, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Lava's CUBA LIF of ``layer`` on synaptic input ``a`` (N, n, T) and bias mantissas ``bias``
    ((n,) or (N, n), or None), from a zero state.

    Returns
    -------
    spikes (N, n, T) int8, voltage after each step (0 where it fired) (N, n, T) int64, and the largest
    |current| or |voltage| reached (Lava integer units).
    """
    p = layer.neuron
    assert not isinstance(p, SigmaDeltaNeuron)  # SDNN layers run in neurofl.deploy.third_party.sdnn
    i_decay, v_decay, vth = (p.i_decay, p.v_decay, p.vth) if p else (INTEGRATOR["iDecay"], INTEGRATOR["vDecay"], None)
    current = integrate(torch.from_numpy(a.astype(np.float64)), i_decay, SHIFT)  # Lava's u / 64
    drive = current if bias is None else current + torch.from_numpy(np.asarray(bias, dtype=np.float64))[..., None]
    # fire when v > vth << 6, i.e. v >= (vth << 6) + 1; NetX's integrator (no neuron) never fires
    threshold = None if vth is None else (vth * SHIFT + 1) / SHIFT
    v = (integrate(drive, v_decay, SHIFT, threshold) * SHIFT).numpy().round().astype(np.int64)
    spikes = v >= vth * SHIFT + 1 if vth is not None else np.zeros(v.shape, dtype=bool)
    peak = max(int(np.abs(current.numpy()).max(initial=0) * SHIFT), int(np.abs(v).max(initial=0)))
    return spikes.astype(np.int8), np.where(spikes, 0, v), peak


def run_reference(net: ForeignNet, drive: np.ndarray, steps: int) -> Reference:
    """Run ``net`` for ``steps`` steps per sample.

    drive : with an input neuron, its bias mantissas (N, *input_shape), constant over each sample;
        without one, the input spikes (N, n_in, steps) 0/1.
    """
    if net.sdnn:
        return _run_sdnn(net, drive, steps)
    n = drive.shape[0]
    spikes, peaks = [], []
    if net.input_neuron:
        bias = drive.reshape(n, -1)
        s, v, peak = lif(np.zeros((n, bias.shape[1], steps)), net.layers[0], bias)
        spikes.append(s)
        peaks.append(peak)
    else:
        s = drive.astype(np.int8)
    shape = net.layers[0].shape
    for layer in net.layers[1:]:
        s, v, peak = lif(_synapse(layer, s, shape), layer, _bias(layer))
        spikes.append(s)
        peaks.append(peak)
        shape = layer.shape
    return Reference(tuple(spikes), v, tuple(peaks))


def _run_sdnn(net: ForeignNet, drive: np.ndarray, steps: int) -> Reference:
    """Each sample's whole Lava run; block ``i`` (offset ``first + i``) read over its window of ``steps``."""
    from neurofl.deploy.third_party.sdnn import simulate

    first = 0 if net.input_neuron else 1
    blocks = len(net.layers) - 1 + int(net.input_neuron)
    run = simulate(net, drive, first + blocks - 1 + steps)
    spikes = tuple(m[..., first + i : first + i + steps] for i, m in enumerate(run.messages))
    last = first + blocks - 1
    return Reference(spikes, run.sigma[..., last : last + steps], run.peaks)
