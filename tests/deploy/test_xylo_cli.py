"""`neurofl train | verify | export` under the Xylo profiles: chip-sized networks, xylosim parity,
and one-line refusals (exit 2) for what does not fit or cannot run."""

from __future__ import annotations

import json
import sys

import pytest

from neurofl.config import read_toml
from neurofl.profiles import shipped_profiles
from neurofl_testing.cli import run_captured as run

try:
    import xylosim.v2  # noqa: F401

    HAVE_XYLOSIM = True
except ImportError:
    HAVE_XYLOSIM = False

needs_xylosim = pytest.mark.skipif(not HAVE_XYLOSIM, reason="xylosim not installed (pip install 'neurofl[xylo]')")


@pytest.fixture(scope="module")
def xylo_model(tmp_path_factory):
    """A digits network trained for 2 epochs under xylo-audio2 through the CLI."""
    from neurofl.cli import main

    path = tmp_path_factory.mktemp("xylo") / "xa2.pt"
    main(["train", "--profile", "xylo-audio2", "--epochs", "2", "--out", str(path)])
    return path


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_train_says_what_it_chose(capsys, tmp_path):
    code, out, err = run(
        capsys, "train", "--profile", "xylo-audio2", "--epochs", "1", "--out", str(tmp_path / "m.pt"), "--json"
    )
    assert code == 0, err
    notes = json.loads(out)["chip_fit"]
    text = " ".join(notes)
    assert "pooled 2x2 to 16 input channels" in text
    assert "kept classes 0..7" in text and "chip.output_neurons = 8" in text
    assert "network 16-64-8" in text
    assert "chip.max_fan_in is unknown" in text
    assert "kept classes 0..7" in " ".join(err.split())  # also said on stderr, not only in --json


def test_xylo_imu_keeps_all_ten_digits(capsys, tmp_path):
    code, out, err = run(
        capsys, "train", "--profile", "xylo-imu", "--epochs", "1", "--out", str(tmp_path / "m.pt"), "--json"
    )
    assert code == 0, err
    notes = " ".join(json.loads(out)["chip_fit"])
    assert "network 16-64-10" in notes and "kept classes" not in notes


def test_train_refuses_a_network_that_does_not_fit(capsys, tmp_path):
    table = read_toml(shipped_profiles()["xylo-audio2"])
    lines = []
    for section, values in table.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            for k, v in values.items():
                if section == "chip" and k == "max_fan_out":
                    v = 1  # a hidden neuron may reach one output neuron: no classifier fits
                lines.append(f"{k} = {json.dumps(v)}")
        else:
            lines.insert(0, f"{section} = {json.dumps(values)}")
    profile = tmp_path / "tiny.toml"
    profile.write_text("\n".join(lines) + "\n")
    out_file = tmp_path / "m.pt"
    code, _, err = run(capsys, "train", "--profile", str(profile), "--epochs", "1", "--out", str(out_file))
    line = one_line_error(code, err)
    assert "does not fit" in line and "chip.max_fan_out = 1" in line
    assert not out_file.exists()


