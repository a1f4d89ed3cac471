"""`neurofl evaluate` end to end with tiny settings: three rows, valid files, resumable."""

from __future__ import annotations

import json

import pytest

from neurofl.cli import run as run_cli

ARGS = ["evaluate", "--profile", "loihi2", "--victims", "4", "--clients", "2", "--iterations", "3"]


def _strip_timing(report):
    for r in report["results"]:
        r.pop("seconds")
    return report


@pytest.mark.timeout(240)
def test_evaluate_writes_report_with_three_rows_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli([*ARGS, "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    report = json.loads((out / "report.json").read_text())
    assert printed == report
    assert [(r["model"], r["profile"]) for r in report["results"]] == [
        ("ann", "float32"),
        ("snn", "float32"),
        ("snn", "loihi2"),
    ]
    assert report["chance"] == 0.1 and report["victims"] == 4
    for r in report["results"]:
        assert 0 <= r["asr"] <= 1 and r["asr_ci95"][0] <= r["asr"] <= r["asr_ci95"][1]
        assert r["label_accuracy"] == 1.0  # iDLG at batch 1
        for k in ("psnr", "ssim", "mse", "l2", "seconds"):
            assert isinstance(r[k], float)
    ann, snn = report["results"][0], report["results"][2]
    expected = 1 - snn["asr"] / ann["asr"] if ann["asr"] else None
    assert report["asr_reduction"] == expected
    assert (out / "report.md").read_text().count("| snn |") == 2
    assert (out / "reconstructions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Resume: a rerun reuses every saved chunk and reproduces the report (timing aside).
    (out / "report.json").unlink()
    assert run_cli([*ARGS, "--out", str(out), "--json"]) == 0
    again = json.loads((out / "report.json").read_text())
    assert _strip_timing(again) == _strip_timing(report)

    # Another configuration may not write into the same run folder.
    capsys.readouterr()
    assert run_cli([*ARGS[:-1], "4", "--out", str(out)]) == 2
    assert "iterations" in capsys.readouterr().err


def test_evaluate_rejects_more_victims_than_data(tmp_path, capsys):
    assert run_cli(["evaluate", "--victims", "5000", "--iterations", "1", "--out", str(tmp_path / "x")]) == 2
    assert "victims" in capsys.readouterr().err


@pytest.mark.timeout(240)
def test_evaluate_at_a_later_round_attacks_the_federated_model(tmp_path):
    """--round 3 attacks updates computed on the global model after 2 rounds of FedAvg."""
    out = tmp_path / "r3"
    assert run_cli([*ARGS, "--round", "3", "--train-epochs", "0", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["round"] == 3
    for row in ("ann@float32", "snn@loihi2"):
        history = json.loads((out / "rows" / row / "fl" / "history.json").read_text())
        assert [r["round"] for r in history["rounds"]][-1] == 2


def test_encoding_override_is_recorded_and_refused_where_the_chip_cannot_take_it(tmp_path, capsys):
    out = tmp_path / "rate"
    assert run_cli([*ARGS, "--encoding", "rate", "--train-epochs", "0", "--out", str(out)]) == 0
    assert json.loads((out / "report.json").read_text())["encodings"] == {"loihi2": "rate"}
    capsys.readouterr()
    bad = tmp_path / "direct"
    assert run_cli(["evaluate", "--profile", "loihi1", "--encoding", "direct", "--out", str(bad)]) == 2
    assert "binary spikes" in capsys.readouterr().err and not bad.exists()
