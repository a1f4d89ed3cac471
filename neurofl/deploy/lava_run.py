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


def run_config() -> object:
    """``Loihi2SimCfg(select_tag='fixed_pt')`` with Lava's Conv model replaced by one that honours
    the Conv process's ``weight_exp`` (needed for graded input into a first conv layer)."""
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.process import Conv

    return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={Conv: _weight_exp_conv_model()})


def to_payload(inputs: np.ndarray, nf: NetxFile) -> np.ndarray:
    """Encoded inputs (N, in, T) in SLAYER units -> integer spike payloads Lava receives.

    Binary spikes pass unchanged; graded values are scaled by ``2**input_frac_bits`` and must then be
    integers (digits' 17 grey levels are), else the input is not representable on the chip.
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
