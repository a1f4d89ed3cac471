"""The shipped netx_models/ still load in NetX and reproduce their recorded Lava parity: the digits MLPs
under both Loihi profiles, and one conv SNN per other embedded dataset (faces under loihi2, graded
input on the payload grid; dvs-digits under loihi1, binary event frames). Not a single bin may differ."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

from neurofl.data import Splits, load_dataset, split_dataset
from neurofl.deploy.netx import read_netx
from neurofl.deploy.parity import reference_model, verify_netx
from neurofl.deploy.resources import estimate_resources

FOLDER = Path(__file__).resolve().parents[2] / "netx_models"
MANIFEST = json.loads((FOLDER / "manifest.json").read_text())["models"]
IDS = [m["file"] for m in MANIFEST]
# each shipped file stays small (conv files: ~80 KB, mostly the JSON header and HDF5 overhead)
MAX_FILE_BYTES = 100_000


@functools.cache
def _splits(dataset: str, seed: int) -> Splits:
    return split_dataset(load_dataset(dataset), seed)


def test_manifest_covers_both_loihi_profiles():
    assert {m["profile"] for m in MANIFEST} >= {"loihi1", "loihi2"}
    for m in MANIFEST:
        assert (FOLDER / m["file"]).stat().st_size < MAX_FILE_BYTES
        assert m["slayer_test_accuracy"] >= 0.9


def test_manifest_ships_a_conv_model_per_embedded_dataset():
    """faces (graded input, loihi2) and dvs-digits (event frames) as conv SNNs, each header's
    architecture a strided conv network and each row saying how to rebuild it."""
    conv = {(m["dataset"], m["profile"]): m for m in MANIFEST if m.get("arch") == "conv"}
    assert set(conv) >= {("faces", "loihi2"), ("dvs-digits", "loihi1")}
    for m in conv.values():
        nf = read_netx(FOLDER / m["file"])
        assert nf.header["architecture"]["type"] == "conv" and nf.header["dataset"] == m["dataset"]
        assert m["build"].endswith(f"netx_models/build.py --only {m['file']}")
    assert read_netx(FOLDER / conv[("faces", "loihi2")]["file"]).graded_input


@pytest.mark.timeout(300)
@pytest.mark.parametrize("entry", MANIFEST, ids=IDS)
def test_recorded_parity_still_holds(entry):
    nf = read_netx(FOLDER / entry["file"])
    assert nf.profile.name == entry["profile"]
    test = _splits(entry["dataset"], entry["seed"]).test
    want = entry["verify"]
    rep = verify_netx(nf, test, want["samples"], entry["seed"])
    assert rep.mismatched_bins == 0 and rep.spike_agreement == 1.0  # not a single bin differs
    assert rep.slayer_spikes > 100  # not agreement on silence
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


@pytest.mark.parametrize("entry", MANIFEST, ids=IDS)
def test_recorded_resources_still_hold(entry):
    """The manifest's resource figures are those neurofl.deploy.resources gives for the file on the
    whole test split (SLAYER only: no Lava run)."""
    nf = read_netx(FOLDER / entry["file"])
    test = _splits(entry["dataset"], entry["seed"]).test
    res = estimate_resources(reference_model(nf), nf.profile, torch.from_numpy(test.x), entry["seed"])
    want = entry["resources"]
    assert res.problems == ()
    assert want["samples"] == res.samples == len(test.y)
    assert want["cores"] == res.cores_used.value
    assert want["synapse_memory_kib"] == pytest.approx(res.synapse_memory.value)
    assert want["synops_per_inference"] == pytest.approx(res.synops_per_inference.value)
    assert want["neuron_updates_per_inference"] == pytest.approx(res.neuron_updates_per_inference.value)
    assert want["energy_per_inference_uj"] == pytest.approx(res.energy_per_inference.value)
    sources = {
        "cores": res.cores_used.source,
        "synapse_memory": res.synapse_memory.source,
        "synops": res.synops_per_inference.source,
        "neuron_updates": res.neuron_updates_per_inference.source,
        "energy": res.energy_per_inference.source,
    }
    assert want["sources"] == sources
    # each figure says how it was obtained: counted on the inputs, from the topology, from published limits
    basis = {k: v.split(":")[0].split(" (")[0] for k, v in sources.items()}
    assert basis == {
        "cores": "derived",
        "synapse_memory": "derived",
        "synops": "measured",
        "neuron_updates": "counted",
        "energy": "measured x published",
    }
