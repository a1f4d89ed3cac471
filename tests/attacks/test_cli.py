"""`neurofl attack`: the CLI contract (one JSON object, exit 2 on bad input, resumable --out)."""

from __future__ import annotations

import json

import pytest

from neurofl.federated.capture import CapturedUpdate, save_captured
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile, quantize_update
from neurofl_testing.cli import run_captured as _run


def test_attack_json_out_and_resume(tmp_path, capsys):
    args = ["attack", "--recipe", "inverting_gradients", "--model", "ann", "--profile", "float32",
            "--victims", "3", "--iterations", "10", "--json", "--out", str(tmp_path / "run")]
    code, out, _ = _run(capsys, *args)
    assert code == 0
    report = json.loads(out)  # exactly one JSON object
    row = report["results"][0]
    assert row["victims"] == 3 and row["model"] == "ann" and row["label_accuracy"] == 1.0
    assert row["psnr"] > 40  # batch 1: the first layer's gradient determines the input
    # one attack ran: its worst case's floor is the single-guess floor
    assert row["chance_worst_case"] == max(v for v in report["chance_empirical"].values() if v is not None)
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"report.json", "reconstructions.npz", "config.json"}
    code, again, _ = _run(capsys, *args)
    assert code == 0 and json.loads(again) == report
    code, _, err = _run(capsys, *[a if a != "10" else "11" for a in args])
    assert code == 2 and "different settings" in err


@pytest.mark.parametrize(
    "line,needle",
    [
        ("iterations = -5", "iterations"),
        ('attack = "magic"', "attack"),
        ("colour = 3", "colour"),
    ],
)
def test_bad_recipe_exits_2_naming_the_key(tmp_path, capsys, line, needle):
    good = tmp_path / "recipe.toml"
    from neurofl.shipped import shipped_tomls

    text = shipped_tomls("attacks")["inverting_gradients"].read_text()
    key = line.split("=")[0].strip()
    lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key} =")] + [line]
    good.write_text("\n".join(lines) + "\n")
    code, out, err = _run(capsys, "attack", "--recipe", str(good), "--json")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def test_unknown_recipe_name_exits_2(capsys):
    code, _, err = _run(capsys, "attack", "--recipe", "no_such_attack")
    assert code == 2 and "no_such_attack" in err


def test_fedavg_local_steps(capsys):
    code, out, _ = _run(capsys, "attack", "--model", "ann", "--profile", "float32", "--victims", "2",
                        "--recipe", "inverting_gradients", "--local-steps", "3", "--iterations", "10", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["local_steps"] == 3
    # A 3-step delta of one sample is still dz x^T in the first layer: the readout is exact.
    assert report["results"][0]["psnr"] > 40


@pytest.mark.parametrize("kind,steps", [("gradient", 1), ("delta", 3)])
def test_captured_updates(tmp_path, capsys, digits, kind, steps):
    """Updates recorded by federated training are attacked as they were captured."""
    from neurofl.attacks.fedavg import local_update

    prof = load_profile("loihi2")
    arch = Architecture((1, 8, 8), 10)
    model = build_model("snn", arch, prof, seed=4)
    x, y = digits[0][:2], digits[1][:2]
    if kind == "gradient":
        upd = per_sample_gradients(model, x, y)
    else:
        upd = local_update(model, x, y, batch=1, steps=steps, lr=0.1)
    upd = {k: quantize_update(v.detach(), prof.update) for k, v in upd.items()}
    from neurofl.data import load_dataset
    from neurofl.models.checkpoint import profile_to_dict
    from neurofl.runs.identity import dataset_identity

    provenance = {"seed": 3, "profile_table": profile_to_dict(prof), "dataset_identity": dataset_identity(
        load_dataset("digits")), "run": "0" * 64}  # fmt: skip
    caps = tmp_path / "caps"
    for c in range(2):
        save_captured(caps, CapturedUpdate(
            round=1, client=c, profile="loihi2", dataset="digits", model_kind="snn", arch=arch,
            state_dict=model.state_dict(), update={k: v[c : c + 1] for k, v in upd.items()}, kind=kind,
            batch=1, local_steps=steps, lr=0.1, true_inputs=x[c : c + 1], true_labels=y[c : c + 1], **provenance,
        ))
    code, out, err = _run(capsys, "attack", "--updates", str(caps), "--recipe", "inverting_gradients",
                          "--iterations", "5", "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    row = report["results"][0]
    assert row["victims"] == 2 and row["model"] == "snn" and row["label_accuracy"] == 1.0
    assert row["psnr"] > 30  # the 8-bit readout of the first layer (measured ~60 dB at 8 bits)
    assert report["split_seed"] == 3  # the oracle is fitted on the run's own split, whatever --seed says
    # the same captures against another dataset's content are refused
    code, _, err = _run(capsys, "attack", "--updates", str(caps), "--dataset", "dvs-digits", "--json")
    assert code == 2 and "captured on dataset" in err


def test_captures_without_provenance_are_refused(tmp_path, capsys, digits):
    prof = load_profile("float32")
    arch = Architecture((1, 8, 8), 10)
    model = build_model("ann", arch, prof, seed=0)
    upd = per_sample_gradients(model, digits[0][:1], digits[1][:1])
    save_captured(tmp_path, CapturedUpdate(
        round=1, client=0, profile="float32", dataset="digits", model_kind="ann", arch=arch,
        state_dict=model.state_dict(), update={k: v.detach() for k, v in upd.items()}, kind="gradient",
        batch=1, local_steps=1, lr=0.1, true_inputs=digits[0][:1], true_labels=digits[1][:1],
    ))  # fmt: skip
    code, _, err = _run(capsys, "attack", "--updates", str(tmp_path), "--json")
    assert code == 2 and "provenance" in err and len(err.strip().splitlines()) == 1


def _clopper_pearson(k: int, n: int) -> list[float]:
    from scipy.stats import beta

    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    return [lo, 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))]


