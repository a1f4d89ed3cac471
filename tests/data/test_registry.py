import json

import pytest

from neurofl.cli import main
from neurofl.data.idx import DEBIAN_FASHION_MNIST
from neurofl.data.registry import available_datasets, load_dataset
from neurofl.errors import UserError

STUDY = {"digits", "faces", "dvs-digits", "mnist", "fashion-mnist", "cifar100", "lfw", "dvs128-gesture", "nmnist"}


def test_every_dataset_is_registered():
    reg = available_datasets()
    assert STUDY <= set(reg)
    assert {n for n, i in reg.items() if i.embedded} == {"digits", "faces", "dvs-digits"}


def test_cli_lists_availability(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NEUROFL_DATA", raising=False)
    (tmp_path / "cifar-100-python").mkdir()
    for f in ("train", "test", "meta"):
        (tmp_path / "cifar-100-python" / f).write_bytes(b"")
    main(["datasets", "list", "--json", "--data-dir", str(tmp_path)])  # returns on success
    out = json.loads(capsys.readouterr().out)["datasets"]
    assert out["cifar100"]["available"] and not out["mnist"]["available"] and out["faces"]["available"]
    assert out["fashion-mnist"]["available"] == DEBIAN_FASHION_MNIST.is_dir()


def test_on_disk_dataset_without_data_dir_is_a_user_error(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("NEUROFL_DATA", raising=False)
    with pytest.raises(UserError, match="NEUROFL_DATA"):
        load_dataset("cifar100")
    monkeypatch.setenv("NEUROFL_DATA", str(tmp_path))
    with pytest.raises(UserError, match="nmnist.*NMNIST/Train"):
        load_dataset("nmnist")
