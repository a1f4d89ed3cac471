"""Run identity by content and the run-folder guard."""

import doctest
import json

import numpy as np
import pytest

import neurofl.runs.identity as identity
import neurofl.runs.runfolder as runfolder
from neurofl.errors import UserError
from neurofl.runs.runfolder import RunFolder


@pytest.mark.parametrize("module", [identity, runfolder])
def test_doctests(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


def test_same_name_other_numbers_is_another_identity():
    from neurofl.profiles import load_profile

    p = load_profile("loihi2")
    import dataclasses

    q = dataclasses.replace(p, simulation=dataclasses.replace(p.simulation, time_steps=17))
    assert p.name == q.name
    assert identity.config_identity(p) != identity.config_identity(q)
    assert identity.config_identity(p) == identity.config_identity(load_profile("loihi2"))


def test_dataset_identity_follows_the_arrays():
    from neurofl.data.base import Dataset

    x = np.zeros((4, 1, 2, 2), np.float32)
    y = np.arange(4)
    a = identity.dataset_identity(Dataset("d", x, y, 4, "image", "test"))
    x2 = x.copy()
    x2[0, 0, 0, 0] = 1e-7
    b = identity.dataset_identity(Dataset("d", x2, y, 4, "image", "test"))
    assert a["sha256"] != b["sha256"] and a["name"] == b["name"]


@pytest.mark.parametrize("name", ["..", ".", "../../x", "/etc/passwd", "a/b", "", "\x00", "é" * 300])
def test_path_components_never_escape(tmp_path, name):
    run = RunFolder(tmp_path / "run", {})
    p = run.path("rows", name, "chunk")
    assert p.resolve().is_relative_to((tmp_path / "run").resolve())
    assert len(p.relative_to(tmp_path / "run").parts) == 3


def test_refused_run_leaves_nothing(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(UserError), RunFolder(out, {"a": 1}):
        raise UserError("bad input found after the claim")
    assert not out.exists()
    out.mkdir()
    (out / "mine.txt").write_text("kept")
    with pytest.raises(UserError), RunFolder(out, {"a": 1}):
        raise UserError("bad")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


def test_other_fingerprint_is_refused_and_same_resumes(tmp_path):
    with RunFolder(tmp_path, {"seed": 0, "x": 1}) as run:
        run.path("rows").mkdir()
    assert json.loads((tmp_path / "config.json").read_text()) == {"seed": 0, "x": 1}
    RunFolder(tmp_path, {"seed": 0, "x": 1}).claim()
    with pytest.raises(UserError, match=r"different settings \(seed\)"):
        RunFolder(tmp_path, {"seed": 1, "x": 1}).claim()


@pytest.mark.parametrize("bad", ["/proc/neurofl", "/sys/x", "file"])
def test_out_that_cannot_hold_a_run(tmp_path, bad):
    (tmp_path / "file").write_text("")
    target = tmp_path / bad if bad == "file" else bad
    with pytest.raises(UserError, match="--out"):
        RunFolder(target, {}).claim()
