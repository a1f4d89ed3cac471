"""A saved chunk under --out is read with sizes from its bytes, not from its headers' claims."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from neurofl.errors import UserError
from neurofl.leakage.rows import RowStore


def _npz_claiming(shape: tuple[int, ...]) -> bytes:
    """A 250-byte .npz whose one member's header declares ``shape`` float64 but holds 8 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("images.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + b"\x00" * 8)
    return buf.getvalue()


def test_a_chunk_whose_header_claims_745_gib_is_refused_before_allocation(tmp_path):
    path = tmp_path / "chunk0.npz"
    path.write_bytes(_npz_claiming((10**11,)))
    assert path.stat().st_size < 1024
    with pytest.raises(UserError, match="not a saved chunk of this run"):
        RowStore.load(path)


def test_a_real_chunk_round_trips(tmp_path):
    path = tmp_path / "chunk0.npz"
    arrays = {"images": np.arange(12, dtype=np.float32).reshape(3, 4), "loss": np.zeros(3)}
    RowStore.save(path, arrays)
    got = RowStore.load(path)
    assert got is not None and all(np.array_equal(got[k], v) for k, v in arrays.items())
