"""The unrolled FedAvg local training equals the client's real training loop."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from neurofl.attacks.fedavg import local_update
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile


def sgd_reference(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> dict:
    """One client trained the ordinary way: its own module copy and torch.optim.SGD."""
    m = copy.deepcopy(model)
    names = [n for n, _ in m.weight_layers()]
    params = dict(m.named_parameters())
    start = {n: params[n].detach().clone() for n in names}
    opt = torch.optim.SGD([params[n] for n in names], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(m(x), y).backward()
        opt.step()
    return {n: params[n].detach() - start[n] for n in names}


@pytest.mark.parametrize("kind,profile", [("ann", "float32"), ("snn", "float32"), ("snn", "loihi2")])
def test_unrolled_delta_equals_sgd_loop(digits, kind, profile):
    x, y = digits[0][:6], digits[1][:6]
    model = build_model(kind, Architecture((1, 8, 8), 10), load_profile(profile), seed=3)
    batch, steps, lr = 2, 3, 0.05
    delta = local_update(model, x, y, batch, steps, lr)
    for v in range(3):
        ref = sgd_reference(model, x[v * batch : (v + 1) * batch], y[v * batch : (v + 1) * batch], steps, lr)
        for name, d in ref.items():
            torch.testing.assert_close(delta[name][v], d, rtol=1e-4, atol=1e-6)


def test_one_step_delta_is_scaled_fedsgd_gradient(digits):
    x, y = digits[0][:8], digits[1][:8]
    model = build_model("snn", Architecture((1, 8, 8), 10), load_profile("float32"), seed=1)
    delta = local_update(model, x, y, batch=2, steps=1, lr=0.5)
    grads = per_sample_gradients(model, x, y, group=2)
    for name, g in grads.items():
        torch.testing.assert_close(delta[name], -0.5 * g.detach(), rtol=1e-4, atol=1e-6)
