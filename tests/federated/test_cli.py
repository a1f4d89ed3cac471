import json

import pytest

from neurofl.cli import main, run


def test_fl_json_run_and_resume(tmp_path, capsys) -> None:
    args = [
        "fl",
        "--clients",
        "6",
        "--rounds",
        "2",
        "--model",
        "ann",
        "--strategy",
        "fedavg",
        "--local-steps",
        "2",
        "--defense",
        "dp",
        "--dp-noise",
        "0.5",
        "--out",
        str(tmp_path),
        "--json",
    ]
    assert run(args) == 0  # the real entry point: lava's import notices must not reach --json's stdout
    out = json.loads(capsys.readouterr().out)
    assert out["rounds"] == 2 and len(out["history"]) == 3 and out["epsilon"] > 0
    assert {p.name for p in tmp_path.iterdir()} >= {
        "history.json",
        "accuracy.png",
        "model.pt",
        "checkpoint.pt",
    }
    hist = json.loads((tmp_path / "history.json").read_text())
    assert [r["round"] for r in hist["rounds"]] == [0, 1, 2]
    assert run(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["resumed_from"] == 2 and again["final_accuracy"] == out["final_accuracy"]


def test_fl_bad_input_exits_2_with_one_line(capsys) -> None:
    base = ["fl", "--clients", "4", "--rounds", "2"]
    for extra, named in (
        (["--fraction", "2"], "fraction"),
        (["--capture-rounds", "1,a"], "--capture-rounds"),
        (["--profile", "nochip"], "nochip"),
        (["--nodes", "2"], "--nodes"),
        (["--ray-address", "auto"], "--ray-address"),
        (["--backend", "flower", "--nodes", "9"], "--nodes 9"),
        (["--backend", "flower", "--defense", "secagg", "--nodes", "2"], "--nodes 2"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(base + extra)
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and named in err, err


def _one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


def test_fl_run_identity_is_the_content_of_its_inputs(tmp_path, capsys) -> None:
    from neurofl.profiles import shipped_profiles

    prof = tmp_path / "chip.toml"
    prof.write_text(shipped_profiles()["loihi2"].read_text())
    out = tmp_path / "run"
    base = ["fl", "--clients", "3", "--rounds", "2", "--model", "ann", "--profile", str(prof), "--out", str(out)]
    assert run([*base, "--json"]) == 0
    capsys.readouterr()
    # the same name, another number: another run, refused with one line (it used to resume)
    prof.write_text(prof.read_text().replace("time_steps = 16", "time_steps = 12"))
    assert run([*base, "--json"]) == 2
    assert "profile" in _one_error_line(capsys)
    prof.write_text(shipped_profiles()["loihi2"].read_text())
    # an --out holding more rounds than asked: refused, not reported as a shorter run
    assert run([*base[:4], "1", *base[5:], "--json"]) == 2
    assert "holds 2 rounds" in _one_error_line(capsys)
    files = sorted(p.name for p in out.iterdir())
    assert run([*base, "--json"]) == 0 and json.loads(capsys.readouterr().out)["resumed_from"] == 2
    assert sorted(p.name for p in out.iterdir()) == files


def test_refused_fl_runs_leave_nothing_behind(tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    cases = (
        (["--out", str(tmp_path / "new"), "--dataset", "nope"], "nope"),
        (["--out", str(tmp_path / "file")], "not a folder"),
        (["--out", "/proc/neurofl-run"], "system folder"),
        (["--out", str(tmp_path / "file" / "sub")], "not a folder"),
        (["--out", str(tmp_path / "new"), "--seed", "-1"], "--seed"),
        (["--out", str(tmp_path / "new"), "--seed", str(2**32)], "--seed"),
        (["--out", str(tmp_path / "new"), "--local-steps", str(10**9), "--strategy", "fedavg"], "local_steps"),
    )
    for extra, named in cases:
        assert run(["fl", "--clients", "3", "--rounds", "1", *extra]) == 2, extra
        assert named in _one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
