"""One validation for what is written and what is read (issue #30, item 4), as checkpoint headers
have (test_checkpoint_header.py): a NetX file goes through :func:`neurofl.deploy.netx.check_netx`
(and the layer checks, :func:`neurofl.deploy.netx.read_layers`) when ``export`` writes it and when
``verify`` reads it; a captured update goes through :func:`neurofl.federated.capture.check_captured`
when ``fl`` writes it and when ``attack --updates`` reads it. What the reader refuses, the writer
refuses before any file is written; what the writer writes reads back."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import h5py
import pytest
import torch

from neurofl.data import load_dataset, split_dataset
from neurofl.deploy import netx
from neurofl.deploy.export import export_netx
from neurofl.errors import UserError
from neurofl.federated.capture import CapturedUpdate, file_name, load_captured, save_captured
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile

ARCH = Architecture((1, 8, 8), 10, hidden=(16,))
META = {"dataset": "digits", "seed": 0, "slayer_accuracy": 0.5}


@pytest.fixture(scope="module")
def digits():
    return split_dataset(load_dataset("digits"), 0).clients


@pytest.fixture(scope="module")
def snn():
    return build_model("snn", ARCH, load_profile("loihi2"), seed=0).eval()


def _export(model, path: Path, digits, **meta) -> None:
    export_netx(model, path, torch.from_numpy(digits.x[:40]), {**META, **meta})


def _refusal(e: pytest.ExceptionInfo, path: Path) -> str:
    """The message without the file's name (the writer and the reader name different files)."""
    return str(e.value).replace(str(path), "FILE")


# ---------------------------------------------------------------------------------------------
# NetX


def test_an_exported_netx_file_reads_back(tmp_path, snn, digits):
    path = tmp_path / "m.net"
    _export(snn, path, digits)
    nf = netx.read_netx(path)
    assert nf.header["slayer_accuracy"] == 0.5 and nf.header["seed"] == 0
    assert nf.widths == (64, 16, 10) and nf.arch == ARCH and nf.profile == snn.profile
    assert [p.name for p in tmp_path.iterdir()] == ["m.net"]  # no temp file left beside it


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({"slayer_accuracy": float("nan")}, "slayer_accuracy"),
        ({"slayer_accuracy": 1.5}, "slayer_accuracy"),
        ({"seed": -1}, "seed"),
        ({"time_steps": 7}, "time_steps"),
    ],
)
def test_export_refuses_before_writing_what_verify_refuses(tmp_path, snn, digits, meta, needle):
    written = tmp_path / "w" / "m.net"
    with pytest.raises(UserError, match=needle) as on_write:
        _export(snn, written, digits, **meta)
    assert not written.parent.exists() or not any(written.parent.iterdir())  # nothing written, no temp file
    # the same header edited into a valid file is refused by the reader with the same line
    read = tmp_path / "r.net"
    _export(snn, read, digits)
    with h5py.File(read, "a") as f:
        header = json.loads(f["neurofl"].attrs["header"])
        f["neurofl"].attrs["header"] = json.dumps({**header, **meta})
    with pytest.raises(UserError, match=needle) as on_read:
        netx.read_netx(read)
    assert _refusal(on_write, written) == _refusal(on_read, read)
    assert "\n" not in str(on_write.value)


def test_export_runs_the_readers_layer_checks(tmp_path, snn, digits, monkeypatch):
    """A file the reader's layer checks refuse (here: more bytes than it reads) is not written."""
    ok = tmp_path / "ok.net"
    _export(snn, ok, digits)
    monkeypatch.setattr(netx, "MAX_DATASET_BYTES", 1000)
    with pytest.raises(UserError, match="claim more than") as on_read:
        netx.read_netx(ok)
    written = tmp_path / "w" / "m.net"
    with pytest.raises(UserError, match="claim more than") as on_write:
        _export(snn, written, digits)
    assert not written.parent.exists() or not any(written.parent.iterdir())
    assert _refusal(on_write, written) == _refusal(on_read, ok)


