"""Nothing lost: `neurofl train` and `neurofl fl` interrupted (SIGKILL, Ctrl-C) and rerun with the same
--out end with exactly the model (and history) of an uninterrupted run.

No test depends on how fast anything runs. The child is the real CLI in a real process, with one
change: right after it saves its first unit of progress (epoch 1, round 1) it creates a marker file
and waits. The test waits for that marker (an event; the deadline only guards against a hang), then
sends the signal, so the signal always arrives at the same point of the run, however loaded the
machine is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from neurofl.cli import INTERRUPTED
from neurofl.data import load_dataset, split_dataset
from neurofl.errors import UserError
from neurofl.models import Architecture
from neurofl.profiles import load_profile
from neurofl.train import train_model

HANG_GUARD = 1200  # seconds; only a child that never reaches its first save runs into it (load slows, not hangs)

# The child: the real CLI, whose progress-saving function also creates MARKER and then waits for
# a signal (SIGKILL ends it; SIGINT raises KeyboardInterrupt there, as Ctrl-C would mid-run).
# Each child first installs Python's own SIGINT handler: a test run started in the background (nohup,
# `&`) inherits SIGINT as ignored, and Python then installs none; a terminal's Ctrl-C always has it.
PAUSING_CLI = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path
marker, module, name = sys.argv[1:4]
sys.argv = ["neurofl", *sys.argv[4:]]
import importlib
mod = importlib.import_module(module)
original = getattr(mod, name)
def save_then_wait(*args, **kwargs):
    original(*args, **kwargs)
    Path(marker).touch()
    while True:
        signal.pause()
setattr(mod, name, save_then_wait)
from neurofl.cli import main
main()
"""
TRAIN_SAVE = ("neurofl.train", "_save_state")
FL_SAVE = ("neurofl.federated.history", "save_checkpoint")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _interrupt_after_first_save(tmp_path: Path, save: tuple[str, str], argv: list[str], sig: int) -> tuple[int, str]:
    """Run the CLI until its first save, send ``sig``; return its exit code and stderr."""
    marker = tmp_path / "saved.marker"
    cmd = [sys.executable, "-c", PAUSING_CLI, str(marker), *save, *argv]
    err_path = tmp_path / "child.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=_env())
        try:
            deadline = time.monotonic() + HANG_GUARD
            while not marker.exists():
                if proc.poll() is not None:
                    pytest.fail(f"the child ended (exit {proc.returncode}) before saving: {err_path.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail("the child never saved its first unit of progress")
                time.sleep(0.05)
            proc.send_signal(sig)
            code = proc.wait(timeout=HANG_GUARD)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, err_path.read_text()


def _run_json(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, capture_output=True, env=_env(), timeout=HANG_GUARD, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.timeout(HANG_GUARD * 2)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_train_interrupted_then_rerun_gives_the_uninterrupted_model(tmp_path, sig):
    out = tmp_path / "run" / "m.pt"
    argv = ["train", "--epochs", "3", "--seed", "2", "--out", str(out), "--json"]
    code, err = _interrupt_after_first_save(tmp_path, TRAIN_SAVE, argv, sig)
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:  # Ctrl-C: exit 130, the one resume hint, no traceback
        assert code == 130 and err.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in err, err
    assert not out.exists() and not list(out.parent.glob(".*"))  # no final file, no temp file left
    assert out.with_name("m.pt.resume").exists()
    summary = _run_json([sys.executable, "-m", "neurofl", *argv])
    assert summary["resumed_from"] == 1  # the signal always came right after epoch 1 was saved
    assert not out.with_name("m.pt.resume").exists()  # progress file removed once the model is saved
    # reference: the same command uninterrupted, in a process like the child's (one thread: a torch
    # process with more threads may sum in another order, which is not what this test is about)
    ref_out = tmp_path / "ref" / "m.pt"
    ref = _run_json([sys.executable, "-m", "neurofl", *argv[:-3], "--out", str(ref_out), "--json"])
    assert ref["resumed_from"] == 0 and summary["history"] == ref["history"]
    assert _states_equal(torch.load(out, weights_only=True)["state_dict"],
                         torch.load(ref_out, weights_only=True)["state_dict"])  # fmt: skip


def _digits():
    splits = split_dataset(load_dataset("digits"), 0)
    return splits, Architecture(splits.clients.input_shape, splits.clients.classes, hidden=(16,))


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


@pytest.mark.timeout(HANG_GUARD * 2)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_fl_interrupted_then_rerun_gives_the_uninterrupted_run(tmp_path, sig):
    out = tmp_path / "run"
    argv = ["fl", "--clients", "4", "--rounds", "6", "--seed", "1", "--out", str(out), "--json"]
    code, err = _interrupt_after_first_save(tmp_path, FL_SAVE, argv, sig)
    if sig == signal.SIGINT:
        assert code == 130 and err.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in err, err
    assert (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()
    assert not list(out.glob(".*.tmp"))
    summary = _run_json([sys.executable, "-m", "neurofl", *argv])
    assert summary["resumed_from"] == 1
    # reference: the same command uninterrupted, in a process like the child's
    ref = tmp_path / "ref"
    assert _run_json([sys.executable, "-m", "neurofl", *argv[:-3], "--out", str(ref), "--json"])["resumed_from"] == 0
    assert _history(out) == _history(ref)
    a = torch.load(ref / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert _states_equal(a, b)


# Ctrl-C while lava is still being imported (the first seconds of every command): the child sends
# itself SIGINT from inside that import.
INTERRUPTED_IMPORT = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
class Finder:
    def find_spec(self, name, path=None, target=None):
        if name == "lava.lib.dl.slayer":
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Finder())
sys.argv = ["neurofl", "profiles", "list"]
import runpy
runpy.run_module("neurofl", run_name="__main__")
"""


def test_ctrl_c_during_the_lava_import_exits_130_with_one_line():
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_IMPORT], capture_output=True, text=True,
                          env=_env(), timeout=HANG_GUARD)  # fmt: skip
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines() == [INTERRUPTED] and done.stdout == ""
