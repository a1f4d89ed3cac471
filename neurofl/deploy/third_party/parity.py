"""Parity of a third-party NetX file: the reference built from the file (:mod:`neurofl.deploy.third_party.reference`)
against Lava fixed point (:mod:`neurofl.deploy.third_party.lava`), layer by layer, on inputs of the
file's input shape.

Inputs ``x`` (N, *input_shape): ``random`` draws them uniformly in [-1, 1) (a normalized image's
range) from ``seed``; a dataset gives its first test samples, flattened and reshaped to the file's
input shape (same element count). An input neuron gets the bias ``round(weight * x + bias)`` of the
file's input transform (a sigma-delta input encoder gets the same integers on its ``a_in``); without
one, ``x`` (clipped to [0, 1]) is a seeded rate code.

A sigma-delta layer's "spikes" are its graded messages: bins compare the integers, spike counts
count the non-zero messages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from neurofl.deploy.bias_delay import BIAS_RANGE
from neurofl.deploy.third_party.reader import ForeignNet
from neurofl.deploy.third_party.sdnn import INPUT_RANGE as SDNN_INPUT_RANGE
from neurofl.errors import UserError


@dataclass(frozen=True)
class LayerParity:
    """One layer's spikes (SDNN: graded messages), reference vs Lava, over all (sample, neuron, step) bins.

    layer : the file's ``/layer/<layer>``; kind : input, conv or dense; compared : False when the
    layer was too large to read back from Lava (``neurofl.io.limits.LAVA_READBACK``), then the counts
    are the reference's only and ``agreement`` is None
    """

    layer: int
    kind: str
    neurons: int
    compared: bool
    bins: int
    mismatched_bins: int | None
    reference_spikes: int
    lava_spikes: int | None
    agreement: float | None
    peak_state: int


@dataclass(frozen=True)
class ForeignReport:
    """Agreement between Lava fixed point and the file's reference (shares in [0, 1]).

    output_spike_agreement : the last layer's bins; output_voltage_agreement : the last layer's
    voltage (Lava's integer ``v`` after each step; an SDNN layer's ``sigma``) equal bin for bin, the
    read-out of a non-spiking layer; classification_agreement : same argmax of output spike counts,
    or of the last step's voltage for NetX's non-spiking integrator or an SDNN network (None for one
    output neuron);
    states_within_24_bits : every current and voltage fits Lava's registers
    """

    samples: int
    time_steps: int
    input: str
    layers: tuple[LayerParity, ...]
    output_spike_agreement: float
    output_voltage_agreement: float
    output_voltage_max_abs_diff: int
    classification_agreement: float | None
    states_within_24_bits: bool
    reference_seconds: float
    lava_seconds: float


def foreign_inputs(net: ForeignNet, x: np.ndarray, steps: int, seed: int) -> np.ndarray:
    """What drives the network for inputs ``x`` (N, ...) of the file's input size: the input
    neuron's bias mantissas (N, *input_shape), or rate-coded spikes (N, n_in, steps).

    Raises
    ------
    UserError
        ``x`` has another element count than the input layer, or a bias outside Lava's 13-bit range.
    """
    shape = net.input_shape
    if int(np.prod(x.shape[1:])) != int(np.prod(shape)):
        raise UserError(
            f"{net.path}: inputs of shape {tuple(x.shape[1:])} do not fit the input layer's shape {list(shape)}"
        )
    x = np.asarray(x, dtype=np.float64).reshape(x.shape[0], *shape)
    if net.input_transform is None:
        rng = np.random.default_rng(seed)
        p = np.clip(x.reshape(x.shape[0], -1), 0.0, 1.0)[..., None]
        return (rng.random((*p.shape[:2], steps)) < p).astype(np.int8)
    w, b = net.input_transform
    bias = np.round(w * x + b).astype(np.int64)
    lo, hi = SDNN_INPUT_RANGE if net.sdnn else BIAS_RANGE
    if bias.size and (bias.min() < lo or bias.max() > hi):
        what = "the delta encoder's input range (x << 12 in 24 bits)" if net.sdnn else "Lava's 13-bit bias_mant range"
        raise UserError(
            f"{net.path}: /layer/0: input bias weight * x + bias in [{bias.min()}, {bias.max()}] leaves "
            f"{what} [{lo}, {hi}]"
        )
    return bias


def random_inputs(net: ForeignNet, samples: int, seed: int) -> np.ndarray:
    """``samples`` inputs uniform in [-1, 1), shape (samples, *input_shape)."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (samples, *net.input_shape))


def verify_foreign(net: ForeignNet, x: np.ndarray, steps: int, seed: int, label: str) -> ForeignReport:
    """Run inputs ``x`` through the reference and Lava, ``steps`` steps each, and compare."""
    from neurofl.deploy.third_party.lava import run_foreign
    from neurofl.deploy.third_party.reference import STATE_LIMIT, run_reference

    drive = foreign_inputs(net, x, steps, seed)
    t0 = time.perf_counter()
    ref = run_reference(net, drive, steps)
    t1 = time.perf_counter()
    lava = run_foreign(net, drive, steps)
    t2 = time.perf_counter()
    blocks = net.layers if net.input_neuron else net.layers[1:]
    rows = []
    for layer, r, got, peak in zip(blocks, ref.spikes, lava.spikes, ref.peak_states, strict=True):
        bad = None if got is None else int((r != got).sum())
        rows.append(
            LayerParity(
                layer=layer.index,
                kind=layer.kind,
                neurons=layer.size,
                compared=got is not None,
                bins=int(r.size),
                mismatched_bins=bad,
                reference_spikes=int(np.count_nonzero(r)),
                lava_spikes=None if got is None else int(np.count_nonzero(got)),
                agreement=None if bad is None else 1.0 - bad / max(1, r.size),
                peak_state=peak,
            )
        )
    out_ref, out_lava = ref.spikes[-1], lava.spikes[-1]
    assert out_lava is not None  # the last block is always read back
    classes = None
    if out_ref.shape[1] > 1:  # a spiking read-out's class is its spike count's argmax, an integrator's its voltage's
        spiking = net.layers[-1].neuron is not None and not net.sdnn
        a, b = (out_ref.sum(-1), out_lava.sum(-1)) if spiking else (ref.voltage[..., -1], lava.voltage[..., -1])
        classes = float((a.argmax(-1) == b.argmax(-1)).mean())
    return ForeignReport(
        samples=int(x.shape[0]),
        time_steps=steps,
        input=label,
        layers=tuple(rows),
        output_spike_agreement=float((out_ref == out_lava).mean()),
        output_voltage_agreement=float((ref.voltage == lava.voltage).mean()),
        output_voltage_max_abs_diff=int(np.abs(ref.voltage - lava.voltage).max(initial=0)),
        classification_agreement=classes,
        states_within_24_bits=max(ref.peak_states) < STATE_LIMIT,
        reference_seconds=t1 - t0,
        lava_seconds=t2 - t1,
    )
