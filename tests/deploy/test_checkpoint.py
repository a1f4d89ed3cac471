"""Checkpoints: exact round trip, weights_only loading, and refusal of mismatched headers."""

from __future__ import annotations

import json

import pytest
import torch

from neurofl.errors import UserError
from neurofl.models import Architecture
from neurofl.models.checkpoint import load_checkpoint, save_checkpoint
from neurofl.profiles import load_profile


@pytest.fixture()
def saved(trained_loihi2, tmp_path):
    r = trained_loihi2
    path = tmp_path / "m.pt"
    save_checkpoint(path, r.model, "snn", r.arch, r.profile, "digits", r.accuracy, {"seed": 0})
    return path


def test_round_trip_gives_identical_outputs(saved, trained_loihi2, digits_splits):
    ck = load_checkpoint(saved, profile=load_profile("loihi2"), arch=trained_loihi2.arch, kind="snn")
    x = torch.from_numpy(digits_splits.test.x[:50])
    assert torch.equal(ck.model(x), trained_loihi2.model(x))
    assert ck.header["profile"]["name"] == "loihi2" and ck.header["dataset"] == "digits"
    assert ck.accuracy == trained_loihi2.accuracy
    assert {"torch", "lava-dl", "lava-nc", "neurofl"} <= set(ck.header["versions"])


def test_file_is_loadable_with_weights_only(saved):
    payload = torch.load(saved, weights_only=True)
    assert json.loads(payload["header"])["kind"] == "snn"


def test_refuses_other_profile_arch_or_kind(saved, trained_loihi2):
    with pytest.raises(UserError, match="profile 'loihi2'.*'loihi1'"):
        load_checkpoint(saved, profile=load_profile("loihi1"))
    with pytest.raises(UserError, match="architecture"):
        load_checkpoint(saved, arch=Architecture((1, 8, 8), 10, hidden=(7,)))
    with pytest.raises(UserError, match="'snn' model, not 'ann'"):
        load_checkpoint(saved, kind="ann")


def test_refuses_truncated_foreign_and_pickled_files(saved, tmp_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(saved.read_bytes()[:200])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    pickled = tmp_path / "pickled.pt"
    torch.save({"header": "{}", "state_dict": {}, "obj": Architecture((1,), 2)}, pickled)
    for path, msg in (
        (cut, "not a readable checkpoint"),
        (foreign, "not a neurofl checkpoint"),
        (pickled, "not a readable checkpoint"),
        (tmp_path / "missing.pt", "no such file"),
    ):
        with pytest.raises(UserError, match=msg) as e:
            load_checkpoint(path)
        assert "\n" not in str(e.value)


def test_conv_architecture_round_trips(tmp_path, digits_splits):
    from neurofl.models import build_model
    from neurofl.models.conv import ConvArchitecture

    arch = ConvArchitecture((1, 8, 8), 10, channels=3, kernel=3, strides=(2,))
    p = load_profile("loihi2")
    model = build_model("snn", arch, p, seed=2)
    save_checkpoint(tmp_path / "c.pt", model, "snn", arch, p, "digits", 0.1)
    ck = load_checkpoint(tmp_path / "c.pt", profile=p, arch=arch, kind="snn")
    x = torch.from_numpy(digits_splits.test.x[:8])
    assert ck.arch == arch and torch.equal(ck.model(x), model(x))
