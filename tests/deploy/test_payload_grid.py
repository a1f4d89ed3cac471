"""Graded input on the chip's payload grid: a loihi2 SNN rounds its direct-encoded input to the 1/64 grid
of Loihi's graded spike payloads (``round(64 x)``) in training, attack simulation and export alike, so a
file and the chip see the same input. faces' pixels are off that grid; digits' 17 grey levels are on it
and pass bit for bit unchanged (the shipped digits models did not move). No Lava run here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurofl.data import load_dataset
from neurofl.deploy.export import INPUT_FRAC_BITS
from neurofl.deploy.trace import encoded_input
from neurofl.models import Architecture, architecture_for, build_model
from neurofl.models.snn import GRADED_INPUT_FRAC_BITS, on_payload_grid
from neurofl.profiles import load_profile

GRID = 1 << GRADED_INPUT_FRAC_BITS


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return torch.from_numpy(load_dataset("faces").x[:8])


def test_exported_files_record_the_models_grid():
    assert INPUT_FRAC_BITS == GRADED_INPUT_FRAC_BITS == 6


def test_faces_pixels_are_off_the_grid_and_the_model_puts_them_on_it(faces):
    assert np.mean(faces.numpy() * GRID != np.round(faces.numpy() * GRID)) > 0.5  # the dataset is not on the grid
    model = build_model("snn", architecture_for((1, 25, 25), 2), load_profile("loihi2"), seed=0)
    s = encoded_input(model, faces, seed=0)  # (8, 625, T): what training, the attack and the file all see
    want = torch.round(faces.reshape(8, -1, 1) * GRID) / GRID
    assert torch.equal(s, want.expand_as(s))


def test_forward_sees_the_gridded_input(faces):
    """model(x) (training, attacks) equals model(grid(x)): the network never sees the off-grid values."""
    model = build_model("snn", architecture_for((1, 25, 25), 2), load_profile("loihi2"), seed=0).eval()
    with torch.no_grad():
        a, b = model.spikes(faces), model.spikes(torch.round(faces * GRID) / GRID)
    assert torch.equal(a, b) and a.sum() > 0


def test_digits_pass_unchanged_bit_for_bit():
    x = torch.from_numpy(load_dataset("digits").x[:64])
    assert torch.equal(on_payload_grid(x), x)
    model = build_model("snn", Architecture((1, 8, 8), 10), load_profile("loihi2"), seed=0)
    assert torch.equal(encoded_input(model, x, 0), x.reshape(64, -1, 1).expand(-1, -1, model.time_steps))


def test_gradient_is_straight_through():
    x = torch.rand(3, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    (on_payload_grid(x) * torch.arange(5.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(5.0).expand(3, 5))


@pytest.mark.parametrize("profile", ["float32", "loihi1"])
def test_other_profiles_are_not_gridded(faces, profile):
    """float32 keeps its float input; loihi1's rate code sends 0/1 spikes (nothing to round)."""
    model = build_model("snn", architecture_for((1, 25, 25), 2), load_profile(profile), seed=0)
    assert not model.graded_payload_grid
    if profile == "float32":
        s = encoded_input(model, faces, seed=0)
        assert torch.equal(s, faces.reshape(8, -1, 1).expand_as(s))
