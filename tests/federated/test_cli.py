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
