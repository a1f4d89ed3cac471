"""Hostile third-party NetX files: mutations of lava-dl's own test networks (an input neuron, conv
layers with 5-D weights and biases, a dense read-out without a neuron) either load or fail with one
UserError line naming the file, sizes refused from the metadata before any array is read; what
loads, the reference runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import lava.lib.dl.netx as netx_pkg
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurofl.deploy.third_party.reader import read_foreign
from neurofl.deploy.third_party.reference import run_reference
from neurofl.errors import UserError

from .conftest import byte_mutation, check_reader, mutate_bytes

NETX_TESTS = Path(netx_pkg.__file__).resolve().parents[4] / "tests" / "lava" / "lib" / "dl" / "netx"
TINY, MNIST = NETX_TESTS / "tiny.net", NETX_TESTS / "mnist.net"
SQUARE = NETX_TESTS / "gts" / "pilotnet_sdnn" / "square_network.net"  # sigma-delta (SDNN) conv layers
pytestmark = pytest.mark.skipif(
    not (TINY.is_file() and MNIST.is_file()), reason=f"lava-dl's test networks are not installed ({NETX_TESTS})"
)
VALUES = [
    np.float64("nan"),
    np.float64("inf"),
    np.int64(10**12),
    np.int64(-1),
    np.int64(0),
    b"conv",
    b"\xff\xfe",
    np.zeros((0,)),
    np.zeros((3, 3, 3)),
    np.array([1.5, 2.5]),
    np.int64(5000),
]


def _put(f: h5py.File, key: str, value) -> None:
    """Replace entry ``key`` by ``value``; a string value stands for a dataset declaring 10^12
    elements it does not hold (sizes must be refused from the metadata)."""
    if key in f:
        del f[key]
    if isinstance(value, str):
        f.create_dataset(key, shape=(10**6, 10**6), dtype="f8", chunks=(1, 1024))
    else:
        f.create_dataset(key, data=value)


def _assert_refused_in_one_line(path: Path, message: str) -> None:
    with pytest.raises(UserError) as e:
        read_foreign(path)
    line = str(e.value)
    assert len(line.splitlines()) == 1 and str(path) in line and message in line, line


def _datasets(path: Path) -> list[str]:
    out: list[str] = []
    if path.is_file():
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(out)


def _mutations(path: Path) -> st.SearchStrategy:
    names = _datasets(path) or ["layer/0/shape"]
    return st.one_of(
        st.tuples(st.just("delete"), st.sampled_from(names)),
        st.tuples(st.just("replace"), st.sampled_from(names), st.integers(0, len(VALUES) - 1)),
        st.tuples(st.just("scale"), st.sampled_from(names), st.sampled_from([np.nan, 1e6, -1.0, 0.5, 1000.0])),
        st.tuples(st.just("huge"), st.sampled_from(names)),
        st.tuples(st.just("link"), st.sampled_from(names)),
        st.tuples(st.just("extra_layer"), st.sampled_from(["pool", "dense", "input", "flatten", "dense_rec"])),
    )


def _apply(path: Path, m: tuple) -> None:
    with h5py.File(path, "r+") as f:
        op = m[0]
        if op == "delete":
            del f[m[1]]
        elif op == "replace":
            del f[m[1]]
            f.create_dataset(m[1], data=VALUES[m[2]])
        elif op == "scale":
            v = np.asarray(f[m[1]][()])
            if v.dtype.kind in "iuf":
                del f[m[1]]
                f.create_dataset(m[1], data=v.astype(np.float64) * m[2])
        elif op == "huge":  # claims 10^12 float64 values, stores none (chunked, never written)
            del f[m[1]]
            f.create_dataset(m[1], shape=(10**6, 10**6), dtype="f8", chunks=(1, 1024))
        elif op == "link":
            del f[m[1]]
            f[m[1]] = h5py.ExternalLink("/etc/hostname", "/x")
        elif op == "extra_layer":
            g = f["layer"].create_group(str(len(f["layer"])))
            g.create_dataset("type", data=np.array([m[1].encode()], dtype="S10"))


def _mutated(tmp_path: Path, shipped: Path, m: tuple, label: str):
    path = tmp_path / "m.net"
    shutil.copyfile(shipped, path)
    _apply(path, m)
    net = check_reader(label, lambda: read_foreign(path), path)
    if net is not None:  # whatever the reader accepts, the reference runs (a few steps, two samples)
        drive = np.zeros((2, *net.input_shape), dtype=np.int64) + 40
        if not net.input_neuron:
            drive = np.ones((2, int(np.prod(net.input_shape)), 3), dtype=np.int8)
        ref = run_reference(net, drive, 3)
        assert len(ref.spikes) == len(net.layers) - (0 if net.input_neuron else 1)
    return net


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_mutations(TINY))
def test_structured_mutations_of_lava_dl_tiny_net(tmp_path, m):
    net = _mutated(tmp_path, TINY, m, "foreign netx (tiny.net mutations)")
    if net is not None:
        assert net.layers[-1].shape == (36, 1, 1) or m[0] == "extra_layer"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_mutations(MNIST))
def test_structured_mutations_of_lava_dl_mnist_net(tmp_path, m):
    net = _mutated(tmp_path, MNIST, m, "foreign netx (mnist.net mutations)")
    if net is not None:
        assert net.input_shape == (784,)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(byte_mutation(TINY.stat().st_size if TINY.is_file() else 1))
def test_byte_mutations_of_lava_dl_tiny_net(tmp_path, m):
    path = tmp_path / "m.net"
    path.write_bytes(mutate_bytes(TINY.read_bytes(), m))
    check_reader("foreign netx (byte mutations)", lambda: read_foreign(path), path)


@pytest.mark.skipif(not SQUARE.is_file(), reason=f"{SQUARE} is not installed")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_mutations(SQUARE))
def test_structured_mutations_of_lava_dl_sdnn_square_net(tmp_path, m):
    net = _mutated(tmp_path, SQUARE, m, "foreign netx (square_network.net mutations)")
    if net is not None and m[0] != "extra_layer":
        assert net.sdnn and net.layers[-1].shape == (64, 2, 2)


@pytest.mark.skipif(not SQUARE.is_file(), reason=f"{SQUARE} is not installed")
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("layer/2/neuron/vThMant", np.int64(5000), "/layer/2/neuron/vThMant: values in [5000, 5000]"),
        ("layer/2/neuron/vThMant", "declared 10^12 elements", "refused before reading"),
        ("layer/2/neuron/activation", np.array(b"tanh"), "NetX builds Lava's ReLU sigma-delta neuron"),
        ("layer/2/neuron/messageBits", np.array(8), "entry 'messageBits' is not modelled"),
        ("layer/2/neuron/iDecay", np.array(8), "entry 'iDecay' is not modelled"),
        ("layer/2/neuron/sigma_output", np.array(False), "/layer/2/neuron/sigma_output: must be one true boolean"),
        ("layer/2/neuron/sigma_output", np.array(True), "/layer/2/bias: Lava's Sigma process"),
        ("layer/0/neuron/sigma_output", np.array(True), "/layer/0/neuron/sigma_output: NetX builds the input"),
        ("layer/3/neuron/type", np.array(b"CUBA"), "/layer/3: a CUBA layer (or NetX's CUBA integrator) in a network"),
        ("layer/4/neuron/type", np.array(b"RF"), "resonate-and-fire (RF) neurons are not modelled"),
    ],
)
def test_hostile_sdnn_entries_are_refused_in_one_line(key, value, message, tmp_path):
    """What NetX would build otherwise than the SDNN reference models is refused by name."""
    path = tmp_path / "m.net"
    shutil.copyfile(SQUARE, path)
    with h5py.File(path, "r+") as f:
        _put(f, key, value)
        if key == "layer/3/neuron/type":  # a complete CUBA neuron group
            for k, v in (("iDecay", 0), ("vDecay", 4096), ("vThMant", 10)):
                if k in f["layer/3/neuron"]:
                    del f["layer/3/neuron"][k]
                f["layer/3/neuron"].create_dataset(k, data=v)
            del f["layer/3/neuron/activation"]
    _assert_refused_in_one_line(path, message)


def test_sdnn_delay_and_sigma_bias_on_dense_layers_are_refused(tmp_path):
    """pilotnet_sdnn's dense layers: a synaptic delay into sigma-delta neurons (DelayDense with graded
    messages) is not modelled; the file's sigma_output layer with a bias cannot be built by NetX."""
    full = NETX_TESTS / "gts" / "pilotnet_sdnn" / "network.net"
    if not full.is_file():
        pytest.skip(f"{full} is not installed")
    for key, value, message in (
        ("layer/7/delay", np.zeros(50), "/layer/7/delay: synaptic delays into sigma-delta neurons"),
        ("layer/9/bias", np.zeros(1), "/layer/9/bias: Lava's Sigma process (a sigma_output layer) takes no bias"),
    ):
        path = tmp_path / f"{key.replace('/', '_')}.net"
        shutil.copyfile(full, path)
        with h5py.File(path, "r+") as f:
            f.create_dataset(key, data=value)
        with pytest.raises(UserError) as e:
            read_foreign(path)
        assert message in str(e.value) and len(str(e.value).splitlines()) == 1, str(e.value)


