"""Hostile event recordings in tonic's layouts (DVSGesture .npy, N-MNIST .bin): mutations load or
fail with one UserError line naming the file; absurd .npy headers are refused before reading;
N-MNIST decoding equals tonic's reader on every file it accepts."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurofl.data.tonic_layouts import (
    DVS_GESTURE,
    NMNIST_LAYOUT,
    load_event_dataset,
    read_gesture_npy,
    read_nmnist_bin,
)

from .conftest import byte_mutation, check_reader, fresh, gesture_events, mutate_bytes, nmnist_bytes

_buf = io.BytesIO()
np.save(_buf, gesture_events(np.random.default_rng(0), 40))
GESTURE = _buf.getvalue()
_rng = np.random.default_rng(1)
NMNIST = nmnist_bytes(
    _rng.integers(0, 34, 60), _rng.integers(0, 34, 60), _rng.integers(0, 2, 60), np.sort(_rng.integers(0, 1 << 20, 60))
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(byte_mutation(len(GESTURE)))
def test_mutated_gesture_npy(tmp_path, m):
    path = tmp_path / "3.npy"
    path.write_bytes(mutate_bytes(GESTURE, m))
    ev = check_reader("dvsgesture .npy (bytes)", lambda: read_gesture_npy(path), path)
    if ev is not None:
        assert ev["x"].max() < 128 and ev["y"].max() < 128 and ev["t"].min() >= 0


ARRAYS = [
    np.full((5, 4), np.nan),
    np.full((5, 4), np.inf),
    np.full((5, 4), 1e30),
    np.full((5, 4), 200.0),
    np.full((5, 4), -1),
    np.full((5, 4), 0.5),
    np.zeros((5, 3)),
    np.zeros((2, 2, 4)),
    np.zeros(5),
    np.zeros((5, 4), np.complex64),
    np.zeros((5, 4), bool),
    np.array([["a"] * 4] * 5),
    np.zeros(5, [("x", "i2"), ("y", "i2"), ("p", "i1"), ("t", "i8")]),
    np.zeros((0, 4)),
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, len(ARRAYS) - 1), st.integers(0, 3), st.booleans())
def test_gesture_arrays_with_wrong_values_types_and_shapes(tmp_path, which, column, fortran):
    a = ARRAYS[which].copy()
    if a.ndim == 2 and a.shape[1] == 4 and a.dtype.kind == "f" and a.size:
        good = gesture_events(np.random.default_rng(2), len(a))
        good[:, column] = a[:, column]
        a = good
    path = tmp_path / "3.npy"
    np.save(path, np.asfortranarray(a) if fortran else a)
    ev = check_reader("dvsgesture .npy (arrays)", lambda: read_gesture_npy(path), path)
    if ev is not None:
        assert len(ev) == 0 or (ev["x"].max() < 128 and ev["p"].max() <= 1)


def test_npy_header_claiming_10_to_the_12_events_is_refused_before_reading(tmp_path):
    path = tmp_path / "3.npy"
    header = GESTURE[: GESTURE.index(b"}") + 1].replace(b"(40, 4)", b"(1000000000000, 4)")
    path.write_bytes(header.ljust(len(header) + 64 - (len(header) + 1) % 64, b" ") + b"\n" + bytes(64))
    assert check_reader("dvsgesture .npy (targeted)", lambda: read_gesture_npy(path), path) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(byte_mutation(len(NMNIST)))
def test_mutated_nmnist_bin_matches_tonic_when_accepted(tmp_path, m):
    from tonic.datasets import NMNIST as TonicNMNIST
    from tonic.io import read_mnist_file

    path = tmp_path / "00001.bin"
    path.write_bytes(mutate_bytes(NMNIST, m))
    ev = check_reader("nmnist .bin (bytes)", lambda: read_nmnist_bin(path), path)
    if ev is not None:  # same events as tonic's own reader (an independent reference)
        ref = read_mnist_file(str(path), dtype=TonicNMNIST.dtype)
        assert all(np.array_equal(ev[k], ref[k]) for k in ("x", "y", "t", "p"))
        assert ev["x"].max(initial=0) < 34 and ev["y"].max(initial=0) < 34


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["gesture", "nmnist"]), st.sampled_from(["good", "label", "mutate"]), byte_mutation(200))
def test_whole_layouts(tmp_path, which, how, m):
    """load_event_dataset over a tree holding one hostile recording (or a file with a bad label name)."""
    root = fresh(tmp_path)
    if which == "gesture":
        layout, good, bad = DVS_GESTURE, GESTURE, "DVSGesture/ibmGestureTrain/user01_led/{}.npy"
    else:
        layout, good, bad = NMNIST_LAYOUT, NMNIST, "NMNIST/Train/{}/00001.bin"
    for label in (0, 1):
        p = root / bad.format(label)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(good)
    if how == "label" and which == "gesture":
        (root / bad.format("wave")).write_bytes(good)
    elif how == "mutate":
        (root / bad.format(1)).write_bytes(mutate_bytes(good, (m[0], min(m[1], len(good) - 1), *m[2:])))
    ds = check_reader(f"{which} layout", lambda: load_event_dataset(layout, root, False), root)
    if ds is not None:
        assert ds.x.ndim == 5 and set(np.unique(ds.x)) <= {0.0, 1.0}
