"""The shipped netx_models/ still load in NetX and reproduce their recorded Lava parity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurofl.data import load_dataset, split_dataset
from neurofl.deploy.netx import read_netx
from neurofl.deploy.parity import verify_netx

FOLDER = Path(__file__).resolve().parents[2] / "netx_models"
MANIFEST = json.loads((FOLDER / "manifest.json").read_text())["models"]


def test_manifest_covers_both_loihi_profiles():
    assert {m["profile"] for m in MANIFEST} >= {"loihi1", "loihi2"}
    for m in MANIFEST:
        assert (FOLDER / m["file"]).stat().st_size < 100_000
        assert m["slayer_test_accuracy"] >= 0.9


@pytest.mark.parametrize("entry", MANIFEST, ids=[m["file"] for m in MANIFEST])
def test_recorded_parity_still_holds(entry):
    nf = read_netx(FOLDER / entry["file"])
    assert nf.profile.name == entry["profile"]
    test = split_dataset(load_dataset(entry["dataset"]), entry["seed"]).test
    want = entry["verify"]
    rep = verify_netx(nf, test, want["samples"], entry["seed"])
    for key in (
        "compared_bins",
        "mismatched_bins",
        "slayer_spikes",
        "lava_spikes",
        "spike_agreement",
        "spike_agreement_chip_grid",
        "classification_agreement",
        "slayer_accuracy",
        "lava_accuracy",
    ):
        assert getattr(rep, key) == want[key], key
