"""The synapse forwards of neurofl.models.synapses against SLAYER's own."""

from __future__ import annotations

import pytest
import torch
from lava.lib.dl.slayer.synapse import layer as slayer_synapse

from neurofl.models.synapses import TransposedGradConv


@pytest.mark.parametrize("size,stride", [(9, 2), (10, 2), (7, 1), (11, 3)])
def test_transposed_grad_conv_equals_slayers_to_the_second_derivative(size: int, stride: int) -> None:
    """Outputs, input gradients and weight gradients equal SLAYER's Conv3d bit for bit, on odd and
    even sizes under strides (the transposed convolution's output padding); the input gradient's
    own derivatives w.r.t. the output gradient (the attacks' second-order step) and the weight equal
    autograd's to float rounding."""
    torch.manual_seed(0)
    ref = slayer_synapse.Conv(3, 4, 3, stride=stride, padding=1, weight_scale=2)
    ours = slayer_synapse.Conv(3, 4, 3, stride=stride, padding=1, weight_scale=2)
    ours.load_state_dict(ref.state_dict())
    ours.__class__ = TransposedGradConv
    x = torch.rand((2, 3, size, size, 5), dtype=torch.float64)
    ref.double(), ours.double()
    results = []
    for syn in (ref, ours):
        xi = x.clone().requires_grad_(True)
        z = syn(xi)
        g = torch.randn(z.shape, generator=torch.Generator().manual_seed(1), dtype=z.dtype).requires_grad_(True)
        gx, gw = torch.autograd.grad(z, (xi, syn.weight), g, create_graph=True)
        ggx, ggw = torch.autograd.grad((gx**2).sum(), (g, syn.weight))
        results.append((z.detach(), gx.detach(), gw.detach(), ggx, ggw))
    (z0, gx0, gw0, ggx0, ggw0), (z1, gx1, gw1, ggx1, ggw1) = results
    assert torch.equal(z0, z1) and torch.equal(gx0, gx1) and torch.equal(gw0, gw1)
    assert gx0.abs().max() > 0 and ggw0.abs().max() > 0
    torch.testing.assert_close(ggx1, ggx0)
    torch.testing.assert_close(ggw1, ggw0)
