"""The unrolled FedAvg local training equals the client's real training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurofl.attacks.fedavg import local_update
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile
from neurofl_testing.sgd import sgd_local_epoch


@pytest.mark.parametrize("kind,profile", [("ann", "float32"), ("snn", "float32"), ("snn", "loihi2")])
def test_unrolled_delta_equals_sgd_loop(digits, kind, profile):
    x, y = digits[0][:6], digits[1][:6]
    model = build_model(kind, Architecture((1, 8, 8), 10), load_profile(profile), seed=3)
    batch, steps, lr = 2, 3, 0.05
    delta = local_update(model, x, y, batch, steps, lr)
    for v in range(3):
        ref = sgd_local_epoch(model, x[v * batch : (v + 1) * batch], y[v * batch : (v + 1) * batch], steps, lr)
        for name, d in ref.items():
            torch.testing.assert_close(delta[name][v], d, rtol=1e-4, atol=1e-6)


def test_one_step_delta_is_scaled_fedsgd_gradient(digits):
    x, y = digits[0][:8], digits[1][:8]
    model = build_model("snn", Architecture((1, 8, 8), 10), load_profile("float32"), seed=1)
    delta = local_update(model, x, y, batch=2, steps=1, lr=0.5)
    grads = per_sample_gradients(model, x, y, group=2)
    for name, g in grads.items():
        torch.testing.assert_close(delta[name], -0.5 * g.detach(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind,profile", [("ann", "float32"), ("snn", "float32"), ("snn", "loihi2")])
@pytest.mark.parametrize("steps", [3, 5])  # one local epoch of 3 minibatches; and the epoch again from its start
def test_minibatch_delta_equals_sgd_over_consecutive_minibatches(digits, kind, profile, steps):
    x, y = digits[0][:12], digits[1][:12]
    model = build_model(kind, Architecture((1, 8, 8), 10), load_profile(profile), seed=3)
    batch, minibatch, lr = 6, 2, 0.05
    delta = local_update(model, x, y, batch, steps, lr, minibatch=minibatch)
    for v in range(2):
        part = slice(v * batch, (v + 1) * batch)
        ref = sgd_local_epoch(model, x[part], y[part], steps, lr, minibatch)
        for name, d in ref.items():
            torch.testing.assert_close(delta[name][v], d, rtol=1e-4, atol=1e-6)


def test_a_minibatch_that_does_not_divide_the_batch_is_refused(digits):
    model = build_model("ann", Architecture((1, 8, 8), 10), load_profile("float32"), seed=3)
    with pytest.raises(ValueError, match="must divide"):
        local_update(model, digits[0][:6], digits[1][:6], 6, 2, 0.1, minibatch=4)


@pytest.mark.parametrize("first,second,floor", [(7, 7, 60.0), (7, 3, 40.0)])
def test_the_unrolled_attacker_recovers_a_local_epoch_without_the_clients_data(first, second, floor):
    """Noiseless toy: one client, a local epoch of two SGD steps on one fresh sample each, float
    ANN. The attacker holds the global model, the delta and the protocol (steps, rate, minibatch),
    never the samples, their labels or the steps' order: its candidates take the steps in its own
    order and their labels are optimized with them. The delta is a smooth function of the two samples
    and their labels that matches at the truth, so second-order matching (L-BFGS on the L2 distance)
    lands on both: to float precision for two '7's, and for a '7' then a '3' (the reverse of the
    sorted labels a multiset gives). An attacker that models both steps on the whole batch (the fresh
    minibatch ignored), with labels recovered from the delta, does not."""
    from neurofl.attacks.inverting import invert
    from neurofl.attacks.labels import recover_labels
    from neurofl.data.embedded import load_digits

    from .conftest import psnr, recipe

    d = load_digits()
    picks = [int(np.flatnonzero(d.y == first)[0]), int(np.flatnonzero(d.y == second)[int(first == second)])]
    x, y = torch.from_numpy(d.x[picks]), torch.from_numpy(d.y[picks])
    model = build_model("ann", Architecture((1, 8, 8), 10), load_profile("float32"), seed=3)
    delta = {k: v.detach() for k, v in local_update(model, x, y, 2, 2, 0.05, minibatch=1).items()}
    lbfgs = recipe("inverting_gradients", optimizer="lbfgs", distance="l2", tv_weight=0.0, signed_gradients=False,
                   lr=1.0, lr_schedule="constant", iterations=300)  # fmt: skip

    def recovered(labels: torch.Tensor | None, minibatch: int | None) -> torch.Tensor:
        out = invert(model, delta, labels, (1, 8, 8), lbfgs, seed=0, batch=2, local_steps=2, local_lr=0.05,
                     minibatch=minibatch).images  # fmt: skip
        straight, swapped = psnr(out, x), psnr(out.flip(0), x)  # the best of the two pairings
        return straight if straight.min() > swapped.min() else swapped

    assert recovered(None, 1).min() > floor
    calibration = torch.from_numpy(d.x[1000:1500]), torch.from_numpy(d.y[1000:1500])  # not the client's samples
    labels = recover_labels(model, {k: -v for k, v in delta.items()}, 2, (1, 8, 8), 0, calibration)
    assert sorted(labels.tolist()) == sorted(y.tolist())
    assert recovered(labels, None).max() < 40
