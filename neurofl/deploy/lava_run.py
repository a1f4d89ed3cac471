"""Run a NetX network on Lava's CPU simulator in fixed point (``Loihi2SimCfg(select_tag='fixed_pt')``).

All samples run back to back in one Lava run (starting Lava costs seconds): each layer's neurons
reset every ``T`` steps (NetX's ``reset_interval``, phase-shifted per layer), and the output is cut
back into samples. Alignment: the input RingBuffer and each Dense synapse delay by one step, which
is exactly what SLAYER's ``delay_shift`` mirrors, so Lava's output at step ``n*T + t`` is sample
``n``'s SLAYER output bin ``t`` for ``t >= layers`` (earlier bins are structurally empty in SLAYER,
whose shifted output drops them; in the back-to-back run they hold the previous sample's tail).
"""

from __future__ import annotations

import numpy as np

from neurofl.deploy.bias_delay import SAMPLE_START_KEY, SAMPLE_STEPS_KEY
from neurofl.deploy.netx import NetxFile, build_network
from neurofl.errors import UserError


def _weight_exp_conv_model() -> type:
    from lava.proc.conv.models import PyConvModelFixed

    class WeightExpConvModel(PyConvModelFixed):
        """Lava's fixed-point Conv model, plus the shared weight exponent its ``Conv`` process
        documents (``weight * 2**weight_exp``) and its fixed-point model ignores (lava-nc 0.x):
        ``a_out = conv(s_in, weight) << weight_exp`` (an arithmetic right shift, i.e. a floor, for a
        negative exponent), as Lava's Dense model does. With ``weight_exp = 0`` (every conv layer
        NetX builds) it is Lava's model unchanged."""

        def clamp_precision(self, x: np.ndarray) -> np.ndarray:
            e = int(np.asarray(self.weight_exp).reshape(-1)[0])
            x = np.left_shift(x, e) if e >= 0 else np.right_shift(x, -e)
            return super().clamp_precision(x)

    return WeightExpConvModel


def _sample_delay_dense_model() -> type:
    from lava.proc.dense.models import PyDelayDenseModelBitAcc

    class SampleDelayDenseModel(PyDelayDenseModelBitAcc):
        """Lava's bit-accurate DelayDense model, plus a clear of its in-flight spikes (``a_buff``) at
        the step a new sample's first spikes reach it: NetX's ``reset_interval`` resets the neurons but
        not the synapse, so without it a delayed spike of sample n-1 would land in sample n. What it
        clears would otherwise arrive at or after that step; what it sends that step reaches the
        neurons the step before their own reset. Without the two proc_params keys (or on a single
        sample's first boundary, where ``a_buff`` is empty) it is Lava's model unchanged."""

        def run_spk(self) -> None:
            steps = self.proc_params.get(SAMPLE_STEPS_KEY)
            if steps and self.time_step % steps == self.proc_params[SAMPLE_START_KEY] % steps:
                self.a_buff[:] = 0
            super().run_spk()

    return SampleDelayDenseModel


def run_config() -> object:
    """``Loihi2SimCfg(select_tag='fixed_pt')`` with Lava's Conv model replaced by one that honours
    the Conv process's ``weight_exp`` (needed for graded input into a first conv layer), and its
    DelayDense model by one that drops in-flight spikes at each sample boundary (samples run back to
    back stay independent)."""
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import DelayDense

    models = {Conv: _weight_exp_conv_model(), DelayDense: _sample_delay_dense_model()}
    return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)


def to_payload(inputs: np.ndarray, nf: NetxFile) -> np.ndarray:
    """Encoded inputs (N, in, T) in SLAYER units -> integer spike payloads Lava receives.

    Binary spikes pass unchanged; graded values are scaled by ``2**input_frac_bits`` and must then be
    integers, else the input is not representable on the chip (a loihi2 SNN's own encoding puts them
    on that grid: :func:`neurofl.models.snn.on_payload_grid`).
    """
    scaled = np.asarray(inputs, dtype=np.float64) * (1 << nf.input_frac_bits)
    payload = np.round(scaled)
    if np.any(np.abs(scaled - payload) > 1e-6):
        raise UserError(
            f"{nf.path}: input values are not on the 1/{1 << nf.input_frac_bits} grid of graded spike payloads"
        )
    if not nf.graded_input and not np.all((payload == 0) | (payload == 1)):
        raise UserError(f"{nf.path}: binary-spike network needs 0/1 inputs")
    return payload.astype(np.int32)


def run_lava(nf: NetxFile, inputs: np.ndarray) -> np.ndarray:
    """Run ``inputs`` (N, in, T) through the network in Lava fixed point.

    Returns
    -------
    (N, out, T) int8 output spikes, aligned with SLAYER's output bins (bins ``t < layers`` are zero).
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    if inputs.ndim != 3 or inputs.shape[1] != nf.widths[0]:
        raise UserError(f"{nf.path}: network expects inputs of width {nf.widths[0]}, got shape {inputs.shape[1:2]}")
    n, _, steps = inputs.shape
    layers = len(nf.widths) - 1
    payload = to_payload(inputs, nf)
    total = n * steps + layers + 1
    net = build_network(nf, reset_interval=steps)
    shape = tuple(net.inp.shape)  # (inputs,) for a dense first layer; (W, H, C) for a conv one
    data = np.zeros((*shape, total), dtype=np.int32)
    if len(shape) == 3:  # SLAYER's flat (C, H, W) order -> NetX's (W, H, C)
        w, h, c = shape
        payload = payload.reshape(n, c, h, w, steps).transpose(0, 4, 3, 2, 1)  # (n, T, W, H, C)
        data[..., : n * steps] = payload.reshape(n * steps, w, h, c).transpose(1, 2, 3, 0)
    else:
        data[:, : n * steps] = payload.transpose(1, 0, 2).reshape(nf.widths[0], n * steps)
    source = Source(data=data)
    sink = Sink(shape=net.out.shape, buffer=total)
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=total), run_cfg=run_config())
        out = np.asarray(sink.data.get())
    finally:
        net.stop()
    out = out[:, : n * steps].reshape(nf.widths[-1], n, steps).transpose(1, 0, 2).astype(np.int8)
    out[..., :layers] = 0
    return out
