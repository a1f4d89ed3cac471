"""The attack machinery recovers what theory says it must."""

from __future__ import annotations

import numpy as np
import torch

from neurofl.attacks import idlg_labels, invert
from neurofl.data.embedded import load_digits
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.leakage.metrics import psnr
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile


class LinearWithBias(torch.nn.Module):
    """A single linear layer with bias: its gradient determines the input exactly (x = dW_k / db_k)."""

    def __init__(self, n_in: int, classes: int):
        super().__init__()
        self.fc = torch.nn.Linear(n_in, classes)

    def forward(self, x, generator=None):
        return self.fc(x.reshape(len(x), -1))

    def weight_layers(self):
        return [("fc.weight", self.fc)]


def test_linear_layer_with_bias_is_recovered_above_40db(theory_recipe):
    torch.manual_seed(0)
    d = load_digits()
    x, y = torch.from_numpy(d.x[:6]), torch.from_numpy(d.y[:6])
    model = LinearWithBias(64, 10)
    target = per_sample_gradients(model, x, y)
    assert set(target) == {"fc.weight", "fc.bias"}
    labels = idlg_labels(target["fc.weight"])
    assert torch.equal(labels, y)
    inv = invert(model, target, labels, (1, 8, 8), theory_recipe, seed=0)
    p = psnr(inv.images.numpy(), x.numpy())
    assert p.min() > 40, p


def test_idlg_recovers_every_label_of_the_ann_at_batch_1():
    d = load_digits()
    x, y = torch.from_numpy(d.x[:200]), torch.from_numpy(d.y[:200])
    model = build_model("ann", Architecture((1, 8, 8), 10), load_profile("float32"), seed=3)
    grads = per_sample_gradients(model, x, y)
    labels = idlg_labels(grads["layers.1.weight"])
    assert (labels == y).all()


def test_per_sample_gradients_equal_autograd_per_sample():
    """The hook-based per-sample gradients equal plain autograd run on each sample alone."""
    d = load_digits()
    x, y = torch.from_numpy(d.x[:4]), torch.from_numpy(d.y[:4])
    for kind, prof in [("ann", "float32"), ("snn", "loihi2")]:
        model = build_model(kind, Architecture((1, 8, 8), 10), load_profile(prof), seed=1)
        batched = per_sample_gradients(model, x, y)
        for i in range(4):
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
            for name, module in model.weight_layers():
                np.testing.assert_allclose(
                    batched[name][i].detach().numpy(), module.weight.grad.numpy(), rtol=1e-5, atol=1e-6
                )
