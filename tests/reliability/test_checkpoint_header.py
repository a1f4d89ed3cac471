"""One validation for what is written and what is read: a checkpoint header goes through
:func:`neurofl.models.checkpoint.check_header` on write and on read, so ``train`` refuses (before
training, or before writing) what the loader refuses later, and a profile whose name is a shipped
one but whose numbers are not is labelled by its content, never as the shipped chip."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neurofl.data import Dataset
from neurofl.errors import UserError
from neurofl.models import Architecture, build_model
from neurofl.models.checkpoint import (
    check_header,
    check_trainable,
    label_by_content,
    load_checkpoint,
    profile_to_dict,
    save_checkpoint,
)
from neurofl.profiles import load_profile
from neurofl_testing.cli import run_captured

ARCH = Architecture((1, 8, 8), 10, hidden=(8,))


def _ds(n: int, classes: int = 10) -> Dataset:
    return Dataset("t", np.zeros((n, 1, 8, 8), np.float32), np.arange(n) % classes, classes, "image", "test")


def _save(path: Path, profile_name: str = "loihi2", accuracy: float | None = 0.5, **edits: dict) -> dict:
    profile = load_profile(profile_name)
    for section, values in edits.items():
        profile = dataclasses.replace(profile, **{section: dataclasses.replace(getattr(profile, section), **values)})
    model = build_model("snn", ARCH, profile, seed=0)
    return save_checkpoint(path, model, "snn", ARCH, profile, "digits", accuracy, {"seed": 0})


@pytest.mark.parametrize("accuracy", [float("nan"), float("inf"), -0.1, 1.5])
def test_save_refuses_what_load_refuses_and_writes_nothing(tmp_path: Path, accuracy: float) -> None:
    with pytest.raises(UserError, match="accuracy"):
        _save(tmp_path / "m.pt", accuracy=accuracy)
    assert not (tmp_path / "m.pt").exists()


def test_save_and_load_run_the_same_check(tmp_path: Path) -> None:
    header = _save(tmp_path / "m.pt")
    on_write = check_header(json.loads(json.dumps(header)), "x")
    on_read = load_checkpoint(tmp_path / "m.pt")
    assert (on_write.kind, on_write.arch, on_write.profile, on_write.dataset, on_write.accuracy) == (
        on_read.kind, on_read.arch, on_read.profile, on_read.dataset, on_read.accuracy)  # fmt: skip


@pytest.mark.parametrize(
    ("train", "test", "needle"),
    [(_ds(0), _ds(5), "no samples"), (_ds(10, 1), _ds(5), "1 class"), (_ds(30), _ds(0), "test split is empty")],
)
def test_train_refuses_before_training_what_the_header_cannot_hold(train: Dataset, test: Dataset, needle: str) -> None:
    with pytest.raises(UserError, match=needle):
        check_trainable(ARCH, train, test, "dataset 't'")
    with pytest.raises(UserError, match="2 or more"):
        check_trainable(dataclasses.replace(ARCH, classes=1), _ds(30), _ds(10), "dataset 't'")


def test_a_shipped_name_with_other_numbers_is_labelled_by_content(tmp_path: Path) -> None:
    header = _save(tmp_path / "m.pt", "loihi1", simulation={"time_steps": 12})
    name = header["profile"]["name"]
    assert name.startswith("loihi1~") and len(name) == len("loihi1~") + 8
    ck = load_checkpoint(tmp_path / "m.pt")
    assert ck.profile.name == name and ck.profile.simulation.time_steps == 12
    # a header edited by hand (the writer bypassed) is relabelled on read the same way
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    h = json.loads(payload["header"])
    h["profile"]["name"] = "loihi1"
    torch.save({**payload, "header": json.dumps(h)}, tmp_path / "edited.pt")
    assert load_checkpoint(tmp_path / "edited.pt").profile.name == name
    # the shipped numbers keep the shipped name, texts aside
    shipped = load_profile("loihi1")
    assert label_by_content(shipped) is shipped
    assert label_by_content(dataclasses.replace(shipped, description="mine")).name == "loihi1"
    # a name no shipped profile has is kept whatever its numbers
    assert label_by_content(dataclasses.replace(shipped, name="mychip")).name == "mychip"
    assert profile_to_dict(ck.profile)["name"] == name


def test_evaluate_labels_the_row_by_content(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header = _save(tmp_path / "m.pt", "loihi1", simulation={"time_steps": 12})
    code, out, err = run_captured(capsys, "attack", "--model", str(tmp_path / "m.pt"), "--victims", "1", "--iterations",
                                  "2", "--recipe", "idlg", "--json")  # fmt: skip
    assert code == 0, err
    assert header["profile"]["name"] in out and '"loihi1"' not in out


def test_an_import_without_a_dataset_exports_with_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``import --dataset none`` writes a header naming no dataset: ``export`` (NetX calibrates on a
    dataset's inputs) takes ``--dataset``, refuses without it, and refuses another dataset's width."""
    from neurofl_testing.nir_nets import write_float_snntorch_nir

    write_float_snntorch_nir(tmp_path / "g.nir")
    code, _, err = run_captured(capsys, "import", str(tmp_path / "g.nir"), "--dt", "1e-4", "--dataset", "none",
                                "--out", str(tmp_path / "m.pt"))  # fmt: skip
    assert code == 0, err
    code, _, err = run_captured(capsys, "export", str(tmp_path / "m.pt"), "--out", str(tmp_path / "a.net"))
    assert code == 2 and "--dataset" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_captured(capsys, "export", str(tmp_path / "m.pt"), "--dataset", "faces", "--out",
                                str(tmp_path / "b.net"))  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "b.net").exists()
    code, _, err = run_captured(capsys, "export", str(tmp_path / "m.pt"), "--dataset", "digits", "--out",
                                str(tmp_path / "c.net"))  # fmt: skip
    assert code == 0 and (tmp_path / "c.net").exists(), err
