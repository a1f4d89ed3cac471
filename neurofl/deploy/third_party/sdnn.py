"""The reference of a sigma-delta (SDNN) NetX network: Lava's fixed-point ``Delta``, ``SigmaDelta``
and ``Sigma`` process models (lava/proc/sdn/models.py, ``Py*ModelFixed``) and the synapses NetX puts
before them, in numpy int64, op for op, over Lava's whole timeline.

NetX (``Network(spike_exp=6)``) builds every SDNN neuron with ``state_exp = 6`` and graded 16-bit
messages. Per step ``k``, with ``E = spike_exp + state_exp = 12``:

- delta (input layer, fed ``x`` on its ``a_in``): ``a = x << E``; ``delta = a - act + residue``;
  ``s = delta if |delta| >= vth << E else 0``; ``residue = delta - s``; ``act = a``; sends
  ``s >> state_exp`` (an arithmetic shift: a floor);
- sigma-delta: ``sigma += a_in``; ``new = max(sigma + bias << E, 0)`` (ReLU); ``delta = new - act +
  residue``; the same threshold, residue and shift; ``act = new``;
- sigma (``sigma_output``): ``sigma += a_in``; sends ``sigma``.

A layer's ``a_in`` at step ``k`` is its synapse applied to the previous stage's messages of step
``k - 1`` (Lava's synapses send the previous step's sum; nothing at step 0): a conv layer's sum is
clamped to 24 signed bits (``PyConvModelFixed``), a dense layer's is exact (NetX's weight exponent
only rescales the file's integer weights). The delta encoder's own messages leave the same step.

NetX ignores ``reset_interval`` for SDNN and nothing resets these states, so a sample is a run of
its own from zero state. The biases act from step 0, before the input reaches a layer: the
reference models the whole run, not a window of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurofl.deploy.third_party.reader import ForeignNet, Layer, SigmaDeltaNeuron

# NetX's defaults for SDNN (Network(spike_exp=6), get_neuron_params: state_exp 6)
SPIKE_EXP = 6
STATE_EXP = 6
# Lava's fixed-point Conv model clamps its output to 24 signed bits (lava.proc.conv.utils.signed_clamp)
CONV_BITS = 24
# a delta encoder's a_in << 12 must fit its 24-bit signed state
INPUT_RANGE = (-(1 << 11), (1 << 11) - 1)


@dataclass(frozen=True)
class Timeline:
    """A whole run of an SDNN network, per sample, Lava step by Lava step.

    messages : per block (input delta encoder first when there is one), the graded messages it sends
        (N, n, steps) int64, neurons in (C, H, W) flat order
    sigma : the last block's ``sigma`` after each step (N, n, steps) int64
    peaks : per block the largest |state| (sigma, activation, delta) in Lava's integer units
    """

    messages: tuple[np.ndarray, ...]
    sigma: np.ndarray
    peaks: tuple[int, ...]


def _synapse(layer: Layer, m: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Integer synaptic sums (N, out, steps) of ``layer`` for messages ``m`` (N, in, steps)."""
    from neurofl.deploy.third_party.reference import _synapse as float_synapse

    # float64 holds these sums exactly: |m| < 2**24, |w| <= 256, at most 2**20 terms (< 2**53)
    a = np.rint(float_synapse(layer, m, in_shape)).astype(np.int64)
    if layer.kind == "conv":
        lim = 1 << (CONV_BITS - 1)
        a = np.clip(a, -lim, lim - 1)
    return a


def _neuron(a: np.ndarray, neuron: SigmaDeltaNeuron, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Run one layer's neurons on their ``a_in`` (N, n, steps) from a zero state.

    Returns
    -------
    messages (N, n, steps) int64, sigma after each step (N, n, steps) int64, the largest |state|.
    """
    e = SPIKE_EXP + STATE_EXP
    n, size, steps = a.shape
    out = np.zeros(a.shape, dtype=np.int64)
    sigmas = np.zeros(a.shape, dtype=np.int64)
    sigma, act, residue = (np.zeros((n, size), dtype=np.int64) for _ in range(3))
    b = np.zeros(size, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64) << e
    vth = neuron.vth << e
    peak = 0
    for k in range(steps):
        if neuron.kind == "delta":
            new = a[..., k] << e
        else:
            sigma = sigma + a[..., k]
            sigmas[..., k] = sigma
            if neuron.kind == "sigma":
                out[..., k] = sigma
                peak = max(peak, int(np.abs(sigma).max(initial=0)))
                continue
            new = np.maximum(sigma + b, 0)
        delta = new - act + residue
        s = np.where(np.abs(delta) >= vth, delta, 0)
        residue = delta - s
        act = new
        out[..., k] = s >> STATE_EXP
        peak = max(peak, *(int(np.abs(v).max(initial=0)) for v in (sigma, new, delta)))
    return out, sigmas, peak


def simulate(net: ForeignNet, drive: np.ndarray, steps: int) -> Timeline:
    """Run ``net`` for ``steps`` Lava steps per sample, each sample from a zero state.

    drive : with an input (delta) neuron, what its ``a_in`` receives every step (N, *input_shape)
        integers; without one, the spikes the first weighted layer receives (N, n_in, T) 0/1, zero
        after step T.
    """
    from neurofl.deploy.third_party.reference import _bias

    n = drive.shape[0]
    messages, peaks = [], []
    if net.input_neuron:
        x = np.repeat(drive.reshape(n, -1, 1).astype(np.int64), steps, axis=2)
        m, sigma, peak = _neuron(x, net.layers[0].neuron, None)  # type: ignore[arg-type]
        messages.append(m)
        peaks.append(peak)
    else:
        m = np.zeros((n, drive.shape[1], steps), dtype=np.int64)
        m[..., : min(steps, drive.shape[2])] = drive[..., :steps]
    shape = net.layers[0].shape
    for layer in net.layers[1:]:
        a = np.zeros((n, layer.size, steps), dtype=np.int64)
        a[..., 1:] = _synapse(layer, m[..., :-1], shape)  # the synapse's one-step lag
        m, sigma, peak = _neuron(a, layer.neuron, _bias(layer))  # type: ignore[arg-type]
        messages.append(m)
        peaks.append(peak)
        shape = layer.shape
    return Timeline(tuple(messages), sigma, tuple(peaks))