def test_captures_of_mixed_batch_sizes_merge_to_each_size_attacked_alone(tmp_path, capsys, digits):
    """Captures of batches of 1 and 2 (DP-SGD's Poisson sampling makes such folders), attacked
    together: the per-sample results are those of each size attacked from a folder of its own, one
    after the other; successes add up, the intervals are those of the sums, and every chance level
    is the groups' levels weighted by their samples."""
    import shutil

    import numpy as np

    from neurofl.data import load_dataset
    from neurofl.models.checkpoint import profile_to_dict
    from neurofl.runs.identity import dataset_identity

    prof = load_profile("float32")
    arch = Architecture((1, 8, 8), 10)
    model = build_model("ann", arch, prof, seed=0)
    provenance = {"seed": 3, "profile_table": profile_to_dict(prof), "dataset_identity": dataset_identity(
        load_dataset("digits")), "run": "0" * 64}  # fmt: skip
    mixed, alone = tmp_path / "mixed", {1: tmp_path / "b1", 2: tmp_path / "b2"}
    start = 0
    for c, b in enumerate((1, 2, 1)):
        x, y = digits[0][start : start + b], digits[1][start : start + b]
        start += b
        upd = {k: v.detach().mean(0, keepdim=True) for k, v in per_sample_gradients(model, x, y).items()}
        save_captured(mixed, CapturedUpdate(
            round=1, client=c, profile="float32", dataset="digits", model_kind="ann", arch=arch,
            state_dict=model.state_dict(), update=upd, kind="gradient", batch=b, local_steps=1, lr=0.1,
            true_inputs=x, true_labels=y, **provenance,
        ))  # fmt: skip
        alone[b].mkdir(exist_ok=True)
        name = f"round00001_client{c:06d}.pt"
        shutil.copyfile(mixed / name, alone[b] / name)

    def attack(folder):
        args = ["attack", "--updates", str(folder), "--recipe", "inverting_gradients", "--iterations", "5",
                "--json", "--out", str(tmp_path / f"out-{folder.name}")]  # fmt: skip
        code, out, err = _run(capsys, *args)
        assert code == 0, err
        with np.load(tmp_path / f"out-{folder.name}" / "reconstructions.npz") as z:
            return json.loads(out), z["reconstructions"], z["originals"]

    (rep, rec, orig), (r1, rec1, orig1), (r2, rec2, orig2) = attack(mixed), attack(alone[1]), attack(alone[2])
    assert rep["batch_size"] is None and rep["batch_sizes"] == {"1": 2, "2": 2}
    assert r1["batch_size"] == 1 and r2["batch_size"] == 2
    # per sample: batch 1's samples, then batch 2's, exactly as each size alone
    np.testing.assert_array_equal(orig, np.concatenate([orig1, orig2]))
    np.testing.assert_array_equal(rec, np.concatenate([rec1, rec2]))
    row, a, b = rep["results"][0], r1["results"][0], r2["results"][0]
    assert row["victims"] == 3 and row["samples"] == 4
    for got, one, two in ((row, a, b), *((row["per_attack"][k], a["per_attack"][k], b["per_attack"][k])
                                          for k in row["per_attack"])):  # fmt: skip
        for key in ("asr", "iip", "iip_features"):
            k = one[f"{key}_successes"] + two[f"{key}_successes"]
            assert got[f"{key}_successes"] == k and got[key] == k / 4
            assert got[f"{key}_ci95"] == pytest.approx(_clopper_pearson(k, 4), abs=1e-12)
    ig = (row["per_attack"]["inverting_gradients"], a["per_attack"]["inverting_gradients"],
          b["per_attack"]["inverting_gradients"])  # fmt: skip
    assert ig[0]["label_accuracy"] == (2 * ig[1]["label_accuracy"] + 2 * ig[2]["label_accuracy"]) / 4
    # chance levels: sample-weighted over the sizes; batch_mean exists at batch 2 only
    for mine, one, two in ((rep["chance_empirical"], r1["chance_empirical"], r2["chance_empirical"]),
                           (rep["identification"]["chance"], r1["identification"]["chance"],
                            r2["identification"]["chance"])):  # fmt: skip
        for key in ("random_images", "class_mean", "label_image"):
            assert mine[key] == pytest.approx((2 * one[key] + 2 * two[key]) / 4, abs=1e-12)
        assert one["batch_mean"] is None and mine["batch_mean"] == two["batch_mean"]
    exact = rep["identification"]["chance"]["exact"]
    assert exact == pytest.approx((2 * r1["identification"]["chance"]["exact"]
                                   + 2 * r2["identification"]["chance"]["exact"]) / 4, abs=1e-12)  # fmt: skip
    # one attack ran: the worst case's floor is the highest single-guess level
    assert row["chance_worst_case"] == max(v for v in rep["chance_empirical"].values() if v is not None)


