"""NetX neuron biases and synaptic delays: `neurofl verify` models them as Lava runs them (0 differing
bins), and they really change the spikes (a reference that ignored them would disagree with Lava)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from neurofl.cli import run
from neurofl.deploy.bias_delay import netx_delays
from neurofl.deploy.lava_run import run_lava
from neurofl.deploy.netx import read_netx
from neurofl.deploy.parity import output_spikes, reference_model
from neurofl.deploy.trace import encoded_input

SHIPPED = Path(__file__).resolve().parents[2] / "netx_models" / "digits_loihi1.net"  # 64-128-10, binary spikes
SAMPLES = 12
LAYERS = 2


def _with(tmp_path: Path, name: str, datasets: dict[str, np.ndarray]) -> Path:
    """A copy of the shipped loihi1 digits network with extra datasets, e.g. {"layer/1/bias": ...}."""
    path = tmp_path / f"{name}.net"
    shutil.copyfile(SHIPPED, path)
    with h5py.File(path, "r+") as f:
        for key, value in datasets.items():
            f.create_dataset(key, data=value)
    return path


def _bias(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    # one mantissa per hidden neuron (13-bit), and a scalar for every read-out neuron
    return _with(tmp_path, "bias", {"layer/1/bias": rng.integers(-100, 101, 128), "layer/2/bias": np.int64(50)})


def _delay(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    # per synapse (out, in) into the hidden layer; one per input (the 128 hidden neurons) into the read-out
    return _with(
        tmp_path, "delay", {"layer/1/delay": rng.integers(0, 4, (128, 64)), "layer/2/delay": rng.integers(0, 4, 128)}
    )


def _verify(path: Path, capsys) -> dict:
    assert run(["verify", str(path), "--samples", str(SAMPLES), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["parity"]


def _reference_spikes(path: Path, x: torch.Tensor) -> np.ndarray:
    model = reference_model(read_netx(path))
    return output_spikes(model, encoded_input(model, x, seed=0))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("make", [_bias, _delay], ids=["bias", "delay"])
def test_bias_and_delay_verify_bin_for_bin_and_change_the_spikes(make, tmp_path, capsys, digits_splits):
    path = make(tmp_path)
    rep = _verify(path, capsys)
    assert rep["mismatched_bins"] == 0 and rep["spike_agreement"] == 1.0
    assert rep["slayer_spikes"] == rep["lava_spikes"] > 50
    # the same inputs without the bias/delay give other spikes: a reference that ignored them would
    # disagree with Lava, so the 0 above depends on the modelling
    x = torch.from_numpy(digits_splits.test.x[:SAMPLES])
    changed = int((_reference_spikes(path, x)[..., LAYERS:] != _reference_spikes(SHIPPED, x)[..., LAYERS:]).sum())
    assert changed > 20


@pytest.mark.timeout(300)
def test_delayed_samples_run_back_to_back_equal_separate_runs(tmp_path, digits_splits):
    """A DelayDense keeps spikes in flight across NetX's neuron reset; the Lava run clears them at each
    sample boundary, so every sample behaves as if run alone (and as the reference says)."""
    path = _delay(tmp_path)
    nf = read_netx(path)
    model = reference_model(nf)
    inputs = encoded_input(model, torch.from_numpy(digits_splits.test.x[:3]), seed=3)
    together = run_lava(nf, inputs.numpy())
    alone = np.concatenate([run_lava(nf, inputs[i : i + 1].numpy()) for i in range(3)])
    assert np.array_equal(together, alone) and together.sum() > 0
    assert np.array_equal(together[..., LAYERS:], output_spikes(model, inputs)[..., LAYERS:])


def test_delay_shapes_expand_as_netx_expands_them():
    """lava-dl 0.6.0 create_dense: scalar -> every synapse; length out -> per output neuron (also when
    out == in); length in -> per input; (out, in) unchanged."""
    assert np.array_equal(netx_delays(np.float32(2), 2, 3), np.full((2, 3), 2))
    assert np.array_equal(netx_delays(np.array([1, 2]), 2, 3), [[1, 1, 1], [2, 2, 2]])
    assert np.array_equal(netx_delays(np.array([1, 2, 3]), 2, 3), [[1, 2, 3], [1, 2, 3]])
    assert np.array_equal(netx_delays(np.array([1, 2]), 2, 2), [[1, 1], [2, 2]])
    square = np.arange(6).reshape(2, 3)
    assert np.array_equal(netx_delays(square, 2, 3), square)


CONV = SHIPPED.with_name("dvs-digits_loihi1.net")  # conv, conv, conv, flatten, dense (4 weighted layers)


@pytest.mark.timeout(300)
def test_read_out_bias_and_delay_after_conv_layers_verify_bin_for_bin(tmp_path, capsys):
    """The bias starts at the read-out's own reset step, counted over conv layers and not the flatten."""
    from neurofl.data import load_dataset, split_dataset

    rng = np.random.default_rng(7)
    path = tmp_path / "conv.net"
    shutil.copyfile(CONV, path)
    with h5py.File(path, "r+") as f:
        f["layer/5"].create_dataset("delay", data=rng.integers(0, 4, (10, 300)))
        f["layer/5"].create_dataset("bias", data=rng.integers(-40, 60, 10))
    assert run(["verify", str(path), "--samples", "20", "--dataset", "dvs-digits", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)["parity"]
    assert rep["mismatched_bins"] == 0 and rep["lava_spikes"] > 50
    x = torch.from_numpy(split_dataset(load_dataset("dvs-digits"), 0).test.x[:20])
    changed = (_reference_spikes(path, x) != _reference_spikes(CONV, x))[..., 4:].sum()
    assert changed > 20


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("layer/1/bias", np.zeros(12), "/layer/1/bias: NetX broadcasts a conv layer's bias"),
        ("layer/1/delay", np.ones(12), "/layer/1/delay: NetX ignores a conv layer's delay"),
    ],
)
def test_what_is_not_modelled_on_conv_layers_is_refused_in_one_line(key, value, message, tmp_path, capsys):
    path = tmp_path / "c.net"
    shutil.copyfile(CONV, path)
    with h5py.File(path, "r+") as f:
        f.create_dataset(key, data=value)
    assert run(["verify", str(path), "--samples", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and message in err, err
