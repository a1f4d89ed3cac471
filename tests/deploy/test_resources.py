"""Resource and energy estimates: exact counts on inputs whose spike counts are known."""

from __future__ import annotations

import math

import pytest
import torch

from neurofl.data.encoding import encode
from neurofl.deploy.resources import estimate_resources
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile, shipped_profiles

ARCH = Architecture((1, 8, 8), 10, hidden=(128,))


def test_silent_input_costs_only_neuron_updates():
    p = load_profile("loihi1")
    rep = estimate_resources(build_model("snn", ARCH, p, seed=0), p, torch.zeros(5, 1, 8, 8))
    assert rep.synops_per_inference.value == 0
    updates = (128 + 10) * p.simulation.time_steps
    assert rep.neuron_updates_per_inference.value == updates
    assert rep.energy_per_inference.value == pytest.approx(updates * p.resources.energy_per_neuron_update_pj / 1e6)
    assert rep.energy_per_inference.unit == "uJ" and "pJ" in rep.energy_per_inference.source


def test_synops_are_events_times_fan_out():
    p = load_profile("loihi1")  # rate code: intensity 1 spikes every step
    model = build_model("snn", ARCH, p, seed=0)
    x = torch.ones(3, 1, 8, 8)
    rep = estimate_resources(model, p, x, seed=0)
    steps = p.simulation.time_steps
    assert rep.layers[0].events_in == 64 * steps and rep.layers[0].synops == 64 * steps * 128
    with torch.no_grad():
        hidden = model.blocks[0](encode(x, "rate", steps, torch.Generator().manual_seed(0)))
    assert rep.layers[1].events_in == pytest.approx(float(hidden.sum()) / 3)
    assert rep.synops_per_inference.value == pytest.approx(rep.layers[0].synops + rep.layers[1].synops)
    e = rep.synops_per_inference.value * 23.6 + rep.neuron_updates_per_inference.value * 52.0
    assert rep.energy_per_inference.value == pytest.approx(e / 1e6)


def test_graded_input_counts_nonzero_values(digits_splits):
    p = load_profile("loihi2")
    x = torch.from_numpy(digits_splits.test.x[:10])
    rep = estimate_resources(build_model("snn", ARCH, p, seed=0), p, x)
    assert rep.layers[0].events_in == pytest.approx(float((x != 0).sum()) / 10 * p.simulation.time_steps)


def test_cores_follow_the_per_core_limits(tmp_path):
    text = shipped_profiles()["loihi2"].read_text()
    for old, new in (
        ("neurons_per_core = 8192", "neurons_per_core = 50"),
        ("synapse_memory_kib_per_core = 128", "synapse_memory_kib_per_core = 1"),
    ):
        text = text.replace(old, new)
    (tmp_path / "small.toml").write_text(text)
    p = load_profile(tmp_path / "small.toml")
    rep = estimate_resources(build_model("snn", ARCH, p, seed=0), p, torch.zeros(1, 1, 8, 8))
    # layer 0: 64 one-byte synapses per neuron -> 16 neurons per 1 KiB core -> 8 cores; layer 1: 128 B -> 8 per core
    assert [layer.cores for layer in rep.layers] == [max(math.ceil(128 / 50), 128 // 16), math.ceil(10 / 8)]
    assert rep.cores_used.value == 10 and rep.problems == ()
    assert rep.synapse_memory.value == pytest.approx((64 * 128 + 128 * 10) / 1024)


def test_profile_without_resources_has_no_energy():
    p = load_profile("float32")
    rep = estimate_resources(build_model("snn", ARCH, p, seed=0), p, torch.zeros(1, 1, 8, 8))
    assert rep.energy_per_inference is None and rep.cores_available is None
