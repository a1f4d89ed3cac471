"""`neurofl verify` on lava-dl's own NetX test networks: each verifies against a reference built from
the file (layer by layer, bit for bit) or is refused with its true reason in one line; the reference
itself equals lava-dl's ground-truth arrays in ``gts/`` (an independent check)."""

from __future__ import annotations

import json
from pathlib import Path

import lava.lib.dl.netx as netx_pkg
import numpy as np
import pytest

from neurofl.cli import run

SITE = Path(netx_pkg.__file__).resolve().parents[4]
NETX_TESTS = SITE / "tests" / "lava" / "lib" / "dl" / "netx"
GTS = NETX_TESTS / "gts"
REFUSED = {
    "gts/ntidigits/ntidigits.net": "/layer/5: layer type 'average' is not implemented by NetX",
}
# file -> (layer kinds, steps per sample); pilotnet_lif's first three layers are too large to read back
SDNN_CONV = "conv+bias(sigma-delta) " * 4
SDNN_DENSE = "dense+bias(sigma-delta) " * 3
VERIFIED = {
    "tiny.net": ("input(LIF) conv+bias conv+bias", 12),
    "mnist.net": ("input(LIF) dense dense dense(integrator)", 12),
    "gts/pilotnet_lif/network.net": (
        "input(LIF) conv+bias conv+bias conv+bias conv+bias conv+bias flatten dense+bias dense+bias dense+bias "
        "dense+bias",
        6,
    ),
    "gts/pilotnet_sdnn/network.net": ("input(delta) " + SDNN_CONV + "flatten " + SDNN_DENSE + "dense(sigma)", 6),
    "gts/pilotnet_sdnn/square_network.net": ("input(delta) " + SDNN_CONV.strip(), 6),
}


