"""Hostile cifar-100-python folders: mutated pickles load or fail with one UserError line naming the
file, and a pickle that would run code is refused without running it."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from neurofl.data.cifar import load_cifar100

from .conftest import byte_mutation, check_reader, cifar_dict, fresh, mutate_bytes, write_cifar100

REAL = pickle.dumps(cifar_dict(np.random.default_rng(0), 3), protocol=2)
HOSTILE = [
    None,
    [1, 2],
    np.zeros((3, 3072), np.float64),
    np.full((3, 3072), np.nan),
    np.zeros((3, 10), np.uint8),
    np.zeros((0, 3072), np.uint8),
    [300, -1, 5],
    ["a", "b", "c"],
    [1.5, 2.0, 3.0],
    np.array([1, 2, 3], np.float32),
    {b"x": 1},
    b"bytes",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(byte_mutation(len(REAL)))
@example(("delete", 50, 51))  # leaves a LONG_BINPUT claiming memo slot 175,726,962 (~3 GB memo table)
def test_byte_mutations_of_a_real_layout_pickle(tmp_path, m):
    tmp_path = fresh(tmp_path)
    write_cifar100(tmp_path, np.random.default_rng(1))
    path = tmp_path / "cifar-100-python" / "train"
    path.write_bytes(mutate_bytes(REAL, m))
    ds = check_reader("cifar100 (byte mutations)", lambda: load_cifar100(tmp_path, False), tmp_path)
    if ds is not None:
        assert ds.x.shape[1:] == (3, 32, 32) and np.isfinite(ds.x).all() and ds.y.max() < 100


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([b"data", b"fine_labels"]), st.integers(0, len(HOSTILE)), st.sampled_from(["train", "test"]))
def test_wrong_types_and_values(tmp_path, key, which, name):
    tmp_path = fresh(tmp_path)
    write_cifar100(tmp_path, np.random.default_rng(1))
    d = cifar_dict(np.random.default_rng(2), 3)
    if which == len(HOSTILE):
        del d[key]
    else:
        d[key] = HOSTILE[which]
    path = tmp_path / "cifar-100-python" / name
    path.write_bytes(pickle.dumps(d))
    ds = check_reader("cifar100 (wrong types)", lambda: load_cifar100(tmp_path, False), tmp_path)
    if ds is not None:
        assert np.isfinite(ds.x).all() and 0 <= ds.y.min() and ds.y.max() < 100


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (str(self.marker),))


def test_pickled_code_never_runs(tmp_path):
    write_cifar100(tmp_path, np.random.default_rng(1))
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar-100-python" / "train"
    path.write_bytes(pickle.dumps({b"data": _RunsCode(marker), b"fine_labels": []}))
    assert check_reader("cifar100 (targeted)", lambda: load_cifar100(tmp_path, False), path) is None
    assert not marker.exists()
