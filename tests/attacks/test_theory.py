"""Each recipe recovers the input where theory says the update determines it."""

from __future__ import annotations

import pytest
import torch

from neurofl.attacks import invert
from neurofl.attacks.analytic import first_layer_readout
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile


def _target(model, x, y, group=1):
    return {k: v.detach() for k, v in per_sample_gradients(model, x, y, group=group).items()}


@pytest.mark.parametrize(
    "name,changes",
    [
        ("idlg", {"iterations": 100}),
        # DLG's joint label search has local minima; restarts (picked by gradient distance) escape them.
        ("dlg", {"iterations": 100, "restarts": 4}),
        # TV biases the optimum away from the truth; pure cosine matching is exact here.
        ("inverting_gradients", {"iterations": 300, "tv_weight": 0.0, "init": "uniform"}),
        ("inverting_gradients", {"iterations": 5, "init": "analytic", "keep_best": True}),
    ],
)
def test_linear_layer_with_bias_is_recovered(digits, h, name, changes):
    """z = Wx + b at batch 1: dW = dz x^T and db = dz, so x is determined (Phong et al. 2017)."""
    x, y = digits[0][:6], digits[1][:6]
    model = h.LinearWithBias(64, 10, seed=0)
    inv = invert(model, _target(model, x, y), y, (1, 8, 8), h.recipe(name, **changes), seed=0)
    assert h.psnr(inv.images, x).min() > 40


def test_dlg_recovers_tiny_sigmoid_mlp_input_and_label(digits, h):
    """DLG's setting: a small sigmoid MLP with more gradient equations than unknowns."""
    x = torch.nn.functional.avg_pool2d(digits[0][:6], 2)  # (6, 1, 4, 4)
    y = digits[1][:6] % 4
    model = build_model("ann", Architecture((1, 4, 4), 4, hidden=(32,), weight_scale=1.0), load_profile("float32"), 0)
    inv = invert(model, _target(model, x, y), None, (1, 4, 4), h.recipe("dlg", iterations=100, restarts=4), seed=0)
    assert h.psnr(inv.images, x).min() > 25
    assert torch.equal(inv.labels, y)


@pytest.mark.parametrize("kind", ["ann", "snn"])
def test_first_layer_gradient_is_rank_one_in_the_input(digits, kind):
    """A bias-free first layer's per-sample gradient is dz x^T (SNN, direct encoding: summed over
    time), so its top right singular vector is the input's direction, for ANN and SNN alike."""
    x, y = digits[0][:8], digits[1][:8]
    model = build_model(kind, Architecture((1, 8, 8), 10), load_profile("float32"), seed=0)
    rows, exact = first_layer_readout(_target(model, x, y), batch=1, input_size=64)
    assert not exact
    flat = x.reshape(8, -1)
    cos = (rows * flat).sum(1) / (rows.norm(dim=1) * flat.norm(dim=1))
    assert cos.min() > 0.9999


def test_readout_of_a_batch_larger_than_the_update_rank(digits, h):
    """A first layer of H neurons over D inputs gives at most min(H, D) directions; a larger batch
    (a secure-aggregation sum) gets them in turn, and IG starts from them instead of failing."""
    x, y = digits[0][:12], digits[1][:12]
    model = build_model("ann", Architecture((1, 8, 8), 10, hidden=(8,)), load_profile("float32"), seed=0)
    target = _target(model, x, y, group=12)  # rank at most 8 < 12
    rows, exact = first_layer_readout(target, batch=12, input_size=64)
    assert rows.shape == (12, 64) and not exact
    assert torch.equal(rows[8:], rows[:4])
    assert torch.linalg.matrix_rank(rows[:8].double()) == 8
    inv = invert(model, target, y, (1, 8, 8), h.recipe("inverting_gradients", iterations=3, init="analytic"),
                 seed=0, batch=12)  # fmt: skip
    assert inv.images.shape == (12, 1, 8, 8) and torch.isfinite(inv.images).all()


def test_spike_ig_recovers_binary_input(digits, h):
    """A binary input on a linear layer with bias is determined by the update; the spike-domain
    attack must return exactly it after thresholding."""
    x = (digits[0][:6] > 0.5).float()
    y = digits[1][:6]
    model = h.LinearWithBias(64, 10, seed=0)
    rec = h.recipe("spike_ig", iterations=200, tv_weight=0.0)
    inv = invert(model, _target(model, x, y), y, (1, 8, 8), rec, seed=0)
    assert set(inv.images.unique().tolist()) <= {0.0, 1.0}
    assert (inv.images == x).float().mean() > 0.99