def _shipped(name: str) -> Path:
    path = NETX_TESTS / name
    if not path.is_file():
        pytest.skip(f"{name} is not in the installed lava-dl wheel ({NETX_TESTS})")
    return path


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_lava_dl_network_is_refused_with_its_true_reason(name, capsys):
    path = _shipped(name)
    code = run(["verify", str(path), "--samples", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and REFUSED[name] in err, err


def test_ntidigits_average_layer_really_is_unbuilt_by_netx():
    """The refusal's reason is NetX's own: building the whole network raises NotImplementedError."""
    from lava.lib.dl.netx.hdf5 import Network

    with pytest.raises(NotImplementedError):
        Network(str(_shipped("gts/ntidigits/ntidigits.net")))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(VERIFIED))
def test_lava_dl_network_verifies_bit_for_bit(name, capsys):
    path = _shipped(name)
    kinds, steps = VERIFIED[name]
    code = run(["verify", str(path), "--samples", "2", "--steps", str(steps), "--seed", "3", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["third_party"] and result["layers"] == kinds
    rep = result["parity"]
    assert rep["samples"] == 2 and rep["time_steps"] == steps
    compared = [r for r in rep["layers"] if r["compared"]]
    assert compared and compared[-1] == rep["layers"][-1]  # the output layer is always read back
    for r in compared:
        assert r["agreement"] == 1.0 and r["mismatched_bins"] == 0 and r["lava_spikes"] == r["reference_spikes"]
        assert r["bins"] == 2 * r["neurons"] * steps
    assert sum(r["reference_spikes"] for r in compared) > 0  # agreement on silence would prove little
    assert rep["output_voltage_agreement"] == 1.0 and rep["output_voltage_max_abs_diff"] == 0
    assert rep["states_within_24_bits"]


def _reference(name: str, bias_whc: np.ndarray, steps: int):
    from neurofl.deploy.third_party.reader import read_foreign
    from neurofl.deploy.third_party.reference import run_reference

    net = read_foreign(_shipped(name))
    return run_reference(net, np.rint(bias_whc).astype(np.int64).transpose(2, 1, 0)[None], steps)


def test_reference_equals_lava_dl_tinynet_ground_truth():
    """lava-dl's test_tinynet: SLAYER's spikes of tiny.net for one input bias (gts/tinynet), which
    SLAYER's output shifts one step later (lava-dl compares Lava's bins 2.. with its bins 1..)."""
    _shipped("tiny.net")
    ref = _reference("tiny.net", np.load(GTS / "tinynet" / "input_bias.npy"), 16)
    for got, gt_file in ((ref.spikes[1], "layer1.npy"), (ref.spikes[2], "output.npy")):
        gt = np.load(GTS / "tinynet" / gt_file).reshape(1, got.shape[1], 16)
        assert gt.sum() > 50
        np.testing.assert_array_equal(got[..., :15], gt[..., 1:])


def test_reference_equals_lava_dl_pilotnet_lif_ground_truth():
    """gts/pilotnet_lif: every layer's spikes for one image bias, layer i from step i on (Lava's
    one step per layer), over the sample's 16 steps before the network's reset."""
    _shipped("gts/pilotnet_lif/network.net")
    ref = _reference("gts/pilotnet_lif/network.net", np.load(GTS / "pilotnet_lif" / "image.npy"), 16)
    names = ["input", "conv-0", "conv-1", "conv-2", "conv-3", "conv-4", "fc-0", "fc-1", "fc-2"]
    for i, name in enumerate(names):
        gt = np.load(GTS / "pilotnet_lif" / f"{name}.npy")
        gt = (gt.transpose(2, 1, 0, 3) if gt.ndim == 4 else gt).reshape(1, -1, gt.shape[-1]).astype(np.int8)
        assert gt[..., i : i + 16].sum() > 0
        np.testing.assert_array_equal(ref.spikes[i], gt[..., i : i + 16], err_msg=name)


def _sdnn_gts(name: str) -> np.ndarray:
    """A gts/pilotnet_sdnn array of NetX's (W, H, C, steps) layout as (1, C*H*W, steps) int64."""
    gt = np.load(GTS / "pilotnet_sdnn" / f"{name}.npy")
    return gt.transpose(2, 1, 0, 3).reshape(1, -1, gt.shape[-1]).astype(np.int64)


def test_sdnn_reference_equals_lava_dl_pilotnet_sdnn_output():
    """lava-dl's test_pilotnet_sdnn: gts/pilotnet_sdnn/input.npy held on the delta encoder's a_in,
    the sigma read-out's messages over Lava's first 9 steps (gts/output.npy), bias-driven ones
    before the input arrives included."""
    from neurofl.deploy.third_party.reader import read_foreign
    from neurofl.deploy.third_party.sdnn import simulate

    net = read_foreign(_shipped("gts/pilotnet_sdnn/network.net"))
    x = _sdnn_gts("input")[..., 0].reshape(1, *net.input_shape)
    run = simulate(net, x, 9)
    gt = np.load(GTS / "pilotnet_sdnn" / "output.npy").astype(np.int64)
    assert np.count_nonzero(gt) == 8
    np.testing.assert_array_equal(run.messages[-1][0], gt)
    np.testing.assert_array_equal(run.sigma[0], gt)  # a sigma layer sends its sum


@pytest.mark.parametrize(("depth", "name"), [(2, "sigma1"), (3, "sigma2")])
def test_sdnn_reference_equals_lava_dl_pilotnet_sdnn_sigma(depth, name):
    """lava-dl's Loihi test (test_hdf5_nx): the input encoder's messages gts/act0.npy (the image
    x 64 at step 0) fed to conv layer 1 (skip_layers=1); conv layer 1's and 2's sigma over all 20
    steps (gts/sigma1.npy, sigma2.npy), the latter through layer 1's sigma-delta messages."""
    import dataclasses

    from neurofl.deploy.third_party.reader import read_foreign
    from neurofl.deploy.third_party.sdnn import simulate

    net = read_foreign(_shipped("gts/pilotnet_sdnn/network.net"))
    inp = dataclasses.replace(net.layers[0], neuron=None)
    sub = dataclasses.replace(net, layers=(inp, *net.layers[1:depth]), input_transform=None)
    gt = _sdnn_gts(name)
    run = simulate(sub, _sdnn_gts("act0"), gt.shape[-1])
    assert np.count_nonzero(gt) > gt.size // 4
    np.testing.assert_array_equal(run.sigma, gt)


def test_sdnn_delta_encoder_equals_lava_dl_tinynet_sdnn_input():
    """lava-dl's test_blocks.test_input: a delta encoder of vth 20 on input_bias x sin (15 steps),
    where the threshold leaves residues (gts/tinynet_sdnn/input.npy)."""
    from neurofl.deploy.third_party.reader import SigmaDeltaNeuron
    from neurofl.deploy.third_party.sdnn import _neuron

    _shipped("tiny.net")
    x = np.load(GTS / "tinynet_sdnn" / "input_bias.npy")[..., None] * np.sin(2 * np.pi * np.arange(15) / 15)
    messages, _, _ = _neuron(x.astype(int).reshape(1, -1, 15), SigmaDeltaNeuron("delta", 20), None)
    gt = np.load(GTS / "tinynet_sdnn" / "input.npy").reshape(1, -1, 15)
    assert np.count_nonzero(gt) > 1000 and np.count_nonzero(gt) < gt.size  # the threshold holds some back
    np.testing.assert_array_equal(messages, gt)


def test_dense_layer_without_neuron_is_valid_netx(tmp_path):
    """mnist.net's read-out has no neuron group (NetX: a non-spiking integrator): not a malformed file."""
    import h5py

    from neurofl.deploy.netx import _dense_layer

    with h5py.File(tmp_path / "d.h5", "w") as f:
        g = f.create_group("d")
        g.create_dataset("type", (1,), "S10", [b"dense"])
        g.create_dataset("shape", data=[3])
        g.create_dataset("weight", data=[[2, 4], [0, -2], [6, 8]])
        assert _dense_layer(g, "d", 2) == 3


SHIPPED = Path(__file__).resolve().parents[2] / "netx_models" / "digits_loihi1.net"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # biases and delays are modelled (tests/deploy/test_netx_bias_delay.py); what NetX would read
        # otherwise than the file says is refused by name
        ("bias", "/layer/1/bias: shape (3,), expected a scalar or (128,), one per neuron"),
        ("delay", "/layer/2/delay: values in [63, 63], expected integers in [0, 62]"),
        ("no_neuron", "/layer/2 has no neuron group"),
    ],
)
def test_what_the_reference_does_not_model_is_refused_by_name(change, message, tmp_path, capsys):
    import shutil

    import h5py
    import numpy as np

    path = tmp_path / "m.net"
    shutil.copyfile(SHIPPED, path)
    with h5py.File(path, "r+") as f:
        if change == "bias":
            f["layer/1"].create_dataset("bias", data=np.zeros(3))
        elif change == "delay":  # NetX would clamp 63 to 62 with a warning
            f["layer/2"].create_dataset("delay", data=np.full(10, 63))
        else:
            del f["layer/2/neuron"]
    assert run(["verify", str(path), "--samples", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_inputs_that_do_not_fit_the_input_layer_are_refused_before_lava(capsys):
    """digits has 1 x 8 x 8 values per sample, mnist.net's input layer 784: one line, no Lava run."""
    path = _shipped("mnist.net")
    assert run(["verify", str(path), "--input", "digits", "--samples", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(1, 8, 8) do not fit the input layer's shape [784]" in err, err


def test_third_party_options_are_refused_for_a_neurofl_file(capsys):
    assert run(["verify", str(SHIPPED), "--input", "random"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--input and --steps are for third-party NetX files" in err, err
