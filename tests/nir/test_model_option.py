"""``--model MODEL.pt`` on ``evaluate``, ``attack`` and ``fl``: an snnTorch network imported through
NIR is attacked and trained as it is (its weights, topology and profile), the run's identity holds
the file's digest, and a checkpoint that does not fit the asked dataset or profile exits 2 with one line.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from neurofl.cli import main
from neurofl_testing.cli import run_captured as run
from neurofl_testing.nir_nets import write_float_snntorch_nir

snn = pytest.importorskip("snntorch")

FAST = ("--victims", "2", "--clients", "2", "--attack", "inverting_gradients", "--iterations", "5")




@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple:
    """A 64-16-10 snnTorch network (seeded float weights) imported under loihi1: (path, sha256)."""
    folder = tmp_path_factory.mktemp("model")
    write_float_snntorch_nir(folder / "m.nir")
    pt = folder / "m.pt"
    try:
        main(["import", str(folder / "m.nir"), "--profile", "loihi1", "--dt", "1e-4", "--out", str(pt), "--json"])
    except SystemExit as e:
        assert not e.code
    return pt, hashlib.sha256(pt.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def other(imported, tmp_path_factory):
    """The same checkpoint with one weight changed (another file, same header)."""
    from neurofl.models.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(imported[0])
    with torch.no_grad():
        ck.model.blocks[0].synapse.weight.view(-1)[0] += 1.0
    path = tmp_path_factory.mktemp("other") / "m2.pt"
    save_checkpoint(path, ck.model, ck.kind, ck.arch, ck.profile, ck.dataset, None, extra={"seed": 0})
    return path


def _victims_updates(pt):
    """The victims evaluate draws (seed 0, 2 victims, 2 clients) and their updates on the loaded model."""
    from neurofl.data import load_dataset, split_dataset
    from neurofl.leakage.victims import draw_victims, shared_updates
    from neurofl.models.checkpoint import load_checkpoint

    ck = load_checkpoint(pt)
    victims = draw_victims(split_dataset(load_dataset("digits"), 0).clients, 2, 1, 2, 0)
    return shared_updates(ck.model, victims, ck.profile, 0)


def test_evaluate_attacks_the_files_model(imported, other, capsys, tmp_path, monkeypatch):
    import neurofl.pipelines.evaluate as ev

    pt, digest = imported
    targets = {}
    original = ev.attack_row

    def recording(target, *args, **kwargs):
        targets[target.kind] = target
        return original(target, *args, **kwargs)

    monkeypatch.setattr(ev, "attack_row", recording)
    out = tmp_path / "ev"
    # --workers 1: the rows run in this process, where the recording wrapper sees their targets
    code, stdout, err = run(capsys, "evaluate", "--model", str(pt), *FAST, "--train-epochs", "0", "--workers", "1",
                            "--out", str(out), "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    assert report["model_file"]["sha256"] == digest and report["profile"] == "loihi1"
    rows = {r["model"]: r for r in report["results"]}
    assert set(rows) == {"ann", "snn"} and rows["snn"]["profile"] == "loihi1"
    assert rows["snn"]["weights"] == f"file {digest[:12]}" and rows["ann"]["weights"] == "seed 0, round 1"
    assert rows["snn"]["test_accuracy"] is not None  # the file's model, measured untrained
    assert digest in (out / "config.json").read_text() and digest[:12] in (out / "report.md").read_text()
    # the SNN row's updates are the per-sample gradients of the loaded model; the ANN has its topology
    expected = _victims_updates(pt)
    assert expected.keys() == targets["snn"].update.keys()
    for name, t in expected.items():
        assert torch.equal(t, targets["snn"].update[name]), name
    assert [tuple(t.shape[1:]) for t in targets["ann"].update.values()] == [(16, 64), (10, 16)]
    # another file never resumes into this run folder
    code, _, err = run(capsys, "evaluate", "--model", str(other), *FAST, "--train-epochs", "0", "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_attack_takes_the_files_model(imported, capsys, tmp_path):
    pt, digest = imported
    code, stdout, err = run(capsys, "attack", "--model", str(pt), *FAST, "--out", str(tmp_path / "a"), "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["model_file"]["sha256"] == digest and report["results"][0]["model"] == "snn"
    assert report["profile"] == "loihi1" and digest in (tmp_path / "a" / "config.json").read_text()


def test_fl_starts_from_the_files_weights(imported, other, capsys, tmp_path):
    from neurofl.data import load_dataset, split_dataset
    from neurofl.federated.server import evaluate
    from neurofl.models.checkpoint import load_checkpoint

    pt, digest = imported
    out = tmp_path / "fl"
    code, stdout, err = run(capsys, "fl", "--model", str(pt), "--clients", "2", "--rounds", "1", "--out", str(out),
                            "--json")  # fmt: skip
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["model_file"]["sha256"] == digest and summary["profile"] == "loihi1"
    test = split_dataset(load_dataset("digits"), 0).test
    initial = evaluate(load_checkpoint(pt).model, torch.from_numpy(test.x), torch.from_numpy(test.y), 0)
    assert summary["history"][0]["loss"] == pytest.approx(initial["loss"], abs=1e-9)
    code, _, err = run(capsys, "fl", "--model", str(other), "--clients", "2", "--rounds", "2", "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "initial_model" in err, err


@pytest.mark.parametrize(
    "command, extra, expected",
    [
        ("evaluate", ("--profile", "loihi2"), "holds an SNN for profile 'loihi1'"),
        ("evaluate", ("--dataset", "faces"), "holds a model of dataset 'digits'"),
        ("attack", ("--profile", "loihi2"), "holds an SNN for profile 'loihi1'"),
        ("fl", ("--dataset", "faces", "--clients", "2", "--rounds", "1"), "holds a model of dataset 'digits'"),
        ("evaluate", ("--arch", "conv"), "holds a mlp model"),
    ],
)
def test_a_model_that_does_not_fit_is_refused(imported, capsys, tmp_path, command, extra, expected):
    out = tmp_path / "out"
    code, _, err = run(capsys, command, "--model", str(imported[0]), *extra, "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("command", ["evaluate", "attack", "fl"])
def test_missing_or_hostile_checkpoint_is_refused(capsys, tmp_path, command):
    hostile = tmp_path / "hostile.pt"
    hostile.write_text("not a torch file")
    extra = ("--clients", "2", "--rounds", "1") if command == "fl" else ()
    for path, expected in ((tmp_path / "missing.pt", "no such file"), (hostile, "not a readable checkpoint")):
        code, _, err = run(capsys, command, "--model", str(path), *extra, "--out", str(tmp_path / "out"))
        assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err


def test_evaluate_with_an_ann_checkpoint_builds_the_snn_rows_with_its_topology(capsys, tmp_path):
    from neurofl.data import load_dataset
    from neurofl.models import Architecture, build_model
    from neurofl.models.checkpoint import save_checkpoint
    from neurofl.profiles import load_profile

    arch = Architecture(tuple(load_dataset("digits").input_shape), 10, (16,))
    pt = tmp_path / "ann.pt"
    save_checkpoint(pt, build_model("ann", arch, load_profile("float32"), seed=3), "ann", arch, load_profile("float32"),
                    "digits", None, extra={"seed": 3})  # fmt: skip
    code, stdout, err = run(capsys, "evaluate", "--model", str(pt), "--profile", "loihi2", *FAST, "--train-epochs", "0",
                            "--out", str(tmp_path / "ev"), "--json")  # fmt: skip
    assert code == 0, err
    rows = [(r["model"], r["profile"], r["weights"].split()[0]) for r in json.loads(stdout)["results"]]
    assert rows == [("ann", "float32", "file"), ("snn", "float32", "seed"), ("snn", "loihi2", "seed")]
