"""neurofl.study.render (scripts/reproduce_study.py before it became `neurofl study`): the verdict per cell,
and a study that grows across invocations."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def study():
    from neurofl.study import render

    return render


def _attack(asr: float, lo: float, hi: float, works: bool) -> dict:
    return {"applicable": True, "asr": asr, "asr_ci95": [lo, hi], "works_on_ann": works}


def _row(model: str, profile: str, asr: float, ci: list[float], per_attack: dict) -> dict:
    return {"model": model, "profile": profile, "asr": asr, "asr_ci95": ci, "per_attack": per_attack}


def report(snn_worst: float, snn_ci: list[float]) -> dict:
    na = {"applicable": False, "reason": "a spike map does not determine the membrane input"}
    return {
        "batch_size": 4, "victims": 16, "samples": 64, "chance": 0.1, "asr_kind": "oracle",
        "chance_empirical": {"uniform": 0.1, "batch_mean": 0.22, "random_images": 0.28}, "oracle_accuracy": 0.95,
        "results": [
            _row("ann", "float32", 0.97, [0.89, 1.0], {
                "inverting_gradients_plain": _attack(0.81, 0.69, 0.90, True),
                "disaggregation": _attack(0.95, 0.87, 0.99, True),
                "learned_inversion": _attack(0.27, 0.16, 0.40, False),
                "rgap": {**na, "applicable": True, "asr": 0.9, "asr_ci95": [0.8, 0.96], "works_on_ann": True}}),
            _row("snn", "loihi2", snn_worst, snn_ci, {
                "inverting_gradients_plain": _attack(0.33, 0.22, 0.46, True),
                "disaggregation": _attack(snn_worst, snn_ci[0], snn_ci[1], True),
                "learned_inversion": _attack(0.9, 0.8, 0.96, False),
                "rgap": na}),
        ],
    }  # fmt: skip


def test_the_strongest_attack_counts_only_if_it_works_on_the_ann(study):
    cell = study.cell_summary(report(0.78, [0.66, 0.87]))
    snn = cell["rows"][1]
    # learned inversion scores higher on the SNN but fails on the ANN: it is not the strongest *effective* attack
    assert snn["strongest_effective_attack"] == "disaggregation"
    assert snn["not_applicable"] == {"rgap": "a spike map does not determine the membrane input"}
    assert snn["gap_reference"] == pytest.approx(0.81 - 0.33)
    assert snn["gap_worst_case"] == pytest.approx(0.97 - 0.78)
    assert snn["leaks_less_than_ann"]  # 0.87 < 0.89: the intervals do not overlap
    text = study.statement(cell, snn)
    assert text.startswith("leaks less than the ANN") and "closed 0.29" in text


def test_overlapping_intervals_are_not_a_verdict_of_privacy(study):
    cell = study.cell_summary(report(0.91, [0.81, 0.96]))
    assert not cell["rows"][1]["leaks_less_than_ann"]
    assert study.statement(cell, cell["rows"][1]).startswith("not shown to leak less")


def test_a_row_that_does_not_learn_is_not_read_as_privacy(study):
    cell = study.cell_summary(report(0.0, [0.0, 0.05]))
    learns, dead = dict(cell["rows"][1], test_accuracy=0.91), dict(cell["rows"][1], test_accuracy=0.12)
    assert learns["leaks_less_than_ann"] and "does not learn" not in study.statement(cell, learns)
    # at most 1.5x the label chance (0.1): its zero leakage is a network that computes nothing
    assert "does not learn (test accuracy 0.120): not privacy" in study.statement(cell, dead)


def test_a_study_keeps_earlier_cells_only_with_the_same_settings(study, tmp_path):
    settings = {"attack": "suite_study", "profiles": "loihi2", "seed": 0, "victims": 16, "clients": 8,
                "iterations": None, "train_epochs": 5}  # fmt: skip
    cell = study.cell_summary(report(0.78, [0.66, 0.87]))
    path = tmp_path / "study.json"
    path.write_text(json.dumps({**settings, "datasets": [{"dataset": "digits", "kind": "image", "cells": [cell]}]}))
    assert study.earlier_entries(path, {**settings, "datasets": []})["digits"]["cells"][0]["batch"] == 4
    assert study.earlier_entries(path, {**settings, "seed": 1}) == {}
    assert study.earlier_entries(tmp_path / "absent.json", settings) == {}
    path.write_text("{not json")
    assert study.earlier_entries(path, settings) == {}
    md = study.study_markdown({**settings, "datasets": [{"dataset": "digits", "cells": [cell]}], "skipped": []})
    assert "| snn | loihi2 | 0.78 [0.66, 0.87] |" in md and "n/a" in md


def test_events_are_compared_on_the_published_event_attack(study):
    r = report(0.78, [0.66, 0.87])
    for row, asr in zip(r["results"], (0.88, 0.19), strict=True):
        row["per_attack"]["spike_ig"] = row["per_attack"].pop("inverting_gradients_plain")
        row["per_attack"]["spike_ig"]["asr"] = asr
        row["per_attack"]["inverting_gradients_plain"] = {"applicable": False, "reason": "inputs are events"}
    snn = study.cell_summary(r)["rows"][1]
    assert snn["reference_attack"] == "spike_ig" and snn["gap_reference"] == pytest.approx(0.88 - 0.19)
