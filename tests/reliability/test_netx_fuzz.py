"""Hostile NetX files: mutations of the shipped netx_models/*.net either load or fail with one
UserError line naming the file, without reading a dataset the metadata says is absurd."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurofl.cli import run
from neurofl.deploy.netx import read_netx
from neurofl.errors import UserError

from .conftest import byte_mutation, check_reader, mutate_bytes

SHIPPED = Path(__file__).resolve().parents[2] / "netx_models" / "digits_loihi2.net"
REAL = SHIPPED.read_bytes()
# a shipped conv SNN (conv, flatten and dense layers; graded input into a conv layer)
SHIPPED_CONV = SHIPPED.with_name("faces_loihi2.net")


def _datasets(path: Path) -> list[str]:
    out: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(out)


VALUES = [
    np.float64("nan"),
    np.float64("inf"),
    np.int64(10**12),
    np.int64(-1),
    np.int64(0),
    b"dense",
    b"\xff\xfe",
    np.zeros((0,)),
    np.zeros((3, 3, 3)),
    np.full((2,), np.nan),
    np.array([1.5, 2.5]),
]
HEADER_VALUES = [None, -1, 0, 2**70, "nan", [], {}, "x", 1e308, True, {"type": "conv"}]

def _structured(path: Path) -> st.SearchStrategy:
    """Mutations of the datasets and header of the file at ``path``."""
    datasets = _datasets(path)
    with h5py.File(path, "r") as f:
        header = json.loads(f["neurofl"].attrs["header"])
    return st.one_of(
        st.tuples(st.just("delete"), st.sampled_from(datasets)),
        st.tuples(st.just("replace"), st.sampled_from(datasets), st.integers(0, len(VALUES) - 1)),
        st.tuples(st.just("scale"), st.sampled_from(datasets), st.sampled_from([np.nan, 1e6, -1.0, 0.5, 1000.0])),
        st.tuples(st.just("huge"), st.sampled_from(datasets)),
        st.tuples(st.just("link"), st.sampled_from(datasets)),
        st.tuples(st.just("header_drop"), st.sampled_from(sorted(header))),
        st.tuples(st.just("header_set"), st.sampled_from(sorted(header)), st.integers(0, len(HEADER_VALUES) - 1)),
        st.tuples(st.just("arch_set"), st.sampled_from(sorted(header["architecture"])), st.integers(0, 10)),
        st.tuples(st.just("header_raw"), st.sampled_from(["", "{", "[1]", '{"format": "neurofl-netx/1"}', "x" * 100])),
        st.tuples(st.just("extra_layer"), st.sampled_from(["pool", "dense", "input"])),
    )


structured = _structured(SHIPPED)


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
        elif op.startswith("header") or op == "arch_set":
            h = json.loads(f["neurofl"].attrs["header"])
            if op == "header_drop":
                del h[m[1]]
            elif op == "header_set":
                h[m[1]] = HEADER_VALUES[m[2]]
            elif op == "arch_set":
                h["architecture"][m[1]] = (HEADER_VALUES + [[64], [0], [-3, 2], [10**7, 10**7]])[m[2]]
            f["neurofl"].attrs["header"] = m[1] if op == "header_raw" else json.dumps(h)
        elif op == "extra_layer":
            g = f["layer"].create_group(str(len(f["layer"])))
            g.create_dataset("type", data=np.array([m[1].encode()], dtype="S10"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(structured)
def test_structured_mutations_of_a_shipped_model(tmp_path, m):
    nf = _read_mutated(tmp_path, SHIPPED, m, "netx (h5py mutations)")
    if nf is not None:
        assert nf.widths == (64, 128, 10) and all(w >= 1 for w in nf.widths)


def _read_mutated(tmp_path, shipped, m, label):
    """A copy of ``shipped`` with mutation ``m`` applied, through the reader (None if refused)."""
    path = tmp_path / "m.net"
    shutil.copyfile(shipped, path)
    _apply(path, m)
    return check_reader(label, lambda: read_netx(path), path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_structured(SHIPPED_CONV))
def test_structured_mutations_of_a_shipped_conv_model(tmp_path, m):
    nf = _read_mutated(tmp_path, SHIPPED_CONV, m, "netx (h5py mutations, conv)")
    if nf is not None:
        assert nf.widths == (625, 2028, 588, 588, 2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(byte_mutation(len(REAL)))
def test_byte_mutations_of_a_shipped_model(tmp_path, m):
    path = tmp_path / "m.net"
    path.write_bytes(mutate_bytes(REAL, m))
    check_reader("netx (byte mutations)", lambda: read_netx(path), path)


def test_absurd_dataset_is_refused_from_metadata(tmp_path):
    """10^12 declared elements: refused by name before a byte of it is read."""
    path = tmp_path / "m.net"
    shutil.copyfile(SHIPPED, path)
    _apply(path, ("huge", "layer/1/weight"))
    assert path.stat().st_size < 2 * len(REAL)
    assert check_reader("netx (targeted)", lambda: read_netx(path), path) is None
    with pytest.raises(Exception, match="refused before reading"):
        read_netx(path)


def test_verify_cli_prints_one_line_for_a_bad_file(tmp_path, capsys):
    path = tmp_path / "bad.net"
    shutil.copyfile(SHIPPED, path)
    _apply(path, ("scale", "layer/2/weight", np.nan))
    assert run(["verify", str(path), "--samples", "2", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and str(path) in err and "NaN" in err


HUGE = "declared 10^12 elements"  # a dataset whose metadata claims 10^6 x 10^6 float64 values


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("layer/1/bias", np.full(128, np.nan), "/layer/1/bias: holds NaN"),
        ("layer/1/bias", np.full(128, 10**9), "/layer/1/bias: values in [1e+09, 1e+09], expected integers in [-4096"),
        ("layer/1/bias", np.zeros((128, 2)), "/layer/1/bias: shape (128, 2), expected a scalar or (128,)"),
        ("layer/1/bias", HUGE, "refused before reading"),
        ("layer/2/delay", np.full(10, 10**12), "/layer/2/delay: values in [1e+12, 1e+12], expected integers in [0"),
        ("layer/2/delay", np.full(10, -1), "/layer/2/delay: values in [-1, -1], expected integers in [0, 62]"),
        ("layer/2/delay", np.full(10, 1.5), "/layer/2/delay: holds non-integer values"),
        ("layer/2/delay", np.full(10, np.inf), "/layer/2/delay: holds NaN or infinite values"),
        ("layer/2/delay", np.zeros(7), "/layer/2/delay: shape (7,), expected a scalar, (10,), (128,) or (10, 128)"),
        ("layer/2/delay", HUGE, "refused before reading"),
        ("layer/1/delay", np.zeros(128), "/layer/1/delay: synaptic delays on the first layer of a graded-input"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("layer") else None,
)
def test_hostile_bias_and_delay_are_refused_in_one_line(key, value, message, tmp_path):
    """A bias or delay NetX would read differently from what the file says (NaN, out of its register,
    clamped, truncated, broadcast otherwise), or declare more than the file holds, is refused by name
    from the metadata first, before its values or any Lava process are allocated."""
    path = tmp_path / "m.net"
    shutil.copyfile(SHIPPED, path)
    with h5py.File(path, "r+") as f:
        if isinstance(value, str):  # claims 10^12 float64 values, stores none (chunked, never written)
            f.create_dataset(key, shape=(10**6, 10**6), dtype="f8", chunks=(1, 1024))
        else:
            f.create_dataset(key, data=value)
    with pytest.raises(UserError) as e:
        read_netx(path)
    line = str(e.value)
    assert len(line.splitlines()) == 1 and str(path) in line and message in line, line


def test_a_delayed_layer_too_big_for_lava_delay_dense_is_refused_before_reading(tmp_path):
    """Lava's DelayDense multiplies a (63 * out, in) matrix every step: a delayed layer of more than
    MAX_DELAY_SYNAPSES synapses is refused from its shape (the weight here is never read)."""
    from neurofl.deploy.bias_delay import MAX_DELAY_SYNAPSES

    path = tmp_path / "m.net"
    shutil.copyfile(SHIPPED, path)
    outputs = MAX_DELAY_SYNAPSES // 64 + 1
    with h5py.File(path, "r+") as f:
        g = f["layer/1"]
        for key in ("weight", "shape", "outFeatures"):
            del g[key]
        g.create_dataset("weight", data=np.zeros((outputs, 64), dtype="i1"))  # 525 KB
        g.create_dataset("shape", data=[outputs])
        g.create_dataset("delay", data=np.int64(1))
    with pytest.raises(UserError, match=f"/layer/1/delay: a delayed layer of {outputs} x 64 synapses"):
        read_netx(path)
