"""A row's utility is trained once per study: the cells of one dataset that differ only in batch size
share it by content, and equal what each cell would have measured alone."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from neurofl.cli import run
from neurofl.pipelines import evaluate
from neurofl.pipelines.evaluate import EvaluateConfig, Row, plan_rows, shared_utility_path
from neurofl.study.plan import StudyConfig, plan_study

SUITE = 'name = "tiny"\nrecipes = ["inverting_gradients"]\n'


def test_each_row_is_trained_once_for_every_batch_size(tmp_path, monkeypatch):
    (tmp_path / "tiny.toml").write_text(SUITE)
    measured: list[str] = []
    measure = evaluate._measure_utility

    def counting(row: Row, *args):
        measured.append(row.key)
        return measure(row, *args)

    monkeypatch.setattr(evaluate, "_measure_utility", counting)
    out = tmp_path / "study"
    args = ["study", "--datasets", "digits", "--batches", "1,4", "--victims", "2", "--min-victims", "2",
            "--iterations", "2", "--train-epochs", "1", "--profiles", "loihi2", "--attack",
            str(tmp_path / "tiny.toml"), "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert run(args) == 0
    rows = sorted(p.name for p in (out / "digits" / "batch1" / "rows").iterdir())
    assert len(rows) == 3 and sorted(measured) == rows  # ann@float32, snn@float32, snn@loihi2: once each
    for key in rows:
        one, four = (json.loads((out / "digits" / f"batch{b}" / "rows" / key / "utility.json").read_text())
                     for b in (1, 4))  # fmt: skip
        assert one == four and one["test_accuracy"] is not None

    # the shared utility is what a cell measures alone, from scratch
    cfg = StudyConfig(out=out, datasets="digits", batches="4", victims=2, min_victims=2, iterations=2,
                      train_epochs=1, profiles="loihi2", attack=str(tmp_path / "tiny.toml"), device="cpu")  # fmt: skip
    (cell,) = plan_study(cfg).cells
    alone = evaluate.plan_evaluation(dataclasses.replace(cell.cfg, out=tmp_path / "alone"))
    row = alone.rows[-1]
    fresh = measure(row, alone.arch, alone.splits, alone.cfg)
    assert json.loads((out / "digits" / "batch4" / "rows" / row.key / "utility.json").read_text()) == \
        json.loads(json.dumps(fresh))  # fmt: skip


def test_the_shared_utility_is_identified_by_what_trains_the_model(tmp_path):
    from neurofl.data import load_dataset

    ds = load_dataset("digits")
    row = plan_rows(("loihi2",), "profile")[-1]
    base = EvaluateConfig(dataset="digits", batch_size=1, victims=16, train_epochs=5, seed=0, device="cpu")

    def path(**change) -> Path:
        return shared_utility_path(tmp_path, row, ds, dataclasses.replace(base, **change))

    assert path(batch_size=16, victims=4, clients=4, attack="suite_full", iterations=3) == path()
    for change in ({"train_epochs": 4}, {"seed": 1}, {"encoding": "rate"}, {"arch": "conv"}):
        assert path(**change) != path(), change
    other = plan_rows(("loihi1",), "profile")[-1]
    assert shared_utility_path(tmp_path, other, ds, base) != path()
