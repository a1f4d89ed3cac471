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

from .conftest import byte_mutation, check_reader, mutate_bytes

SHIPPED = Path(__file__).resolve().parents[2] / "netx_models" / "digits_loihi2.net"
REAL = SHIPPED.read_bytes()


def _datasets(path: Path) -> list[str]:
    out: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(out)


DATASETS = _datasets(SHIPPED)
HEADER = json.loads(h5py.File(SHIPPED, "r")["neurofl"].attrs["header"])
HEADER_KEYS = sorted(HEADER)
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

structured = st.one_of(
    st.tuples(st.just("delete"), st.sampled_from(DATASETS)),
    st.tuples(st.just("replace"), st.sampled_from(DATASETS), st.integers(0, len(VALUES) - 1)),
    st.tuples(st.just("scale"), st.sampled_from(DATASETS), st.sampled_from([np.nan, 1e6, -1.0, 0.5, 1000.0])),
    st.tuples(st.just("huge"), st.sampled_from(DATASETS)),
    st.tuples(st.just("link"), st.sampled_from(DATASETS)),
    st.tuples(st.just("header_drop"), st.sampled_from(HEADER_KEYS)),
    st.tuples(st.just("header_set"), st.sampled_from(HEADER_KEYS), st.integers(0, len(HEADER_VALUES) - 1)),
    st.tuples(st.just("arch_set"), st.sampled_from(sorted(HEADER["architecture"])), st.integers(0, 10)),
    st.tuples(st.just("header_raw"), st.sampled_from(["", "{", "[1]", '{"format": "neurofl-netx/1"}', "x" * 100])),
    st.tuples(st.just("extra_layer"), st.sampled_from(["pool", "dense", "input"])),
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
    path = tmp_path / "m.net"
    shutil.copyfile(SHIPPED, path)
    _apply(path, m)
    nf = check_reader("netx (h5py mutations)", lambda: read_netx(path), path)
    if nf is not None:
        assert nf.widths == (64, 128, 10) and all(w >= 1 for w in nf.widths)


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