HUGE = "declared 10^12 elements"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("layer/1/bias", HUGE, "refused before reading"),
        ("layer/1/weight", HUGE, "refused before reading"),
        ("layer/1/bias", np.full(24, np.nan), "/layer/1/bias: holds NaN"),
        ("layer/1/bias", np.zeros(7), "/layer/1/bias: shape (7,), expected (24,), one per output channel"),
        ("layer/1/bias", np.full(24, 10**5), "/layer/1/bias: values in [100000, 100000], expected integers in [-4096"),
        ("layer/1/delay", np.zeros(24), "/layer/1/delay: NetX ignores a conv layer's delay"),
        ("layer/1/weight", np.zeros((24, 3, 5, 5, 2)), "/layer/1: needs a 4-D (out, in, kH, kW) or 5-D (..., 1)"),
        ("layer/1/weight", np.full((24, 3, 5, 5), 300.0), "/layer/1/weight: values in [300, 300]"),
        ("layer/1/dilation", np.array([2, 2]), "/layer/1/dilation: dilated convolutions are not modelled"),
        ("layer/0/weight", np.array([10**6]), "/layer/0/weight: values in [1e+06, 1e+06]"),
        ("layer/0/bias", np.zeros(3), "/layer/0/bias: must be a scalar"),
        ("layer/0/shape", np.array([3, 16]), "/layer/0/shape [3, 16]: give (n,) or (C, H, W)"),
        ("layer/2/neuron/gradedSpike", np.array(True), "/layer/2/neuron/gradedSpike: graded spikes are not modelled"),
        ("layer/2/neuron/messageBits", np.array(3), "entry 'messageBits' is not modelled"),
        ("layer/2/neuron/type", np.array(b"RF_PHASE"), "resonate-and-fire (RF) neurons are not modelled"),
        ("layer/2/type", np.array([b"dense_rec"], dtype="S10"), "/layer/2: a recurrent dense layer is not modelled"),
        ("layer/2/shape", np.array([36, 1, 2]), "/layer/2/shape: must be [36, 1, 1]"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("layer") else None,
)
def test_hostile_third_party_entries_are_refused_in_one_line(key, value, message, tmp_path):
    """What NetX would build otherwise than the reference models, or a size the file does not hold,
    is refused by name (sizes from the metadata, before the values are read)."""
    path = tmp_path / "m.net"
    shutil.copyfile(TINY, path)
    with h5py.File(path, "r+") as f:
        _put(f, key, value)
    _assert_refused_in_one_line(path, message)
