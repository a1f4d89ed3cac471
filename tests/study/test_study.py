"""`neurofl study`: cell x row x recipe tasks in process and on a private local Ray instance give the
same study; a rerun resumes per task; a failing task is reported, never dropped; a bad --ray-address
is refused before Ray starts."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from neurofl.cli import run

# Keys that say when and where a study ran, not what it found.
TIMING = {"seconds", "wall_seconds", "attack_seconds", "phases", "execution"}

SUITE = """\
name = "tiny"
recipes = ["inverting_gradients", "learned_inversion"]

[overrides.learned_inversion]
training_updates = 64
epochs = 1
hidden = 32
projection_dim = 64
batch_size = 32
"""


def _without_timing(obj):
    if isinstance(obj, dict):
        return {k: _without_timing(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [_without_timing(v) for v in obj]
    return obj


def _args(suite: Path, out: Path, batches: str = "1,4", profiles: str = "loihi2,loihi1") -> list[str]:
    return ["study", "--datasets", "digits", "--batches", batches, "--victims", "2", "--min-victims", "2",
            "--iterations", "3", "--train-epochs", "0", "--profiles", profiles, "--attack", str(suite),
            "--out", str(out), "--device", "cpu"]  # fmt: skip


def _study(out: Path) -> dict:
    return json.loads((out / "study.json").read_text())


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "tiny.toml"
    path.write_text(SUITE)
    return path


@pytest.fixture(scope="module")
def in_process(suite, tmp_path_factory) -> Path:
    """The tiny study run in this process, with Ray made unimportable (``--workers 1`` never imports it)."""
    out = tmp_path_factory.mktemp("study") / "inproc"
    with pytest.MonkeyPatch.context() as m:
        m.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
        assert run(_args(suite, out)) == 0
    return out


def test_in_process_and_two_ray_workers_give_the_same_study(in_process, suite, tmp_path):
    study = _study(in_process)
    cells = study["datasets"][0]["cells"]
    assert [c["batch"] for c in cells] == [1, 4]
    assert [r["model"] + "@" + r["profile"] for r in cells[0]["rows"]] == \
        ["ann@float32", "snn@float32", "snn@loihi2", "snn@loihi1"]  # fmt: skip
    # 2 cells x 4 rows x (2 recipes + utility), and one report per cell
    assert study["tasks"] == {"total": 26, "computed": 24, "cached": 0, "not_applicable": 0, "reported": 2,
                              "failed": 0, "not_run": 0}  # fmt: skip
    assert study["failed"] == [] and study["execution"]["workers"] == 1

    out = tmp_path / "ray"
    assert run([*_args(suite, out), "--workers", "2"]) == 0
    on_ray = _study(out)
    assert on_ray["execution"]["where"] == "a local Ray instance of 2 CPUs"
    assert _without_timing(on_ray) == _without_timing(study)
    assert (out / "study.md").read_text() == (in_process / "study.md").read_text()
    for b in (1, 4):  # each cell's report too
        ours, theirs = (json.loads((o / "digits" / f"batch{b}" / "report.json").read_text()) for o in (in_process, out))
        assert _without_timing(ours) == _without_timing(theirs)


def test_a_cell_of_the_study_is_the_evaluation_of_its_settings(in_process, suite, tmp_path):
    """The tasks write what `evaluate` computes itself: the same report on the same settings."""
    import dataclasses

    from neurofl.pipelines.evaluate import run_evaluate
    from neurofl.study.plan import StudyConfig, plan_study

    cfg = StudyConfig(out=in_process, datasets="digits", batches="4", victims=2, min_victims=2, iterations=3,
                      train_epochs=0, attack=str(suite), device="cpu")  # fmt: skip
    (cell,) = plan_study(cfg).cells
    report = run_evaluate(dataclasses.replace(cell.cfg, out=tmp_path / "evaluate", workers=1))
    study_report = json.loads((in_process / "digits" / "batch4" / "report.json").read_text())
    assert _without_timing(json.loads(json.dumps(report))) == _without_timing(study_report)


def test_a_rerun_computes_nothing_new(in_process, suite, capsys):
    before = _study(in_process)
    capsys.readouterr()
    assert run(_args(suite, in_process)) == 0
    after = _study(in_process)
    assert after["tasks"] == {"total": 26, "computed": 0, "cached": 24, "not_applicable": 0, "reported": 2,
                              "failed": 0, "not_run": 0}  # fmt: skip
    assert capsys.readouterr().err.count("0 of 12 tasks to run") == 2  # no cell had tasks to run
    assert _without_timing({**after, "tasks": None}) == _without_timing({**before, "tasks": None})


def test_a_failing_task_is_reported_and_the_command_fails(suite, tmp_path, monkeypatch, capsys):
    from neurofl.study import tasks

    def boom(task):
        raise RuntimeError(f"no utility for {task.row_label}\nsecond line")

    out = tmp_path / "study"
    monkeypatch.setitem(tasks.RUNS, "utility", boom)
    assert run(_args(suite, out, batches="1", profiles="loihi2")) == 1
    study = _study(out)
    assert study["failed"] == [{"task": f"digits/batch1 {row} utility", "error": f"RuntimeError: no utility for {row}"}
                               for row in ("ann@float32", "snn@float32", "snn@loihi2")]  # fmt: skip
    assert study["tasks"] == {"total": 10, "computed": 6, "cached": 0, "not_applicable": 0, "reported": 0, "failed": 3,
                              "not_run": 1}  # fmt: skip
    assert study["datasets"][0]["cells"] == []  # no report from a cell with a failed task
    assert not (out / "digits" / "batch1" / "report.json").exists()
    err = capsys.readouterr().err
    assert "error: 3 tasks failed" in err and "FAILED" in err

    monkeypatch.undo()  # the rerun computes what failed, and only that
    assert run(_args(suite, out, batches="1", profiles="loihi2")) == 0
    study = _study(out)
    assert study["failed"] == [] and study["tasks"]["computed"] == 3 and study["tasks"]["cached"] == 6
    assert [c["batch"] for c in study["datasets"][0]["cells"]] == [1]


def test_a_task_failing_in_a_ray_worker_is_reported(suite, tmp_path, capsys):
    out = tmp_path / "study"
    args = _args(suite, out, batches="1", profiles="loihi2")
    assert run(args) == 0
    chunk = next(out.glob("digits/batch1/rows/snn_loihi2-*/inverting_gradients-*/chunk_0000.npz"))
    chunk.write_bytes(b"not a chunk")  # present, so the rerun starts no recipe task; the report task reads it
    assert run([*args, "--workers", "2"]) == 1
    (failure,) = _study(out)["failed"]
    assert failure["task"] == "digits/batch1 report"
    assert failure["error"].startswith("UserError: ") and "not a saved chunk" in failure["error"]
    assert "\n" not in failure["error"]


def test_a_task_refuses_a_folder_the_driver_did_not_open(suite, tmp_path):
    from neurofl.study.plan import StudyConfig, Task, plan_study
    from neurofl.study.tasks import run_task

    cfg = StudyConfig(out=tmp_path / "nowhere", datasets="digits", batches="1", victims=2, min_victims=2,
                      iterations=3, train_epochs=0, profiles="loihi2", attack=str(suite), device="cpu")  # fmt: skip
    (cell,) = plan_study(cfg).cells
    with pytest.raises(RuntimeError, match="config.json is missing"):
        run_task(Task(cell, "utility", "any", "ann@float32"))
    assert not (tmp_path / "nowhere").exists()


def test_an_address_where_nothing_answers_is_refused_in_one_line(suite, tmp_path, capsys):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "study"
    assert run([*_args(suite, out), "--ray-address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --ray-address 127.0.0.1:{port}: nothing answers") and "\n" not in err
    assert not out.exists()
