"""Energy per inference of the chip networks (issue 13): synaptic events counted from the network's own
events equal an independent count, energy is counts x the published figures, and a profile whose
per-operation energy is "unknown" gives no energy (None), never zero."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from neurofl.deploy.chip_resources import estimate_chip_resources
from neurofl.deploy.resources import estimate_resources
from neurofl.errors import UserError
from neurofl.models import Architecture
from neurofl.models.factory import build_model
from neurofl.profiles import load_profile, shipped_profiles

ARCH = Architecture((1, 4, 4), 3, hidden=(5,))
SEED = 3


def _edited(tmp_path: Path, base: str, replace: dict[str, str], append: str = "") -> Path:
    """A copy of shipped profile ``base`` with the lines starting ``key =`` replaced (``{key: value}``)."""
    lines = shipped_profiles()[base].read_text().splitlines()
    for key, value in replace.items():
        lines = [f"{key} = {value}" if re.match(rf"{key}\s*=", line) else line for line in lines]
    path = tmp_path / f"{base}-edited.toml"
    path.write_text("\n".join(lines) + "\n" + append)
    return path


def _hand_made(profile_name_or_path: str | Path) -> tuple[torch.nn.Module, torch.Tensor]:
    """A 16-5-3 chip network with integer weights set by hand (about 40% zeros) and seeded inputs."""
    p = load_profile(profile_name_or_path)
    model = build_model("snn", ARCH, p, seed=0)
    rng = np.random.default_rng(SEED)
    for syn in (model.synapse_in, model.synapse_out):
        w = rng.integers(-100, 101, size=tuple(syn.weight.shape)) * (rng.random(tuple(syn.weight.shape)) > 0.4)
        syn.weight.data = torch.as_tensor(w / p.weights.scale, dtype=syn.weight.dtype)
    x = torch.as_tensor(rng.random((7, 1, 4, 4)), dtype=torch.float32)
    return model, x


def _loop_count(model: torch.nn.Module, x: torch.Tensor, seed: int) -> float:
    """Synaptic events by a plain loop: every input and hidden event, every nonzero weight it reaches."""
    with torch.no_grad():
        counts = model.input_spikes(x, torch.Generator().manual_seed(seed))
        hidden, _ = model.run(counts)
        w_in, w_out = (w.detach().numpy() for w in model.integer_weights())
    total = 0
    for events, w in ((counts.numpy(), w_in), (hidden.numpy(), w_out)):
        for b in range(events.shape[0]):
            for i in range(events.shape[1]):
                for t in range(events.shape[2]):
                    for _ in range(int(events[b, i, t])):  # one event at a time
                        total += sum(1 for j in range(w.shape[1]) if w[i, j] != 0)
    return total / x.shape[0]


@pytest.mark.parametrize("name", ["speck", "xylo-imu", "truenorth", "akd1000", "spinnaker2"])
def test_synaptic_events_equal_an_independent_count(name):
    model, x = _hand_made(name)
    rep = estimate_chip_resources(model, model.profile, x, seed=SEED)
    assert rep.hidden_events.value > 0  # the hidden population fires: the count covers both projections
    assert rep.synaptic_events.value == pytest.approx(_loop_count(model, x, SEED), rel=0, abs=1e-9)
    hidden, classes = ARCH.hidden[0], ARCH.classes
    assert rep.neuron_updates.value == (hidden + classes) * model.time_steps


def test_energy_is_counts_times_the_published_figures(tmp_path):
    path = _edited(tmp_path, "speck", {"energy_per_synop_pj": "3.5", "energy_per_neuron_update_pj": "0.25"})
    model, x = _hand_made(path)
    rep = estimate_chip_resources(model, model.profile, x, seed=SEED)
    expected = (rep.synaptic_events.value * 3.5 + rep.neuron_updates.value * 0.25) / 1e6
    assert rep.energy_per_inference.value == pytest.approx(expected, rel=1e-12)
    assert rep.energy_per_inference.unit == "uJ"
    assert rep.energy_per_inference.source.startswith("measured x published")


def test_truenorth_prices_synaptic_events_at_merolla_26_pj():
    model, x = _hand_made("truenorth")
    rep = estimate_chip_resources(model, model.profile, x, seed=SEED)
    assert rep.energy_per_inference.value == pytest.approx(rep.synaptic_events.value * 26.0 / 1e6, rel=1e-12)
    assert "Merolla" in rep.energy_per_inference.source


@pytest.mark.parametrize("name", ["speck", "xylo-audio2", "xylo-imu", "akd1000", "spinnaker2"])
def test_unknown_energy_gives_none_not_zero(name):
    p = load_profile(name)
    assert p.resources.energy_per_synop_pj is None  # written "unknown" in the TOML
    model = build_model("snn", Architecture((1, 8, 8), 3, hidden=(5,)), p, seed=0)
    rep = estimate_chip_resources(model, p, torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert rep.energy_per_inference is None
    assert "not published" in rep.energy_note
    assert rep.synaptic_events.value >= 0  # the measured counts are reported either way


def test_unknown_energy_on_a_loihi_profile_gives_none(tmp_path):
    p = load_profile(_edited(tmp_path, "loihi2", {"energy_per_neuron_update_pj": '"unknown"'}))
    model = build_model("snn", Architecture((4, 4), 3, hidden=(5,)), p, seed=0)
    rep = estimate_resources(model, p, torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0)))
    assert rep.energy_per_inference is None
    assert rep.synops_per_inference.value >= 0


def test_resources_keys_are_refused_where_they_do_nothing(tmp_path):
    with pytest.raises(UserError, match=r"key 'resources\.cores': per-core limits"):
        load_profile(_edited(tmp_path, "truenorth", {}, append="cores = 4096\n"))
    no_neurons = tmp_path / "loihi2-no-neurons.toml"
    no_neurons.write_text(shipped_profiles()["loihi2"].read_text().replace("neurons_per_core = 8192\n", ""))
    with pytest.raises(UserError, match=r"missing key 'resources\.neurons_per_core'"):
        load_profile(no_neurons)
    with pytest.raises(UserError, match=r"key 'resources\.energy_per_synop_pj' must be >= 0"):
        load_profile(_edited(tmp_path, "truenorth", {"energy_per_synop_pj": "-1.0"}))
    with pytest.raises(UserError, match=r"key 'resources\.cores'"):  # "unknown" only for energies
        load_profile(_edited(tmp_path, "loihi2", {"cores": '"unknown"'}))
