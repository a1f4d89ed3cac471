"""Bad input on the command line paths of train / export / verify / fl: exit code 2, one line on
stderr naming what is wrong, no traceback, nothing written under --out."""

from __future__ import annotations

import struct

import pytest

from neurofl.cli import run

from .conftest import write_mnist_tree


@pytest.fixture
def hostile(tmp_path):
    import numpy as np

    (tmp_path / "bad_profile.toml").write_text('name = "x"\n[weights]\nbits = 0\n')
    (tmp_path / "bad_fl.toml").write_text("clients = -3\nrounds = 1\n")
    (tmp_path / "nan.toml").write_text("clients = 2\nrounds = nan\n")
    (tmp_path / "empty.net").write_bytes(b"")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    write_mnist_tree(tmp_path / "data" / "mnist", np.random.default_rng(0), compress=False)
    # a labels file whose header claims 10^9 labels over 4 bytes of data
    (tmp_path / "data" / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 8, 1]) + struct.pack(">I", 10**9) + bytes(4)
    )
    return tmp_path


CASES = {
    "train: profile with 0 weight bits": (["train", "--profile", "{d}/bad_profile.toml"], "bad_profile.toml"),
    "train: zero epochs": (["train", "--epochs", "0"], "--epochs"),
    "train: unknown dataset": (["train", "--dataset", "nope"], "nope"),
    "train: hostile IDX file": (["train", "--dataset", "mnist", "--data-dir", "{d}/data"], "t10k-labels-idx1-ubyte"),
    "export: not a checkpoint": (["export", "{d}/text.pt"], "text.pt"),
    "export: missing checkpoint": (["export", "{d}/missing.pt"], "missing.pt"),
    "verify: empty file": (["verify", "{d}/empty.net"], "empty.net"),
    "fl: negative clients in config": (["fl", "--config", "{d}/bad_fl.toml"], "bad_fl.toml"),
    "fl: NaN in config": (["fl", "--config", "{d}/nan.toml"], "nan.toml"),
    "fl: zero clients": (["fl", "--clients", "0", "--rounds", "1"], "clients"),
    "fl: bad capture rounds": (["fl", "--clients", "2", "--rounds", "1", "--capture-rounds", "x"], "capture-rounds"),
    "fl: hostile profile": (["fl", "--clients", "2", "--rounds", "1", "--profile", "{d}/bad_profile.toml"], "bad_pr"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_with_one_line(hostile, capsys, case):
    argv, needle = CASES[case]
    out = hostile / "out" / ("m.net" if argv[0] == "export" else "m.pt" if argv[0] == "train" else "run")
    argv = [a.format(d=hostile) for a in argv]
    if argv[0] in ("train", "export", "fl"):
        argv += ["--out", str(out)]
    code = run([*argv, "--json"])
    stdout, err = capsys.readouterr()
    assert code == 2, err
    assert stdout == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], err
    assert not (hostile / "out").exists()