def test_captured_fedavg_epochs_are_attacked_with_their_minibatch(tmp_path, capsys, monkeypatch):
    """`neurofl fl` FedAvg captures (2 local steps of 2 fresh samples each) are attacked by the
    minibatch-aware attacker: the target carries the captures' minibatch, the report records it."""
    import neurofl.pipelines.attack as pipeline
    from neurofl.data import load_dataset
    from neurofl.federated import fl_config
    from neurofl.federated.engine import run_local
    from neurofl.federated.task import make_task

    cfg = fl_config({"clients": 8, "rounds": 1, "strategy": "fedavg", "local_steps": 2, "batch": 2, "lr": 0.1,
                     "capture_rounds": [1], "capture_clients": 2, "seed": 1})  # fmt: skip
    run_local(make_task(load_dataset("digits"), "ann", load_profile("float32"), cfg), tmp_path / "fl")
    seen = []
    real = pipeline.attack_row

    def spy(target, *args, **kwargs):
        seen.append((target.batch, target.local_steps, target.minibatch))
        return real(target, *args, **kwargs)

    monkeypatch.setattr(pipeline, "attack_row", spy)
    code, out, err = _run(capsys, "attack", "--updates", str(tmp_path / "fl" / "updates"), "--recipe",
                          "inverting_gradients", "--iterations", "3", "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert seen == [(4, 2, 2)]  # one group: both clients' 4 samples, walked 2 per step
    assert report["batch_size"] == 4 and report["local_steps"] == 2
    assert report["minibatch"] == 2 and report["minibatches"] == {"4": 2}
    assert report["results"][0]["victims"] == 2 and report["results"][0]["samples"] == 8


@pytest.mark.parametrize("value", [3, 1, "2"])
def test_a_capture_with_a_bad_minibatch_exits_2_naming_it(tmp_path, capsys, value):
    """A minibatch that does not divide the batch (3 of 4), cannot walk it in the local steps (two
    steps of 1 of 4 samples) or is no integer: exit 2, one line naming the file and the key."""
    import torch

    from neurofl.data import load_dataset
    from neurofl.federated import fl_config
    from neurofl.federated.engine import run_local
    from neurofl.federated.task import make_task

    cfg = fl_config({"clients": 8, "rounds": 1, "strategy": "fedavg", "local_steps": 2, "batch": 2,
                     "capture_rounds": [1], "capture_clients": 1})  # fmt: skip
    run_local(make_task(load_dataset("digits"), "ann", load_profile("float32"), cfg), tmp_path / "fl")
    (path,) = (tmp_path / "fl" / "updates").glob("*.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["batch"] == 4 and payload["minibatch"] == 2
    torch.save({**payload, "minibatch": value}, path)
    code, out, err = _run(capsys, "attack", "--updates", str(path.parent), "--iterations", "1", "--json")
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert str(path) in lines[0] and "'minibatch'" in lines[0] and "Traceback" not in err