@needs_xylosim
def test_verify_in_xylosim_agrees_bin_for_bin(capsys, xylo_model):
    code, out, err = run(
        capsys, "verify", str(xylo_model), "--profile", "xylo-audio2", "--dataset", "digits", "--samples", "40",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    parity = result["parity"]
    assert parity["samples"] == 40 and parity["time_steps"] == 16
    assert parity["compared_bins"] == 40 * (64 + 8) * 16
    assert parity["spike_agreement"] == 1.0 and parity["mismatched_bins"] == 0
    assert parity["classification_agreement"] == 1.0
    assert parity["fits"] is True and parity["problems"] == []
    assert result["simulator"].startswith("xylosim 0.1.3")
    code, out, err = run(capsys, "verify", str(xylo_model), "--samples", "5")
    assert code == 0 and "spike agreement          100.0000%" in out


def test_verify_without_xylosim_exits_2_saying_how_to_install(capsys, xylo_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "xylosim", None)  # import xylosim -> ImportError
    monkeypatch.setitem(sys.modules, "xylosim.v2", None)
    code, _, err = run(capsys, "verify", str(xylo_model), "--profile", "xylo-audio2", "--json")
    line = one_line_error(code, err)
    assert "pip install 'neurofl[xylo]'" in line


@needs_xylosim
def test_verify_refuses_another_profile_and_loihi_checkpoints(capsys, xylo_model, tmp_path):
    code, _, err = run(capsys, "verify", str(xylo_model), "--profile", "xylo-imu")
    assert "not the requested profile 'xylo-imu'" in one_line_error(code, err)
    loihi = tmp_path / "loihi.pt"
    assert run(capsys, "train", "--profile", "loihi2", "--epochs", "1", "--out", str(loihi))[0] == 0
    code, _, err = run(capsys, "verify", str(loihi), "--samples", "2")
    assert "only Xylo" in one_line_error(code, err)


def test_export_refuses_a_xylo_network(capsys, xylo_model, tmp_path):
    code, _, err = run(capsys, "export", str(xylo_model), "--out", str(tmp_path / "m.net"))
    line = one_line_error(code, err)
    assert "Xylo network" in line and "neurofl verify" in line
    assert not (tmp_path / "m.net").exists()


def test_evaluate_marks_a_row_that_does_not_fit_the_chip(tmp_path, capsys):
    """digits has 10 classes: xylo-audio2's 8 output neurons cannot hold them, xylo-imu's can. Both
    rows are attacked in the chip's arithmetic; only the first is marked ``fits: false``, with why."""
    out = tmp_path / "run"
    code, _, err = run(capsys, "evaluate", "--profile", "xylo-audio2,xylo-imu", "--victims", "2", "--clients", "2",
                       "--attack", "detached_ig", "--iterations", "2", "--train-epochs", "0", "--out", str(out))
    assert code == 0, err
    rows = {r["profile"]: r for r in json.loads((out / "report.json").read_text())["results"] if r["model"] == "snn"}
    assert rows["xylo-audio2"]["fits"] is False
    assert any("chip.output_neurons = 8" in p for p in rows["xylo-audio2"]["fit_problems"])
    assert rows["xylo-imu"]["fits"] is True and rows["xylo-imu"]["asr"] is not None
    assert "Does not fit the chip" in (out / "report.md").read_text()


def test_evaluate_profile_all_compares_every_shipped_chip(tmp_path, capsys):
    """`--profile all`: one SNN row per shipped chip on the same victims, ranked with the Pareto front
    of ASR and energy; on a conv dataset the Xylo chips (fully connected only) are skipped with why."""
    from neurofl.profiles import shipped_profiles

    out = tmp_path / "digits"
    code, _, err = run(capsys, "evaluate", "--profile", "all", "--victims", "2", "--clients", "2",
                       "--attack", "detached_ig", "--iterations", "2", "--train-epochs", "0", "--out", str(out))
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    snn = {r["profile"] for r in report["results"] if r["model"] == "snn"}
    assert snn == set(shipped_profiles()) and report["profiles_skipped"] == {}
    md = (out / "report.md").read_text()
    assert "| front | fits |" in md and (out / "profiles.png").is_file()

    from neurofl.data import load_dataset
    from neurofl.models import architecture_for
    from neurofl.pipelines.evaluate import profiles_for

    faces = load_dataset("faces")
    specs, skipped = profiles_for(architecture_for(faces.input_shape, faces.classes), 0)
    assert {"loihi1", "loihi2"} <= set(specs) and set(skipped) == set(shipped_profiles()) - {"float32", *specs}
    assert {"xylo-audio2", "xylo-imu", "speck", "akd1000", "spinnaker2", "truenorth"} <= set(skipped)
    assert all("fully connected" in why for why in skipped.values())


def test_pareto_front_keeps_the_rows_nothing_beats_on_both():
    from neurofl.report import pareto_front

    rows = [{"profile": p, "asr": a, "energy_uj": e} for p, a, e in
            [("a", 0.5, 1.0), ("b", 0.4, 2.0), ("c", 0.6, 1.5), ("d", 0.4, 3.0), ("e", 0.9, None)]]
    assert pareto_front(rows) == {"a", "b"}  # c is beaten by a, d by b; e has no energy figure
