"""The public API (neurofl.api): typed reports, lazy exports, and `neurofl.pipelines.evaluate` both the
function and (once imported) the module neurofl/pipelines/evaluate.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from neurofl.api import AttackScore, Report, Row

REPORT = {
    "dataset": "digits",
    "attack": "suite",
    "batch_size": 2,
    "victims": 3,
    "chance": 0.1,
    "results": [
        {"model": "ann", "profile": "float32", "iip": 1.0, "iip_ci95": [0.54, 1.0], "asr": 0.5,
         "asr_ci95": [0.12, 0.88], "test_accuracy": 0.93, "psnr": 40.0,
         "per_attack": {"inverting_gradients": {"applicable": True, "iip": 1.0, "iip_ci95": [0.54, 1.0],
                                                "asr": 0.5, "asr_ci95": [0.12, 0.88]},
                        "spike_ig": {"applicable": False, "reason": "images"}}},
        {"model": "snn", "profile": "loihi2", "iip": None, "iip_ci95": [None, None], "asr": 0.0,
         "asr_ci95": [0.0, 0.46], "test_accuracy": None, "per_attack": {}},
    ],
}  # fmt: skip


def test_report_types_the_main_keys_and_keeps_the_rest(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps(REPORT))
    for source in (tmp_path / "report.json", tmp_path, str(tmp_path / "report.json")):
        r = Report.from_json(source)
        assert (r.dataset, r.attack, r.batch_size, r.victims) == ("digits", "suite", 2, 3)
        assert [row.label for row in r.rows] == ["ann@float32", "snn@loihi2"]
        ann = r.row("ann@float32")
        assert isinstance(ann, Row) and ann.iip == 1.0 and ann.iip_ci95 == (0.54, 1.0)
        assert ann.asr_ci95 == (0.12, 0.88) and ann.test_accuracy == 0.93 and ann.raw["psnr"] == 40.0
        ig, spike = ann.per_attack["inverting_gradients"], ann.per_attack["spike_ig"]
        assert isinstance(ig, AttackScore) and ig.applicable and ig.asr == 0.5
        assert not spike.applicable and spike.iip is None and spike.raw["reason"] == "images"
        snn = r.rows[1]
        assert snn.iip is None and snn.iip_ci95 == (None, None) and snn.test_accuracy is None
        assert r.raw["chance"] == 0.1
    with pytest.raises(KeyError, match="snn@loihi1"):
        r.row("snn@loihi1")
    with pytest.raises(TypeError):
        r.raw["chance"] = 0.2  # type: ignore[index]


def test_an_attack_report_states_its_victims_per_row():
    data = {k: v for k, v in REPORT.items() if k != "victims"}
    data["results"] = [{**REPORT["results"][0], "victims": 5}]
    assert Report.from_dict(data).victims == 5


def test_import_is_lazy_and_evaluate_is_the_api_function():
    code = """
import sys
import neurofl
assert "torch" not in sys.modules and "neurofl.api" not in sys.modules
assert sorted(neurofl.__all__) == ["AttackScore", "Report", "Row", "__version__", "attack", "evaluate"]
import neurofl.api as api
assert neurofl.evaluate is api.evaluate and neurofl.attack is api.attack and neurofl.Report is api.Report
assert "torch" not in sys.modules
import neurofl.pipelines.evaluate as module
assert module.run_evaluate and neurofl.evaluate is api.evaluate
from neurofl import evaluate
assert evaluate is api.evaluate
try:
    neurofl.evaluate(no_such_setting=1)
except TypeError as e:
    assert "no_such_setting" in str(e)
else:
    raise AssertionError("an unknown setting was accepted")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
