"""train_model: reaches the issue's accuracy target, is seeded, and trains the chip's own weights."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from neurofl.errors import UserError
from neurofl.models import Architecture
from neurofl.profiles import load_profile
from neurofl.train import train_model


def test_digits_snn_reaches_90_percent_under_loihi2(digits_splits):
    arch = Architecture(digits_splits.clients.input_shape, digits_splits.clients.classes)
    r = train_model("snn", arch, load_profile("loihi2"), digits_splits.clients, digits_splits.test, 15, seed=0)
    assert r.accuracy >= 0.90
    assert len(r.history) == 15 and r.history[-1].test_accuracy == r.accuracy


def test_reported_accuracy_matches_an_independent_count(digits_splits, digits_arch):
    r = train_model("ann", digits_arch, load_profile("float32"), digits_splits.clients, digits_splits.test, 3, seed=1)
    with torch.no_grad():
        pred = r.model(torch.from_numpy(digits_splits.test.x)).argmax(-1).numpy()
    assert r.accuracy == pytest.approx(float(np.mean(pred == digits_splits.test.y)))
    assert r.accuracy > 0.8


def test_same_seed_same_weights_other_seed_differs(digits_splits, digits_arch):
    p = load_profile("loihi2")
    runs = [train_model("snn", digits_arch, p, digits_splits.clients, digits_splits.test, 1, seed=s) for s in (5, 5, 6)]
    a, b, c = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_trained_snn_is_the_quantized_network(trained_loihi2, digits_splits):
    """Quantization-aware: the model's outputs are those of its weights snapped to the 8-bit grid."""
    model = copy.deepcopy(trained_loihi2.model)
    x = torch.from_numpy(digits_splits.test.x[:64])
    before = model(x)
    with torch.no_grad():
        for block in model.blocks:
            mant = model.profile.quantize_weight(block.synapse.weight, descale=True)
            assert torch.all(mant == torch.round(mant)) and torch.all(torch.remainder(mant, 2) == 0)
            assert mant.min() >= -256 and mant.max() <= 254
            block.synapse.weight.copy_(mant / model.profile.weights.scale)
    assert torch.equal(model(x), before)


def test_bad_arguments_are_user_errors(digits_splits):
    p = load_profile("loihi2")
    with pytest.raises(UserError, match="epochs"):
        train_model("snn", Architecture((1, 8, 8), 10), p, digits_splits.clients, digits_splits.test, 0, seed=0)
    with pytest.raises(UserError, match="shape"):
        train_model("snn", Architecture((1, 4, 4), 10), p, digits_splits.clients, digits_splits.test, 1, seed=0)
