"""Hostile captured updates: mutations of real files written by the federated engine load or fail
with one UserError line naming the file; they load with weights_only (no code runs)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurofl.data import Dataset
from neurofl.federated import fl_config
from neurofl.federated.capture import load_captured
from neurofl.federated.engine import run_local
from neurofl.federated.task import make_task
from neurofl.profiles import load_profile

from .conftest import byte_mutation, check_reader, fresh, mutate_bytes


def _real_capture() -> bytes:
    rng = np.random.default_rng(0)
    x = rng.random((60, 1, 4, 4)).astype(np.float32)
    ds = Dataset("tiny", x, (np.arange(60) % 10).astype(np.int64), 10, "image", "synthetic (tests)")
    cfg = fl_config({"clients": 3, "rounds": 1, "batch": 4, "capture_rounds": [1], "capture_clients": 1})
    task = make_task(ds, "snn", load_profile("loihi2"), cfg)
    with tempfile.TemporaryDirectory() as d:
        run_local(task, Path(d))
        (path,) = sorted((Path(d) / "updates").glob("*.pt"))
        return path.read_bytes()


REAL = _real_capture()
PAYLOAD = torch.load(__import__("io").BytesIO(REAL), weights_only=True)
SCALARS = ["round", "client", "profile", "dataset", "model_kind", "kind", "batch", "local_steps", "lr", "format",
           "seed", "run", "profile_table", "dataset_identity", "minibatch"]  # fmt: skip
HOSTILE = [None, -2, 0, 10**12, "", "x", 1.5, float("nan"), float("inf"), True, [], {}]
TENSORS = [
    torch.tensor(float("nan")),
    torch.full((1, 3), float("inf")),
    torch.zeros(7, 7),
    torch.zeros(2, dtype=torch.complex64),
    torch.zeros(4, dtype=torch.int32),
    torch.full((4,), 99, dtype=torch.int64),
    torch.zeros(0),
]
NESTED = ["state_dict", "update"]
structured = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(SCALARS), st.integers(0, len(HOSTILE) - 1)),
    st.tuples(st.just("drop"), st.sampled_from(sorted(PAYLOAD))),
    st.tuples(st.just("arch"), st.sampled_from(sorted(PAYLOAD["arch"])), st.integers(0, len(HOSTILE) + 1)),
    st.tuples(st.just("nested"), st.sampled_from(NESTED), st.integers(0, 9), st.integers(0, len(TENSORS) - 1)),
    st.tuples(st.just("data"), st.sampled_from(["true_inputs", "true_labels"]), st.integers(0, len(TENSORS))),
)


def _apply(m: tuple) -> dict:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PAYLOAD.items()}
    if m[0] == "set":
        d[m[1]] = HOSTILE[m[2]]
    elif m[0] == "drop":
        del d[m[1]]
    elif m[0] == "arch":
        d["arch"][m[1]] = (HOSTILE + [[10**6, 10**6], [3]])[m[2]]
    elif m[0] == "nested":
        names = sorted(d[m[1]])
        d[m[1]][names[m[2] % len(names)]] = TENSORS[m[3]]
    elif m[0] == "data":
        d[m[1]] = None if m[2] == len(TENSORS) else TENSORS[m[2]]
    return d


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(structured)
def test_structured_mutations_of_a_real_capture(tmp_path, m):
    folder = fresh(tmp_path)
    path = folder / "round00001_client000000.pt"
    torch.save(_apply(m), path)
    items = check_reader("captured updates (fields)", lambda: load_captured(folder), path)
    if items is not None:
        (c,) = items
        assert all(torch.isfinite(t).all() for t in c.update.values()) and c.batch >= 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(byte_mutation(len(REAL)))
def test_byte_mutations_of_a_real_capture(tmp_path, m):
    folder = fresh(tmp_path)
    path = folder / "round00001_client000000.pt"
    path.write_bytes(mutate_bytes(REAL, m))
    check_reader("captured updates (bytes)", lambda: load_captured(folder), path)
