"""Hostile checkpoints: mutations of a real checkpoint written by neurofl.train either load or fail
with one UserError line naming the file; nothing pickled runs; `neurofl export` exits 2."""

from __future__ import annotations

import io
import json
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurofl.cli import run
from neurofl.data import load_dataset, split_dataset
from neurofl.models import Architecture
from neurofl.models.checkpoint import load_checkpoint, save_checkpoint
from neurofl.profiles import load_profile
from neurofl.train import train_model

from .conftest import byte_mutation, check_reader, mutate_bytes


def _real_checkpoint() -> bytes:
    splits = split_dataset(load_dataset("digits"), 0)
    arch = Architecture(splits.clients.input_shape, splits.clients.classes, hidden=(16,))
    res = train_model("snn", arch, load_profile("loihi2"), splits.clients, splits.test, 1, seed=0)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.pt"
        save_checkpoint(path, res.model, "snn", arch, res.profile, "digits", res.accuracy, {"seed": 0})
        return path.read_bytes()


REAL = _real_checkpoint()
PAYLOAD = torch.load(io.BytesIO(REAL), weights_only=True)
HEADER = json.loads(PAYLOAD["header"])
NAMES = sorted(PAYLOAD["state_dict"])
HOSTILE = [None, -1, 0, 10**12, "x", [], {}, 1e308, True, float("nan"), [10**9, 10**9], [0], {"threshold": -1}]
TENSORS = [
    torch.tensor(float("nan")),
    torch.full((16, 64, 1, 1, 1), float("inf")),
    torch.zeros(3, 3),
    torch.zeros(16, 64, 1, 1, 1, dtype=torch.complex64),
    torch.zeros(16, 64, 1, 1, 1, dtype=torch.int64),
    torch.zeros(0),
]

structured = st.one_of(
    st.tuples(st.just("header_drop"), st.sampled_from(sorted(HEADER))),
    st.tuples(st.just("header_set"), st.sampled_from(sorted(HEADER)), st.integers(0, len(HOSTILE) - 1)),
    st.tuples(st.just("arch_set"), st.sampled_from(sorted(HEADER["architecture"])), st.integers(0, len(HOSTILE) - 1)),
    st.tuples(st.just("profile_set"), st.sampled_from(sorted(HEADER["profile"])), st.integers(0, len(HOSTILE) - 1)),
    st.tuples(st.just("tensor"), st.sampled_from(NAMES), st.integers(0, len(TENSORS) - 1)),
    st.tuples(st.just("state_drop"), st.sampled_from(NAMES)),
    st.tuples(st.just("state_extra"), st.sampled_from(["x", "blocks.9.synapse.weight"])),
    st.tuples(st.just("payload"), st.sampled_from(["list", "header_bytes", "header_json_list", "no_state"])),
)


def _apply(m: tuple) -> object:
    header = json.loads(PAYLOAD["header"])
    state = dict(PAYLOAD["state_dict"])
    op = m[0]
    if op == "header_drop":
        del header[m[1]]
    elif op == "header_set":
        header[m[1]] = HOSTILE[m[2]]
    elif op == "arch_set":
        header["architecture"][m[1]] = HOSTILE[m[2]]
    elif op == "profile_set":
        header["profile"][m[1]] = HOSTILE[m[2]]
    elif op == "tensor":
        state[m[1]] = TENSORS[m[2]]
    elif op == "state_drop":
        del state[m[1]]
    elif op == "state_extra":
        state[m[1]] = torch.zeros(2)
    elif m[1] == "list":
        return [1, 2, 3]
    elif m[1] == "header_bytes":
        return {"header": b"{}", "state_dict": state}
    elif m[1] == "header_json_list":
        return {"header": "[1, 2]", "state_dict": state}
    elif m[1] == "no_state":
        return {"header": json.dumps(header)}
    return {"header": json.dumps(header, allow_nan=True), "state_dict": state}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(structured)
def test_structured_mutations_of_a_real_checkpoint(tmp_path, m):
    path = tmp_path / "c.pt"
    torch.save(_apply(m), path)
    ck = check_reader("checkpoint (payload mutations)", lambda: load_checkpoint(path), path)
    if ck is not None:
        assert all(torch.isfinite(p).all() for p in ck.model.parameters())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(byte_mutation(len(REAL)))
def test_byte_mutations_of_a_real_checkpoint(tmp_path, m):
    path = tmp_path / "c.pt"
    path.write_bytes(mutate_bytes(REAL, m))
    check_reader("checkpoint (byte mutations)", lambda: load_checkpoint(path), path)


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_code_never_runs(tmp_path):
    """A checkpoint whose pickle calls Path.touch: refused, and the marker file never appears."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"header": "{}", "state_dict": _RunsCode(marker)}, path)
    assert check_reader("checkpoint (targeted)", lambda: load_checkpoint(path), path) is None
    # the same payload as a bare pickle inside torch's zip layout
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(_RunsCode(marker)))
        z.writestr("archive/version", "3\n")
    path.write_bytes(raw.getvalue())
    assert check_reader("checkpoint (targeted)", lambda: load_checkpoint(path), path) is None
    assert not marker.exists()


def test_export_cli_prints_one_line_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "bad.pt"
    torch.save(_apply(("tensor", NAMES[-1], 1)), path)
    out = tmp_path / "m.net"
    assert run(["export", str(path), "--out", str(out), "--json"]) == 2
    stdout, err = capsys.readouterr()
    assert stdout == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and str(path) in err and "NaN" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [path]
