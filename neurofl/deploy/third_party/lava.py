"""Run a third-party NetX network in Lava fixed point (``Loihi2SimCfg(select_tag='fixed_pt')``, with
neurofl's model fixes: :func:`neurofl.deploy.lava_run.run_config`), all samples back to back.

The file is loaded unchanged by ``lava.lib.dl.netx.hdf5.Network`` with ``reset_interval = T``. An
input layer with its own neuron is driven as NetX intends (``netx.blocks.process.Input``: "the input
must be handled through neuron's bias"): before each sample's ``T`` steps the input neuron's
``bias_mant`` is set to that sample's bias, as lava-dl's own ``test_hdf5.py`` does for one sample.
Without an input neuron, a RingBuffer feeds the spikes to the network's input port.

Alignment (Lava steps start at 1; a neuron's spike reaches the next layer's neuron one step later):
layer ``i`` of NetX's block list (the input neuron is block 0; without one the first weighted block is
``i = 1``) resets at step ``n*T + 1 + i`` and holds sample ``n``'s step ``t`` at step
``n*T + 1 + i + t``, i.e. at index ``n*T + i + t`` of its sink.

A sigma-delta (SDNN) network has no reset (NetX ignores ``reset_interval`` for it), so each sample is
a Lava run of its own, ``T + blocks - 1`` steps from a fresh network, the same windows read back
(``n = 1``); an input delta encoder gets the sample's values on its ``a_in`` every step, as
lava-dl's ``test_pilotnet_sdnn`` feeds it, and the last block's ``sigma`` stands for its voltage.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np

from neurofl.deploy.netx import _mark_sample_boundaries
from neurofl.deploy.third_party.reader import ForeignNet
from neurofl.io.limits import LAVA_READBACK


@dataclass(frozen=True)
class LavaRun:
    """What Lava computed, per block of the reference (:class:`neurofl.deploy.third_party.reference.Reference`):
    spikes (N, n, T) int8 (an SDNN block's graded messages, int64), or None for a layer too large to
    read back (``neurons * steps`` over :data:`neurofl.io.limits.LAVA_READBACK`); the last layer's
    voltage (an SDNN block's ``sigma``) (N, n, T) int64."""

    spikes: tuple[np.ndarray | None, ...]
    voltage: np.ndarray


def _sinks(blocks: list, total: int) -> list:
    """A Sink of ``total`` steps on each block's output that is read back (the last block always;
    others while neurons x steps stay within :data:`LAVA_READBACK`), None for the rest."""
    from lava.proc.io.sink import RingBuffer as Sink

    sinks = []
    for block in blocks:
        if block is blocks[-1] or int(np.prod(block.out.shape)) * total <= LAVA_READBACK:
            sink = Sink(shape=block.out.shape, buffer=total)
            block.out.connect(sink.a_in)
            sinks.append(sink)
        else:
            sinks.append(None)
    return sinks


def _to_flat(a: np.ndarray) -> np.ndarray:
    """Lava (W, H, C, steps) or (n, steps) -> (C*H*W or n, steps), SLAYER's (C, H, W) flat order."""
    if a.ndim == 4:
        a = a.transpose(2, 1, 0, 3)
    return a.reshape(-1, a.shape[-1])


def _samples(a: np.ndarray, n: int, steps: int, offset: int) -> np.ndarray:
    """(neurons, total) -> (n, neurons, steps): sample k's steps at indices ``k*steps + offset + t``."""
    a = a[:, offset : offset + n * steps]
    return a.reshape(a.shape[0], n, steps).transpose(1, 0, 2)


def run_foreign(net: ForeignNet, drive: np.ndarray, steps: int) -> LavaRun:
    """Run ``drive`` (as :func:`neurofl.deploy.third_party.reference.run_reference` takes it) through the file's
    NetX network, ``steps`` steps per sample."""
    from lava.lib.dl.netx.hdf5 import Network
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.monitor.process import Monitor

    from neurofl.deploy.lava_run import run_config

    if net.sdnn:
        runs = [_run_sdnn_sample(net, drive[k : k + 1], steps) for k in range(drive.shape[0])]
        spikes = tuple(
            None if r[0] is None else np.concatenate(r)
            for r in zip(*(run.spikes for run in runs), strict=True)
        )
        return LavaRun(spikes, np.concatenate([run.voltage for run in runs]))
    n = drive.shape[0]
    first = 0 if net.input_neuron else 1  # the sink offset of NetX's first block
    with contextlib.redirect_stdout(io.StringIO()):  # NetX prints weight-fitting notes
        lava = Network(str(net.path), reset_interval=steps, reset_offset=first)
    _mark_sample_boundaries(lava, steps)
    blocks = list(lava.layers)
    total = n * steps + len(net.layers) - 1
    sinks = _sinks(blocks, total)
    monitor = Monitor()
    monitor.probe(blocks[-1].neuron.v, total)
    if net.input_neuron:
        bias = drive.reshape(n, *net.input_shape)
        if bias.ndim == 4:  # (n, C, H, W) -> NetX's (W, H, C)
            bias = bias.transpose(0, 3, 2, 1)
        var = blocks[0].neuron.bias_mant
        var.init = bias[0].astype(np.int32)
    else:
        data = np.zeros((int(np.prod(lava.inp.shape)), total), dtype=np.int32)
        data[:, : n * steps] = drive.transpose(1, 0, 2).reshape(data.shape[0], n * steps)
        if len(lava.inp.shape) == 3:  # flat (C, H, W) -> NetX's (W, H, C)
            w, h, c = lava.inp.shape
            data = data.reshape(c, h, w, total).transpose(2, 1, 0, 3)
        source = Source(data=data.reshape(*lava.inp.shape, total))
        source.s_out.connect(lava.inp)
    cfg = run_config()
    try:
        if net.input_neuron:
            for k in range(n):
                if k:
                    var.set(bias[k].astype(np.int32))
                last = k == n - 1
                lava.run(condition=RunSteps(num_steps=steps + (total - n * steps if last else 0)), run_cfg=cfg)
        else:
            lava.run(condition=RunSteps(num_steps=total), run_cfg=cfg)
        raw = [None if s is None else np.asarray(s.data.get()) for s in sinks]
        probed = monitor.get_data()
        v = np.asarray(probed[blocks[-1].neuron.name]["v"])  # (total, *shape)
    finally:
        lava.stop()
    spikes = tuple(
        None if r is None else _samples(_to_flat(r), n, steps, first + i).astype(np.int8) for i, r in enumerate(raw)
    )
    volt = _samples(_to_flat(np.moveaxis(v, 0, -1)), n, steps, first + len(blocks) - 1).astype(np.int64)
    return LavaRun(spikes, volt)


def _run_sdnn_sample(net: ForeignNet, drive: np.ndarray, steps: int) -> LavaRun:
    """One sample (``drive`` of shape (1, ...)) of an SDNN network in a Lava run of its own."""
    from lava.lib.dl.netx.hdf5 import Network
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.monitor.process import Monitor

    from neurofl.deploy.lava_run import run_config

    first = 0 if net.input_neuron else 1
    with contextlib.redirect_stdout(io.StringIO()):
        lava = Network(str(net.path))
    blocks = list(lava.layers)
    total = steps + len(net.layers) - 1
    sinks = _sinks(blocks, total)
    monitor = Monitor()
    monitor.probe(blocks[-1].neuron.sigma, total)
    if net.input_neuron:  # the sample's values, held for the whole run
        x = drive.reshape(*net.input_shape)
        x = x.transpose(2, 1, 0) if x.ndim == 3 else x  # (C, H, W) -> NetX's (W, H, C)
        source = Source(data=np.repeat(x[..., None].astype(np.int32), total, axis=-1))
        source.s_out.connect(blocks[0].neuron.a_in)
    else:
        data = np.zeros((drive.shape[1], total), dtype=np.int32)
        data[:, :steps] = drive[0]
        if len(lava.inp.shape) == 3:
            w, h, c = lava.inp.shape
            data = data.reshape(c, h, w, total).transpose(2, 1, 0, 3)
        source = Source(data=data.reshape(*lava.inp.shape, total))
        source.s_out.connect(lava.inp)
    try:
        lava.run(condition=RunSteps(num_steps=total), run_cfg=run_config())
        raw = [None if s is None else np.asarray(s.data.get()) for s in sinks]
        sigma = np.asarray(monitor.get_data()[blocks[-1].neuron.name]["sigma"])  # (total, *shape)
    finally:
        lava.stop()
    spikes = tuple(
        None if r is None else _samples(_to_flat(r), 1, steps, first + i).astype(np.int64) for i, r in enumerate(raw)
    )
    volt = _samples(_to_flat(np.moveaxis(sigma, 0, -1)), 1, steps, first + len(blocks) - 1).astype(np.int64)
    return LavaRun(spikes, volt)
