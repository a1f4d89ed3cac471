"""docs/results.md and the README's findings are what `neurofl report results` renders from the JSON
files: a number in the docs cannot drift from its data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurofl.cli import main
from neurofl.results_page import BEGIN, END, findings_table, render, scaling_table, with_findings

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_page_is_what_the_results_render():
    assert (ROOT / "docs" / "results.md").read_text() == render(ROOT / "results")


def test_the_readme_findings_are_what_the_results_render():
    readme = (ROOT / "README.md").read_text()
    assert readme == with_findings(readme, ROOT / "results")
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1


def _cell(measure: str, less: bool, works: bool = True) -> dict:
    row = {"model": "ann", "profile": "float32", "asr": 1.0, "asr_ci95": [0.8, 1.0], "iip": 1.0,
           "iip_ci95": [0.9, 1.0], "strongest_effective_attack": "ig"}
    snn = {**row, "model": "snn", "profile": "loihi2", "iip": 0.2, "iip_ci95": [0.1, 0.3],
           "strongest_effective_attack": "ig" if works else None, "leaks_less_than_ann": less,
           "strongest_effective_attack_label": "ig",
           "leaks_less_than_ann_label": False}
    cell = {"batch": 4, "samples": 64, "rows": [row, snn], "chance_empirical": {"uniform": 0.1},
            "identification": {"chance": {"exact": 0.005}}}
    return {**cell, "measure": measure} if measure == "iip" else cell


def test_findings_read_each_cell_on_its_own_measure_and_prefer_identification(tmp_path):
    for name, cells in (("study", [_cell("asr", False)]), ("study_new", [_cell("iip", True)])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "study.json").write_text(json.dumps({"datasets": [{"dataset": "digits", "cells": cells}]}))
    table = findings_table(tmp_path)
    assert table.count("| digits | 4 |") == 1  # one line per cell: the identification one
    assert "| identified | 1.00 [0.90, 1.00] | 0.20 [0.10, 0.30] | 0.005 | leaks less | not shown to leak less" in table


def test_the_scaling_table_says_whether_a_run_equals_an_earlier_one():
    run = {"tasks": {"computed": 3, "total": 5}}
    data = {"runs": {"cluster2": [run]}, "median_wall_seconds": {"cluster2": 120.0},
            "identical_to_baseline_apart_from_timings": {"cluster2": True}, "speedup_of_medians": {"cluster2": 1.0}}
    assert not any("Compared with" in line for line in scaling_table(data))
    data["compared_with"] = {"study": "results/study/study.json", "identical_apart_from_timings": {"cluster2": False},
                             "execution": {"where": "a local Ray instance of 2 CPUs", "wall_seconds": 180.0}}
    lines = scaling_table(data)
    assert "| cluster2 | 1 | 2.0 | 3 / 5 | 1.00 | True |" in lines
    assert lines[-1] == ("Compared with `results/study/study.json` (a local Ray instance of 2 CPUs, 3.0 min): "
                         "same study.json apart from timings: cluster2 False.")


def test_the_command_checks_and_refuses_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path / "absent"), "--out", str(tmp_path / "r.md")])
    assert e.value.code == 2 and "not a folder of results" in capsys.readouterr().err
    readme = tmp_path / "README.md"
    readme.write_text("no block here\n")
    with pytest.raises(SystemExit) as e:
        main(["report", str(ROOT / "results"), "--out", str(tmp_path / "r.md"), "--readme", str(readme)])
    assert e.value.code == 2 and "no findings block" in capsys.readouterr().err
    main(["report", str(ROOT / "results"), "--out", str(ROOT / "docs" / "results.md"), "--check"])  # up to date
    stale = tmp_path / "stale.md"
    stale.write_text("old\n")
    with pytest.raises(SystemExit) as e:
        main(["report", str(ROOT / "results"), "--out", str(stale), "--check"])
    assert e.value.code == 1 and stale.read_text() == "old\n" and "out of date" in capsys.readouterr().err