def test_export_from_the_command_line_refuses_in_one_line_and_writes_nothing(tmp_path, snn, capsys):
    """`neurofl export` of a checkpoint whose model the reader would refuse: exit 2, one line."""
    from neurofl.models.checkpoint import save_checkpoint
    from neurofl_testing.cli import run_captured

    ck = tmp_path / "m.pt"
    save_checkpoint(ck, snn, "snn", ARCH, snn.profile, "digits", 0.5, {"seed": 0})
    out = tmp_path / "out" / "m.net"
    code, _, err = run_captured(capsys, "export", str(ck), "--out", str(out))
    assert code == 0, err
    assert netx.read_netx(out).header["checkpoint"] == str(ck)
    for p in out.parent.iterdir():
        p.unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(netx, "MAX_DATASET_BYTES", 1000)
        code, _, err = run_captured(capsys, "export", str(ck), "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(out) in err, err
    assert not any(out.parent.iterdir())


# ---------------------------------------------------------------------------------------------
# Captured updates


def _capture(digits, **edits) -> CapturedUpdate:
    prof = load_profile("float32")
    arch = Architecture((1, 8, 8), 10)
    model = build_model("ann", arch, prof, seed=0)
    x, y = torch.from_numpy(digits.x[:2]), torch.from_numpy(digits.y[:2])
    update = {k: v.detach().mean(0, keepdim=True) for k, v in per_sample_gradients(model, x, y).items()}
    item = CapturedUpdate(
        round=1, client=3, profile="float32", dataset="digits", model_kind="ann", arch=arch,
        state_dict=model.state_dict(), update=update, kind="gradient", batch=2, local_steps=1, lr=0.1,
        true_inputs=x, true_labels=y,
    )  # fmt: skip
    return dataclasses.replace(item, **edits)


def test_a_saved_capture_reads_back(tmp_path, digits):
    item = _capture(digits)
    save_captured(tmp_path, item)
    (back,) = load_captured(tmp_path)
    assert (back.round, back.client, back.batch, back.lr, back.kind, back.arch) == (1, 3, 2, 0.1, "gradient", item.arch)
    for name, t in item.update.items():
        assert torch.equal(back.update[name], t)
    assert torch.equal(back.true_inputs, item.true_inputs) and torch.equal(back.true_labels, item.true_labels)


def _bad_cases(digits) -> list[tuple[str, dict]]:
    good = _capture(digits)
    nan_update = {k: torch.full_like(v, float("nan")) for k, v in good.update.items()}
    return [
        ("lr", {"lr": float("nan")}),
        ("lr", {"lr": 1e9}),
        ("batch", {"batch": 0, "true_inputs": good.true_inputs[:0], "true_labels": good.true_labels[:0]}),
        ("true_inputs", {"batch": 3}),
        ("true_labels outside", {"true_labels": good.true_labels + 100}),
        ("NaN", {"update": nan_update}),
        ("local_steps", {"local_steps": 0}),
        ("provenance|recorded together", {"seed": 3}),
    ]


@pytest.mark.parametrize("case", range(8))
def test_save_refuses_before_writing_what_load_refuses(tmp_path, digits, case):
    needle, edits = _bad_cases(digits)[case]
    folder = tmp_path / "updates"
    bad = _capture(digits, **edits)
    with pytest.raises(UserError, match=needle) as on_write:
        save_captured(folder, bad)
    assert not folder.exists()  # no file, not even the folder
    # the same payload written past the check is refused by the reader with the same line
    good = tmp_path / "good"
    save_captured(good, _capture(digits))
    path = good / file_name(1, 3)
    payload = torch.load(path, weights_only=True)
    payload.update({k: v for k, v in edits.items()})
    torch.save(payload, path)
    with pytest.raises(UserError, match=needle) as on_read:
        load_captured(good)
    assert _refusal(on_write, folder / file_name(1, 3)) == _refusal(on_read, path)
    assert "\n" not in str(on_write.value)


def test_the_message_names_the_file_and_the_field(tmp_path, digits):
    with pytest.raises(UserError) as e:
        save_captured(tmp_path / "u", _capture(digits, lr=float("inf")))
    assert re.match(rf"{re.escape(str(tmp_path / 'u' / file_name(1, 3)))}: 'lr' must be", str(e.value))
