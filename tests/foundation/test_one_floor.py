"""One chance pool for the three threat models: `evaluate`, `attack` and the malicious server score the
same victims against the same floors, under both judges."""

from __future__ import annotations

import pytest

from neurofl.pipelines.attack import AttackConfig, run_attack
from neurofl.pipelines.evaluate import EvaluateConfig, run_evaluate
from neurofl.pipelines.malicious import run_malicious

SETTINGS = {"victims": 2, "batch_size": 4, "clients": 2, "seed": 0}


# faces: the auxiliary split holds background patches too; the random guesses come from its faces
@pytest.mark.parametrize("dataset", ["digits", "faces"])
def test_evaluate_attack_and_the_malicious_server_share_their_floors(tmp_path, dataset):
    ev = run_evaluate(EvaluateConfig(profiles=("loihi2",), dataset=dataset, attack="inverting_gradients",
                                     iterations=2, train_epochs=0, workers=1, device="cpu", out=tmp_path / "ev",
                                     **SETTINGS))  # fmt: skip
    at = run_attack(AttackConfig(recipe="inverting_gradients", model="snn", profile="loihi2", dataset=dataset,
                                 iterations=2, device="cpu", **SETTINGS), out=tmp_path / "at")  # fmt: skip
    mal = run_malicious(EvaluateConfig(profiles=("loihi2",), dataset=dataset, attack="suite", device="cpu",
                                       out=tmp_path / "mal", **SETTINGS))  # fmt: skip
    assert ev["chance_empirical"] == at["chance_empirical"] == mal["chance"]
    assert ev["identification"]["chance"] == at["identification"]["chance"] == mal["identification"]["chance"]
    # the prototypes pass the label judge and identify nobody
    assert ev["identification"]["chance"]["class_mean"] == 0.0
    if dataset == "digits":
        assert ev["chance_empirical"]["class_mean"] > 0.5
