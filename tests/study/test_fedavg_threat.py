"""The realistic threat in the study: the global model of a later round and FedAvg updates of one
local epoch in fresh minibatches (`neurofl study --round R --local-steps K`), attacked by unrolling
the client's steps; options that cannot hold are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurofl.cli import run

SUITE = 'name = "tiny_fedavg"\nrecipes = ["inverting_gradients", "detached_ig"]\n'


@pytest.fixture(scope="module")
def fedavg_study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fedavg")
    (root / "tiny.toml").write_text(SUITE)
    out = root / "study"
    assert run(["study", "--datasets", "digits", "--batches", "3,4", "--victims", "2", "--min-victims", "2",
                "--iterations", "3", "--train-epochs", "0", "--profiles", "loihi2", "--attack",
                str(root / "tiny.toml"), "--round", "2", "--local-steps", "2", "--out", str(out),
                "--device", "cpu"]) == 0  # fmt: skip
    return out


def test_a_fedavg_study_attacks_one_local_epoch_of_the_later_rounds_model(fedavg_study):
    study = json.loads((fedavg_study / "study.json").read_text())
    assert study["round"] == 2 and study["local_steps"] == 2
    (entry,) = study["datasets"]
    assert [c["batch"] for c in entry["cells"]] == [4]
    assert entry["skipped_batches"] == ["3 (--local-steps 2 walk a batch in equal minibatches; it must divide it)"]
    (cell,) = entry["cells"]
    assert (cell["round"], cell["local_steps"], cell["minibatch"]) == (2, 2, 2)
    for row in cell["rows"]:  # the detached backward reads one gradient: refused with its reason
        assert "inverting_gradients" in row["per_attack"]
        assert "unrolling FedAvg local steps" in row["not_applicable"]["detached_ig"]
    report = json.loads((fedavg_study / "digits" / "batch4" / "report.json").read_text())
    assert (report["round"], report["local_steps"], report["minibatch"]) == (2, 2, 2)
    # each row's global model was trained for the one round before the attacked one
    assert all(
        (fedavg_study / "digits" / "batch4" / "rows" / r / "fl").is_dir()
        for r in [p.name for p in (fedavg_study / "digits" / "batch4" / "rows").iterdir()]
    )
    assert "Threat: the global model of round 2" in (fedavg_study / "study.md").read_text()


def test_the_cells_updates_are_the_clients_local_epochs(fedavg_study):
    """What the server attacks is each victim's delta after its two minibatch steps at the client's
    rate, from the round's global model: recomputed here with the SGD reference of the unit tests."""
    import torch

    from neurofl.pipelines.evaluate import FL_LR, row_store, row_target
    from neurofl.runs.runfolder import RunFolder
    from neurofl.study.plan import StudyConfig, plan_study
    from neurofl.study.tasks import cell_plan
    from neurofl_testing.sgd import sgd_local_epoch

    cfg = StudyConfig(out=fedavg_study.parent / "study", datasets="digits", batches="4", victims=2, min_victims=2,
                      iterations=3, train_epochs=0, profiles="loihi2", attack=str(fedavg_study.parent / "tiny.toml"),
                      device="cpu", round=2, local_steps=2)  # fmt: skip
    (cell,) = plan_study(cfg).cells
    plan = cell_plan(cell.cfg)
    run_folder = RunFolder(plan.cfg.out, plan.fingerprint())
    ann = plan.rows[0]
    target, _ = row_target(ann, plan.arch, plan.ds, plan.splits, plan.victims, plan.cfg, row_store(run_folder, ann))
    assert (target.local_steps, target.minibatch, target.local_lr) == (2, 2, FL_LR["ann"])
    x, y = plan.victims.x, plan.victims.y
    ref = sgd_local_epoch(target.model, x[:4], y[:4], 2, FL_LR["ann"], 2)
    for name, d in ref.items():  # float32 rows upload the delta as it is
        torch.testing.assert_close(target.update[name][0], d, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("args,needle", [
    (["--batch-size", "4", "--local-steps", "2", "--minibatch", "3"], "--minibatch 3"),
    (["--batch-size", "4", "--local-steps", "1", "--minibatch", "2"], "--minibatch 2"),
    (["--local-steps", "2", "--threat-model", "malicious"], "--local-steps"),
    (["--local-steps", "2", "--profile", "speck"], "ChipNetwork"),
    (["--local-steps", "2", "--arch", "conv"], "ConvArchitecture"),
])  # fmt: skip
def test_updates_that_cannot_be_computed_are_refused_in_one_line(tmp_path, capsys, args, needle):
    code = run(["evaluate", "--victims", "1", "--train-epochs", "0", "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "report.json").exists()


def test_fedsgd_settings_are_those_of_run_folders_made_before_fedavg_updates():
    from neurofl.pipelines.evaluate import EvaluateConfig

    assert "local_steps" not in EvaluateConfig().settings()
    assert EvaluateConfig(local_steps=5, minibatch=8, batch_size=40).settings()["local_steps"] == 5


def test_the_threat_table_reads_each_cell_and_the_global_models_accuracy(fedavg_study):
    from neurofl.study.threats import threat_rows, threat_table

    study = json.loads((fedavg_study / "study.json").read_text())
    (row,) = threat_rows([study])
    assert (row["round"], row["local_steps"], row["batch"], row["minibatch"], row["samples"]) == (2, 2, 4, 2, 8)
    rows = fedavg_study / "digits" / "batch4" / "rows"
    histories = {p.name.split("_")[0]: json.loads((p / "fl" / "history.json").read_text()) for p in rows.iterdir()
                 if p.name.startswith(("ann_float32", "snn_loihi2"))}  # fmt: skip
    assert row["ann_accuracy"] == histories["ann"]["rounds"][-1]["accuracy"]
    assert row["snn_accuracy"] == histories["snn"]["rounds"][-1]["accuracy"]
    assert histories["ann"]["rounds"][-1]["round"] == 1  # the one round before the attacked one
    cell = study["datasets"][0]["cells"][0]
    assert row["ann"] == cell["rows"][0]["iip"]
    assert "| digits | 2 | 2 steps of 2 (one epoch of 4) | 8 |" in threat_table([study])
