"""`neurofl verify` on lava-dl's own NetX test networks: each is refused with its true reason, in
one line and exit code 2 (none carries the header a reference needs; each uses what neurofl does not
model: an input neuron, SDNN neurons, an 'average' layer)."""

from __future__ import annotations

from pathlib import Path

import lava.lib.dl.netx as netx_pkg
import pytest

from neurofl.cli import run

SITE = Path(netx_pkg.__file__).resolve().parents[4]
NETX_TESTS = SITE / "tests" / "lava" / "lib" / "dl" / "netx"
VERDICTS = {
    "tiny.net": "/layer/0 has its own input neuron",
    "mnist.net": "/layer/0 has its own input neuron",
    "gts/pilotnet_lif/network.net": "/layer/0 has its own input neuron",
    "gts/pilotnet_sdnn/network.net": "/layer/0/neuron/type: 'SDNN' is not a CUBA LIF neuron",
    "gts/pilotnet_sdnn/square_network.net": "/layer/0/neuron/type: 'SDNN' is not a CUBA LIF neuron",
    "gts/ntidigits/ntidigits.net": "/layer/5: layer type 'average' is not implemented by NetX",
}


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_lava_dl_network_gets_its_true_verdict(name, capsys):
    path = NETX_TESTS / name
    if not path.is_file():
        pytest.skip(f"{name} is not in the installed lava-dl wheel ({NETX_TESTS})")
    code = run(["verify", str(path), "--samples", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and VERDICTS[name] in err, err


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
