"""`neurofl evaluate` end to end with tiny settings: three rows, valid files, resumable, content-keyed."""

from __future__ import annotations

import json

from neurofl.cli import run as run_cli
from neurofl_testing.reports import without_timing

ARGS = ["evaluate", "--profile", "loihi2", "--victims", "4", "--clients", "2", "--attack", "inverting_gradients",
        "--iterations", "3", "--train-epochs", "0"]



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
    assert report["chance"] == 0.1 and report["victims"] == 4 and report["recipes"] == ["inverting_gradients"]
    assert report["chance_empirical"]["batch_mean"] is None  # at batch 1 a batch's mean is the sample
    for r in report["results"]:
        assert 0 <= r["asr"] <= 1 and r["asr_ci95"][0] <= r["asr"] <= r["asr_ci95"][1]
        assert r["label_accuracy"] == 1.0  # iDLG at batch 1
        assert set(r["per_attack"]) == {"inverting_gradients"}
        assert r["asr"] == r["per_attack"]["inverting_gradients"]["asr"]  # one attack: worst case = it
        for k in ("psnr", "ssim", "mse", "l2", "seconds"):
            assert isinstance(r[k], float)
        assert set(r["phases"]) >= {"victim_updates", "attacks", "scoring", "utility"}
    ann, snn = report["results"][0], report["results"][2]
    expected = 1 - snn["asr"] / ann["asr"] if ann["asr"] else None
    assert report["asr_reduction"] == expected
    assert (out / "report.md").read_text().count("| snn |") >= 2
    assert (out / "reconstructions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Resume: a rerun reuses every saved chunk and reproduces the report (timing aside).
    (out / "report.json").unlink()
    assert run_cli([*ARGS, "--out", str(out), "--json"]) == 0
    again = json.loads((out / "report.json").read_text())
    assert without_timing(again) == without_timing(report)

    # Another configuration may not write into the same run folder.
    capsys.readouterr()
    other = [a if a != "3" else "4" for a in ARGS]
    assert run_cli([*other, "--out", str(out)]) == 2
    assert "iterations" in capsys.readouterr().err


def test_evaluate_rejects_more_victims_than_data(tmp_path, capsys):
    out = tmp_path / "x"
    assert run_cli(["evaluate", "--victims", "5000", "--iterations", "1", "--out", str(out)]) == 2
    assert "victims" in capsys.readouterr().err and not out.exists()


def test_evaluate_at_a_later_round_attacks_the_federated_model(tmp_path):
    """--round 3 attacks updates computed on the global model after 2 rounds of FedAvg."""
    out = tmp_path / "r3"
    assert run_cli([*ARGS, "--round", "3", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["round"] == 3
    histories = sorted((out / "rows").glob("*/fl/history.json"))
    assert len(histories) == 3
    for h in histories:
        assert [r["round"] for r in json.loads(h.read_text())["rounds"]][-1] == 2


def test_encoding_override_is_recorded_and_refused_where_the_chip_cannot_take_it(tmp_path, capsys):
    out = tmp_path / "rate"
    assert run_cli([*ARGS, "--encoding", "rate", "--out", str(out)]) == 0
    assert json.loads((out / "report.json").read_text())["encodings"] == {"loihi2": "rate"}
    capsys.readouterr()
    bad = tmp_path / "direct"
    assert run_cli(["evaluate", "--profile", "loihi1", "--encoding", "direct", "--out", str(bad)]) == 2
    assert "binary spikes" in capsys.readouterr().err and not bad.exists()


def test_a_copied_profile_with_other_numbers_is_its_own_row(tmp_path, capsys):
    """Run identity by content: a copy of loihi2.toml keeping name = "loihi2" but with other numbers is
    another row (labelled by its path), and editing it between runs refuses the old folder."""
    from neurofl.profiles import shipped_profiles

    mine = tmp_path / "my.toml"
    mine.write_text(shipped_profiles()["loihi2"].read_text().replace("time_steps = 16", "time_steps = 12"))
    out = tmp_path / "run"
    args = [*ARGS, "--profile", f"loihi2,{mine}", "--out", str(out), "--json"]
    assert run_cli(args) == 0
    report = json.loads(capsys.readouterr().out)
    labels = [r["profile"] for r in report["results"]]
    assert labels == ["float32", "float32", "loihi2", f"loihi2 ({mine})"]  # the shipped one keeps its name
    assert len(list((out / "rows").iterdir())) == 4
    mine.write_text(mine.read_text().replace("time_steps = 12", "time_steps = 10"))
    assert run_cli(args) == 2
    assert "different settings (rows)" in capsys.readouterr().err


def test_a_profile_name_never_becomes_a_path(tmp_path):
    from neurofl.profiles import shipped_profiles

    evil = tmp_path / "evil.toml"
    evil.write_text(shipped_profiles()["loihi2"].read_text().replace('name = "loihi2"', 'name = "../../escaped"'))
    out = tmp_path / "deep" / "run"
    assert run_cli([*ARGS, "--profile", str(evil), "--victims", "2", "--out", str(out)]) == 0
    outside = {p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(out)}
    assert outside == {evil}


def test_the_suite_reports_every_attack_and_the_per_sample_worst_case(tmp_path):
    """A tiny suite on batch-2 victims: each attack's ASR, the worst case >= each of them, reasons
    for the attacks that do not apply, and empirical chance levels."""
    suite = tmp_path / "tiny.toml"
    suite.write_text(
        'name = "tiny"\nrecipes = ["inverting_gradients", "detached_ig", "spike_ig", "disaggregation", '
        '"cocktail_party_ica", "learned_inversion", "rgap"]\nmax_iterations = 5\n'
        "[overrides.disaggregation]\nsearch_generations = 2\nals_iterations = 3\n"
        "[overrides.learned_inversion]\ntraining_updates = 64\nepochs = 1\nhidden = 32\n"
    )
    out = tmp_path / "run"
    args = ["evaluate", "--profile", "loihi2", "--victims", "4", "--clients", "2", "--batch-size", "2",
            "--attack", str(suite), "--train-epochs", "0", "--out", str(out)]
    assert run_cli(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["chance_empirical"]["batch_mean"] is not None
    for r in report["results"]:  # the worst case over the row's 5 attacks has a floor of 5 random guesses
        assert r["chance_worst_case"] >= report["chance_empirical"]["random_images"]
    for r in report["results"]:
        pa = r["per_attack"]
        assert not pa["spike_ig"]["applicable"] and "event" in pa["spike_ig"]["reason"]
        assert not pa["rgap"]["applicable"]  # batch 2 (and spiking rows)
        ran = [v for v in pa.values() if v["applicable"]]
        assert len(ran) == 5 and all(r["asr"] >= v["asr"] for v in ran)
        assert r["samples"] == 8 and abs(sum(r["best_attack"].values()) - 1) < 1e-9
