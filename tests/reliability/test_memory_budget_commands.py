"""``--max-memory`` on ``train``, ``fl`` and ``verify`` (issue #30, item 2; neurofl/runs/memory.py):
work whose estimate exceeds the budget is refused before it starts, in one line naming
``--max-memory`` (exit 2, nothing written); what splits without changing its result (train's
evaluation, verify's samples) runs in chunks that fit, with the result of one chunk; tiny runs under
the default budget work as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from neurofl.data import load_dataset, split_dataset
from neurofl.deploy.netx import read_netx
from neurofl.deploy.parity import memory_chunk
from neurofl.errors import UserError
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile
from neurofl.runs import memory
from neurofl.train import TrainConfig, train_model
from neurofl_testing.cli import run_captured

NET = Path(__file__).resolve().parents[2] / "netx_models" / "digits_loihi2.net"


def _refused(code: int, err: str, *names: str) -> None:
    line = err.strip()
    assert code == 2, err
    assert line.startswith("error:") and "\n" not in line, err
    for name in ("--max-memory", *names):
        assert name in line, line


def _nothing_under(folder) -> None:
    assert not folder.exists() or not any(folder.rglob("*")), sorted(folder.rglob("*"))


def test_train_refuses_a_step_above_the_budget_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run" / "m.pt"
    code, stdout, err = run_captured(capsys, "train", "--epochs", "1", "--max-memory", "1M", "--out", str(out))
    _refused(code, err, "time steps")
    assert stdout == ""
    _nothing_under(tmp_path / "run")


def test_train_runs_under_the_default_budget(tmp_path, capsys):
    out = tmp_path / "m.pt"
    code, stdout, err = run_captured(capsys, "train", "--epochs", "1", "--out", str(out), "--json")
    assert code == 0, err
    assert json.loads(stdout)["history"][0]["epoch"] == 1 and out.exists()


def test_train_evaluates_in_chunks_with_the_result_of_one():
    """A budget that holds a training step but not an evaluation batch of 256 samples: the test split
    is evaluated in smaller batches, with the same accuracies and weights (loihi1's rate code included)."""
    splits = split_dataset(load_dataset("digits"), 0)
    arch, profile = Architecture((1, 8, 8), 10, hidden=(32,)), load_profile("loihi1")
    model = build_model("snn", arch, profile, 0)
    with torch.random.fork_rng(devices=[]):
        fp = memory.footprint(model, (1, 8, 8))
    cfg = TrainConfig()
    limit = memory.training_step(fp, cfg.batch_size)
    chunk = memory.units_that_fit(memory.inference(fp), limit, cfg.eval_batch_size, "x", "y")
    assert 1 <= chunk < cfg.eval_batch_size
    runs = [train_model("snn", arch, profile, splits.clients, splits.test, 1, 0, max_memory=m) for m in (None, limit)]
    assert runs[0].history == runs[1].history
    for a, b in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(UserError, match="--max-memory"):
        train_model("snn", arch, profile, splits.clients, splits.test, 1, 0, max_memory=limit - 1)


@pytest.mark.parametrize("backend", ["local", "flower"])
def test_fl_refuses_a_round_above_the_budget_and_writes_nothing(tmp_path, capsys, backend):
    out = tmp_path / "run"
    code, stdout, err = run_captured(capsys, "fl", "--backend", backend, "--clients", "4", "--rounds", "1",
                                     "--max-memory", "1M", "--out", str(out))  # fmt: skip
    _refused(code, err, "--batch")
    assert stdout == "" and not out.exists()
    if backend == "flower":
        assert "per process" in err  # refused before Ray starts: its node processes share the budget


def test_fl_runs_under_the_default_budget(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_captured(capsys, "fl", "--clients", "4", "--rounds", "1", "--model", "ann",
                                     "--out", str(out), "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["rounds"] == 1 and (out / "model.pt").exists()


def test_verify_refuses_a_sample_above_the_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run_captured(capsys, "verify", str(NET), "--samples", "4", "--max-memory", "1M")
    _refused(code, err, "--samples")
    assert stdout == "" and "running" not in err  # refused before Lava starts
    _nothing_under(tmp_path)


def test_verify_runs_in_chunks_with_the_report_of_one_run(capsys):
    """Under a budget of two samples per Lava run, 5 samples run as 2 + 2 + 1, with the report of
    one run (the default budget holds them all)."""
    nf = read_netx(NET)
    assert memory_chunk(nf, 5, memory.default_budget()) == 5


    def chunk(budget: int) -> int:
        try:
            return memory_chunk(nf, 5, budget)
        except UserError:
            return 0

    limit = next(b for b in range(64 << 20, 256 << 20, 1 << 16) if chunk(b) == 2)
    reports = []
    for extra in ([], ["--max-memory", str(limit)]):
        code, stdout, err = run_captured(capsys, "verify", str(NET), "--samples", "5", "--json", *extra)
        assert code == 0, err
        assert ("Lava runs of 2" in err) == bool(extra), err
        parity = json.loads(stdout)["parity"]
        reports.append({k: v for k, v in parity.items() if not k.endswith("_seconds")})
    assert reports[0] == reports[1] and reports[0]["samples"] == 5 and reports[0]["mismatched_bins"] == 0
