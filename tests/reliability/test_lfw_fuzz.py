"""Hostile LFW trees (scikit-learn's lfw_home layout): corrupt, truncated, grey, huge or foreign
images load or fail with one UserError line; no joblib cache (pickles) is written or read."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from neurofl.data.lfw import HOME, LfwOptions, load_lfw

from .conftest import byte_mutation, check_reader, fresh, mutate_bytes, write_lfw_tree

PEOPLE = {"Ada_Lovelace": (2, 40), "Alan_Turing": (2, 200)}
_buf = io.BytesIO()
Image.fromarray(np.full((250, 250, 3), 90, np.uint8)).save(_buf, format="JPEG", quality=95)
REAL = _buf.getvalue()


def _image(kind: str) -> bytes:
    buf = io.BytesIO()
    if kind == "grey":
        Image.fromarray(np.full((250, 250), 90, np.uint8)).save(buf, format="JPEG")
    elif kind == "tiny":
        Image.fromarray(np.full((3, 3, 3), 90, np.uint8)).save(buf, format="PNG")
    elif kind == "rgba":
        Image.fromarray(np.full((250, 250, 4), 90, np.uint8)).save(buf, format="PNG")
    elif kind == "text":
        return b"not an image\n"
    elif kind == "empty":
        return b""
    return buf.getvalue()


OPTIONS = LfwOptions(min_faces=2, resize=0.1)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(byte_mutation(len(REAL)), st.tuples(st.sampled_from(["grey", "tiny", "rgba", "text", "empty"]))))
def test_mutated_face_images(tmp_path, m):
    tmp_path = fresh(tmp_path)
    write_lfw_tree(tmp_path, PEOPLE)
    path = tmp_path / HOME / "lfw_funneled" / "Alan_Turing" / "Alan_Turing_0002.jpg"
    path.write_bytes(_image(m[0]) if len(m) == 1 else mutate_bytes(REAL, m))
    ds = check_reader("lfw (image mutations)", lambda: load_lfw(tmp_path, False, OPTIONS), tmp_path)
    if ds is not None:
        assert np.isfinite(ds.x).all() and ds.x.min() >= 0 and ds.x.max() <= 1 and ds.classes == 2
    assert not (tmp_path / HOME / "joblib").exists()  # no pickled cache beside the data
