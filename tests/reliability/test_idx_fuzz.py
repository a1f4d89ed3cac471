"""Hostile IDX files (MNIST layout): mutations of real-layout files load or fail with one UserError
line naming the file; headers claiming absurd shapes are refused before reading the data."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurofl.data.idx import MNIST, load_idx_dataset, read_idx
from neurofl.errors import UserError

from .conftest import byte_mutation, check_reader, fresh, mutate_bytes, write_mnist_tree

IMAGES = bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 28, 28) + bytes(range(256)) * 6 + bytes(32)
LABELS = bytes([0, 0, 8, 1]) + struct.pack(">I", 2) + bytes([3, 7])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([IMAGES, LABELS]), byte_mutation(len(IMAGES)), st.booleans())
def test_mutated_idx_files(tmp_path, real, m, compress):
    data = mutate_bytes(real, (m[0], min(m[1], len(real) - 1), *m[2:]))
    path = tmp_path / ("x.gz" if compress else "x")
    path.write_bytes(gzip.compress(data) if compress else data)
    arr = check_reader("idx (byte mutations)", lambda: read_idx(path), path)
    if arr is not None:
        assert arr.size == int(np.prod(arr.shape))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    st.sampled_from([0x08, 0x09, 0x0B, 0x0D, 0x0E]),
    st.sampled_from(["nan", "inf", "neg", "empty", "shape"]),
)
def test_mnist_tree_with_a_hostile_file(tmp_path, name, code, how):
    """Wrong types, NaN, negative labels, empty arrays, mismatched counts: refused by name."""
    tmp_path = fresh(tmp_path)
    folder = tmp_path / "mnist"
    write_mnist_tree(folder, np.random.default_rng(0), compress=False)
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0D: ">f4", 0x0E: ">f8"}[code]
    n = {"empty": 0, "shape": 5}.get(how, 4 if "t10k" in name else 6)
    shape = (n, 28, 28) if "images" in name else (n,)
    values = np.full(shape, {"nan": np.nan, "inf": np.inf, "neg": -1}.get(how, 1)) if n else np.zeros(shape)
    if dtype[1] == "u" or (dtype[1] == "i" and how in ("nan", "inf")):
        values = np.nan_to_num(values, nan=1, posinf=1, neginf=1)
    header = bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    (folder / name).write_bytes(header + values.astype(dtype).tobytes())
    ds = check_reader("idx (mnist tree)", lambda: load_idx_dataset(MNIST, tmp_path, False), folder)
    if ds is not None:  # only a valid tree loads: uint8 images, integer labels in 0..9
        assert np.isfinite(ds.x).all() and 0 <= ds.y.min() and ds.y.max() < 10


def test_header_claiming_10_to_the_12_values_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.gz"
    # a 10^12-byte claim over a gzip stream that would decompress to far more than it holds
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 2]) + struct.pack(">2I", 10**6, 10**6) + bytes(1 << 20)))
    assert check_reader("idx (targeted)", lambda: read_idx(path), path) is None
    with pytest.raises(UserError, match="more than"):
        read_idx(path)
