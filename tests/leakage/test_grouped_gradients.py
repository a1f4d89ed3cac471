"""Each group's update built inside one contraction equals autograd's gradient of the group's mean
loss (the independent reference), first order and through the attack's second-order step."""

import pytest
import torch
import torch.nn.functional as F

from neurofl.leakage.gradients import per_sample_gradients
from neurofl.models import build_model
from neurofl.models.arch import Architecture
from neurofl.models.conv import ConvArchitecture
from neurofl.profiles import load_profile

ARCHS = [Architecture(input_shape=(20,), classes=3, hidden=(12,)), ConvArchitecture((1, 8, 8), classes=3)]


def _model(kind: str, arch):
    profile = load_profile("float32")
    return build_model(kind, arch, profile, seed=2).double()


@pytest.mark.parametrize("arch", ARCHS, ids=["mlp", "conv"])
@pytest.mark.parametrize("kind", ["ann", "snn"])
def test_a_groups_update_is_autograds_gradient_of_its_mean_loss(arch, kind):
    model = _model(kind, arch)
    gen = torch.Generator().manual_seed(0)
    shape = arch.input_shape
    x, y = torch.rand(6, *shape, generator=gen, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 2, 1])
    grouped = per_sample_gradients(model, x, y, group=3)
    params = dict(model.named_parameters())
    for v in range(2):
        loss = F.cross_entropy(model(x[3 * v : 3 * v + 3]), y[3 * v : 3 * v + 3])
        want = torch.autograd.grad(loss, [params[k] for k in grouped])
        for (name, got), ref in zip(grouped.items(), want, strict=True):
            torch.testing.assert_close(got[v], ref, rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.parametrize("arch", ARCHS, ids=["mlp", "conv"])
def test_the_second_order_step_through_a_group_equals_the_per_sample_mean(arch):
    model = _model("snn", arch)
    gen = torch.Generator().manual_seed(1)
    shape = arch.input_shape
    y = torch.tensor([2, 0, 1, 1])
    target = {k: torch.randn_like(v) for k, v in per_sample_gradients(model, torch.rand(4, *shape, generator=gen,
                                                                             dtype=torch.float64), y, group=4).items()}

    def input_grad(grouped: bool) -> torch.Tensor:
        x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).requires_grad_()
        if grouped:
            g = per_sample_gradients(model, x, y, create_graph=True, group=4)
        else:
            g = {k: v.mean(0, keepdim=True) for k, v in per_sample_gradients(model, x, y, create_graph=True).items()}
        dist = sum(((g[k] - target[k]) ** 2).sum() for k in g)
        (dx,) = torch.autograd.grad(dist, x)
        return dx

    torch.testing.assert_close(input_grad(True), input_grad(False), rtol=1e-9, atol=1e-12)
