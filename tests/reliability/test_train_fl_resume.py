"""Nothing lost: `neurofl train` and `neurofl fl` killed with SIGKILL mid-run and rerun with the same
--out end with exactly the model (and history) of an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from neurofl.data import load_dataset, split_dataset
from neurofl.errors import UserError
from neurofl.federated import fl_config
from neurofl.federated.engine import run_local
from neurofl.federated.task import make_task
from neurofl.models import Architecture, architecture_for
from neurofl.profiles import load_profile
from neurofl.train import train_model


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _kill_when(path: Path, cmd: list[str], timeout: float = 120) -> None:
    """Start ``cmd``, SIGKILL it as soon as ``path`` exists (a first unit of progress is saved)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, f"{cmd[3]} ended before saving progress"
        assert time.time() - t0 < timeout
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _run_json(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, check=True, capture_output=True, env=_env(), timeout=240, text=True)
    return json.loads(done.stdout)


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.timeout(240)
def test_train_sigkill_then_rerun_gives_the_uninterrupted_model(tmp_path):
    out = tmp_path / "killed" / "m.pt"
    cmd = [sys.executable, "-m", "neurofl", "train", "--epochs", "3", "--seed", "2", "--out", str(out), "--json"]
    _kill_when(out.with_name("m.pt.resume"), cmd)
    assert not out.exists() and not list(out.parent.glob(".*"))  # no final file, no temp file left
    summary = _run_json(cmd)
    assert summary["resumed_from"] >= 1
    assert not out.with_name("m.pt.resume").exists()  # progress file removed once the model is saved
    # reference: the same training uninterrupted, in process (what `neurofl train` runs)
    splits = split_dataset(load_dataset("digits"), 2)
    arch = architecture_for(splits.clients.input_shape, splits.clients.classes, "auto")
    ref = train_model("snn", arch, load_profile("loihi2"), splits.clients, splits.test, 3, seed=2)
    assert summary["history"] == [dataclasses.asdict(h) for h in ref.history]
    assert _states_equal(torch.load(out, weights_only=True)["state_dict"], ref.model.state_dict())


def _digits():
    splits = split_dataset(load_dataset("digits"), 0)
    return splits, Architecture(splits.clients.input_shape, splits.clients.classes, hidden=(16,))


@pytest.mark.timeout(120)
def test_train_interrupted_in_process_resumes_bit_for_bit(tmp_path):
    splits, arch = _digits()
    prof = load_profile("loihi2")
    ref = train_model("snn", arch, prof, splits.clients, splits.test, 3, seed=1)

    def stop_after_first(stats) -> None:
        if stats.epoch == 1:
            raise KeyboardInterrupt

    resume = tmp_path / "m.pt.resume"
    with pytest.raises(KeyboardInterrupt):
        train_model("snn", arch, prof, splits.clients, splits.test, 3, seed=1, on_epoch=stop_after_first, resume=resume)
    again = train_model("snn", arch, prof, splits.clients, splits.test, 3, seed=1, resume=resume)
    assert again.resumed_from == 1 and again.history == ref.history
    assert _states_equal(again.model.state_dict(), ref.model.state_dict())
    # the same file with other settings is refused, not silently mixed in
    with pytest.raises(UserError, match="other settings"):
        train_model("snn", arch, prof, splits.clients, splits.test, 3, seed=2, resume=resume)
    with pytest.raises(UserError, match="more than --epochs"):
        train_model("snn", arch, prof, splits.clients, splits.test, 2, seed=1, resume=resume)
    resume.write_bytes(b"garbage")
    with pytest.raises(UserError, match="remove it"):
        train_model("snn", arch, prof, splits.clients, splits.test, 3, seed=1, resume=resume)


def _history(out: Path) -> list[dict]:
    rows = json.loads((out / "history.json").read_text())["rounds"]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.timeout(240)
def test_fl_sigkill_then_rerun_gives_the_uninterrupted_run(tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "neurofl", "fl", "--clients", "4", "--rounds", "20", "--seed", "1",
           "--out", str(out), "--json"]  # fmt: skip
    _kill_when(out / "checkpoint.pt", cmd)
    assert not (out / "model.pt").exists()
    summary = _run_json(cmd)
    assert summary["resumed_from"] >= 1
    # reference: the same run uninterrupted, in process (what `neurofl fl --backend local` runs)
    ref = tmp_path / "ref"
    cfg = fl_config({"clients": 4, "rounds": 20, "seed": 1}, "test")
    run_local(make_task(load_dataset("digits"), "snn", load_profile("loihi2"), cfg), ref)
    assert _history(out) == _history(ref)
    a = torch.load(ref / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert _states_equal(a, b)
