"""`neurofl train | export | verify` end to end, and bad input: exit 2, one line, nothing written."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from neurofl.cli import main
from neurofl_testing.cli import run_captured as run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A loihi2 SNN checkpoint, an ANN checkpoint and the SNN's NetX export, made through the CLI."""
    folder = tmp_path_factory.mktemp("cli")
    paths = {"snn": folder / "snn.pt", "ann": folder / "ann.pt", "net": folder / "snn.net"}
    for kind in ("snn", "ann"):
        main(["train", "--model", kind, "--profile", "loihi2", "--epochs", "2", "--out", str(paths[kind]), "--json"])
    main(["export", str(paths["snn"]), "--out", str(paths["net"]), "--json"])
    return paths


def test_train_export_verify_json(files, capsys, tmp_path):
    code, out, _ = run(
        capsys, "train", "--profile", "loihi1", "--epochs", "1", "--out", str(tmp_path / "m.pt"), "--json"
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["profile"] == "loihi1" and len(summary["history"]) == 1 and 0 <= summary["test_accuracy"] <= 1
    code, out, _ = run(capsys, "export", str(files["snn"]), "--out", str(tmp_path / "m.net"), "--json")
    assert code == 0 and json.loads(out)["fit"]["resources"]["problems"] == []
    code, out, err = run(capsys, "verify", str(files["net"]), "--samples", "6", "--json")
    assert code == 0, err
    result = json.loads(out)
    parity = result["parity"]
    assert parity["samples"] == 6 and parity["spike_agreement_chip_grid"] == 1.0
    assert result["resources"]["energy_per_inference"]["unit"] == "uJ"


def _bad_files(folder, net):
    truncated = folder / "truncated.net"
    truncated.write_bytes(net.read_bytes()[:2000])
    text = folder / "text.net"
    text.write_text("not hdf5\n")
    empty = folder / "nolayers.net"
    with h5py.File(empty, "w") as f:
        f.create_group("something")
    conv = folder / "conv.net"
    conv.write_bytes(net.read_bytes())
    with h5py.File(conv, "a") as f:
        del f["layer/1/type"]
        f["layer/1"].create_dataset("type", (1,), "S10", [b"conv"])
    wrong_width = folder / "width.net"
    wrong_width.write_bytes(net.read_bytes())
    with h5py.File(wrong_width, "a") as f:
        w = f["layer/2/weight"][()]
        del f["layer/2/weight"]
        f["layer/2"].create_dataset("weight", data=np.zeros((w.shape[0], w.shape[1] - 1)))
    return [
        (truncated, "not a readable HDF5"),
        (text, "not a readable HDF5"),
        (empty, "no /layer"),
        (conv, "a 'dense' layer after a 'conv' layer"),
        (wrong_width, "previous layer has"),
    ]


def test_bad_input_exits_2_with_one_line(files, capsys, tmp_path, monkeypatch):
    from neurofl.data import registry
    from neurofl.data.base import Dataset, DatasetInfo

    def tiny(_dir, _download):
        rng = np.random.default_rng(0)
        return Dataset("tiny", rng.random((40, 1, 4, 4), dtype=np.float32), np.arange(40) % 10, 10, "image", "test")

    monkeypatch.setitem(registry.DATASETS, "tiny", DatasetInfo("tiny", "test", True, tiny, "1x4x4", "10"))
    cases = [(("verify", str(p), "--samples", "2"), msg) for p, msg in _bad_files(tmp_path, files["net"])]
    cases += [
        (("verify", str(files["net"]), "--profile", "loihi1"), "built for profile 'loihi2'"),
        (("verify", str(files["net"]), "--dataset", "tiny", "--samples", "2"), "shape (1, 4, 4)"),
        (("export", str(files["snn"]), "--profile", "loihi1", "--out", str(tmp_path / "x.net")), "profile 'loihi2'"),
        (("export", str(files["ann"]), "--out", str(tmp_path / "x.net")), "only SNNs"),
        (("export", str(tmp_path / "text.net"), "--out", str(tmp_path / "x.net")), "not a readable checkpoint"),
    ]
    for argv, msg in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2, (argv, err)
        assert msg in err and err.count("\n") == 1 and "Traceback" not in err and out == "", (argv, err)
    assert not (tmp_path / "x.net").exists() and list(tmp_path.glob(".x.net*")) == []
