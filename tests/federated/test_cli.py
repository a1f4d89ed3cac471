import json

from click.testing import CliRunner

from neurofl.cli import cli, main


def test_fl_json_run_and_resume(tmp_path) -> None:
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
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["rounds"] == 2 and len(out["history"]) == 3 and out["epsilon"] > 0
    assert {p.name for p in tmp_path.iterdir()} >= {
        "history.json",
        "accuracy.png",
        "model.pt",
        "checkpoint.pt",
    }
    hist = json.loads((tmp_path / "history.json").read_text())
    assert [r["round"] for r in hist["rounds"]] == [0, 1, 2]
    again = json.loads(CliRunner().invoke(cli, args).stdout)
    assert again["resumed_from"] == 2 and again["final_accuracy"] == out["final_accuracy"]


def test_fl_bad_input_exits_2_with_one_line(capsys) -> None:
    for argv in (
        ["fl", "--clients", "4", "--rounds", "2", "--fraction", "2"],
        ["fl", "--clients", "4", "--rounds", "2", "--capture-rounds", "1,a"],
        ["fl", "--clients", "4", "--rounds", "2", "--profile", "nochip"],
    ):
        try:
            main(argv)
        except SystemExit as e:
            assert e.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err
