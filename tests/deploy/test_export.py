"""NetX export: NetX loads the file unchanged with the model's exact integers; misfits are refused."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from neurofl.deploy.export import check_fits, export_netx
from neurofl.errors import UserError
from neurofl.models import build_model
from neurofl.profiles import load_profile
from neurofl_testing.reports import edited_loihi2


def _mantissas(model):
    return [
        model.profile.quantize_weight(b.synapse.weight, descale=True)
        .detach()
        .reshape(b.synapse.weight.shape[:2])
        .numpy()
        for b in model.blocks
    ]


def test_netx_network_loads_the_exact_integers(net_loihi2, trained_loihi2):
    from lava.lib.dl.netx.hdf5 import Network

    net = Network(str(net_loihi2))
    try:
        assert len(net.layers) == len(trained_loihi2.model.blocks)
        model = trained_loihi2.model
        for layer, mant, block in zip(net.layers, _mantissas(model), model.blocks, strict=True):
            w = np.asarray(layer.synapse.weights.init, dtype=np.int64)
            exp = int(layer.synapse.proc_params["weight_exp"])
            assert np.array_equal(w * 2.0**exp, mant)
            assert int(layer.neuron.vth.init) == block.neuron.v_th_mant
            assert int(layer.neuron.du.init) + 1 == block.neuron.cx_current_decay  # Loihi's +1 offset
            assert int(layer.neuron.dv.init) == block.neuron.cx_voltage_decay
    finally:
        del net
    with h5py.File(net_loihi2) as f:
        assert [f["layer"][str(i)]["type"][0] for i in range(3)] == [b"input", b"dense", b"dense"]
        assert tuple(f["layer/0/shape"][()]) == (1, 8, 8)



def test_refusals_name_the_problem_and_write_nothing(tmp_path, digits_splits, digits_arch, trained_loihi2):
    x = torch.from_numpy(digits_splits.clients.x[:64])
    out = tmp_path / "m.net"
    cases = [
        (build_model("snn", digits_arch, load_profile("float32"), seed=0), x, "not 8-bit quantized"),
        (trained_loihi2.model, x * 4000, "24-bit range"),
        (
            build_model("snn", digits_arch, edited_loihi2(tmp_path, neurons_per_core=4, cores=4), seed=0),
            x,
            "needs 11 cores, the chip has 4",
        ),
        (
            build_model("snn", digits_arch, edited_loihi2(tmp_path, input_axons_per_core=16), seed=0),
            x,
            "fan-in 64 exceeds 16 input axons",
        ),
    ]
    for model, calib, msg in cases:
        with pytest.raises(UserError, match=msg):
            export_netx(model, out, calib, {})
        assert not out.exists() and list(tmp_path.glob("*.net*")) == []


def test_first_layer_current_range_matches_an_integer_recurrence(trained_loihi2, digits_splits):
    """Independent reference: Loihi's current update u <- trunc(u * (4096 - du) / 4096) + floor(W x) << 6,
    in exact integers, for the constant graded input of direct encoding."""
    from neurofl.deploy.trace import state_ranges

    model = trained_loihi2.model
    x = digits_splits.clients.x[:64].reshape(64, -1).astype(np.float64)
    w = _mantissas(model)[0].astype(np.float64)
    # the chip floors the graded input current to whole weight units, then shifts it left by 6 bits
    drive = 64 * np.floor(x @ w.T).astype(np.int64)  # exact: x on the 1/16 grid, w even integers
    keep = 4096 - int(model.blocks[0].neuron.cx_current_decay)
    u = np.zeros_like(drive)
    peak = 0
    for _ in range(model.time_steps):
        prod = u * keep
        u = np.sign(prod) * (np.abs(prod) >> 12) + drive
        peak = max(peak, int(np.abs(u).max()))
    assert state_ranges(model, torch.from_numpy(digits_splits.clients.x[:64]))[0][0] == peak
    fit = check_fits(model, torch.from_numpy(digits_splits.clients.x[:64]))
    assert fit.max_abs_current >= peak and fit.max_abs_voltage < fit.state_limit
