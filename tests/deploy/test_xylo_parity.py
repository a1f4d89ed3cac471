"""neurofl's torch Xylo neuron against xylosim, SynSense's C++ simulator (an independent reference).

The key test draws random integer weights, thresholds, decay shifts and weight shifts and random
input event counts (above the 15-per-step cap, and large enough to saturate the 16-bit states) and
requires every hidden and output event count, bin by bin, to equal xylosim's. It is skipped only
when xylosim (the optional extra ``neurofl[xylo]``) is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurofl.models import Architecture
from neurofl.models.chips.xylo_net import XyloNetwork
from neurofl.models.chips.xylo_neuron import XyloArithmetic, deliver, shift_decrement, spike_count
from neurofl.profiles import load_profile

try:
    import xylosim.v2  # noqa: F401

    HAVE_XYLOSIM = True
except ImportError:
    HAVE_XYLOSIM = False

needs_xylosim = pytest.mark.skipif(
    not HAVE_XYLOSIM, reason="xylosim not installed (pip install 'neurofl[xylo]'); the reference is missing"
)


def random_network(seed: int, profile: str = "xylo-audio2", hidden: int = 24, classes: int = 6) -> XyloNetwork:
    """A Xylo network with random integer parameters over their whole ranges."""
    p = load_profile(profile)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = XyloNetwork(Architecture((1, 4, 4), classes, hidden=(hidden,)), p)
    with torch.no_grad():
        scale = p.weights.scale
        net.synapse_in.weight.copy_(torch.randint(-128, 128, net.synapse_in.weight.shape, generator=g) / scale)
        net.synapse_out.weight.copy_(torch.randint(-128, 128, net.synapse_out.weight.shape, generator=g) / scale)
        for name in ("threshold", "threshold_out"):
            t = getattr(net, name)
            t.copy_(torch.randint(1, 4000, t.shape, generator=g))
        for name in ("dash_syn", "dash_mem", "dash_syn_out", "dash_mem_out"):
            t = getattr(net, name)
            t.copy_(torch.randint(1, 16, t.shape, generator=g))
        net.weight_shift.copy_(torch.randint(0, 9, (2,), generator=g))
    net.check_parameters()
    return net


@needs_xylosim
@pytest.mark.parametrize("seed", range(6))
def test_torch_network_equals_xylosim_bin_for_bin(seed):
    from neurofl.deploy.xylo import XylosimNetwork, xylo_config

    net = random_network(seed)
    g = torch.Generator().manual_seed(100 + seed)
    counts = torch.randint(0, 20, (5, 16, 40), generator=g).to(torch.float64)  # above the cap of 15
    counts[:, :, 30:] = 0  # let the states decay through zero
    with torch.no_grad():
        hidden, out = net.run(counts)
    sim = XylosimNetwork(xylo_config(net))
    hidden_x, out_x = sim.run(counts.numpy().astype(np.int64))  # xylosim caps at 15 itself
    assert hidden.shape == hidden_x.shape and out.shape == out_x.shape
    np.testing.assert_array_equal(hidden.numpy(), hidden_x)
    np.testing.assert_array_equal(out.numpy(), out_x)
    assert hidden.max() == 31 and out.max() == 1  # the multi-event and single-event caps were reached
    assert out.sum() > 0


@needs_xylosim
def test_the_comparison_exercises_saturation():
    """With weight shifts the input currents exceed 16 bits, so the sequential saturation matters."""
    from neurofl.deploy.xylo import XylosimNetwork, xylo_config

    net = random_network(3)
    with torch.no_grad():
        net.weight_shift.copy_(torch.tensor([8, 8]))
        net.synapse_in.weight.copy_(net.synapse_in.weight.abs())  # all excitatory: the running sum saturates at +32767
    counts = torch.full((2, 16, 6), 15.0, dtype=torch.float64)
    with torch.no_grad():
        hidden, out = net.run(counts)
    hidden_x, out_x = XylosimNetwork(xylo_config(net)).run(counts.numpy().astype(np.int64))
    np.testing.assert_array_equal(hidden.numpy(), hidden_x)
    np.testing.assert_array_equal(out.numpy(), out_x)


def test_shift_decay_matches_the_xylo_rule():
    """dv = x >> dash (floor), at least 1 toward zero; e.g. 100 -> 50 -> 25 -> 13 with dash 1."""
    x = torch.tensor([[100.0, 50.0, 25.0, -3.0, -1.0, 0.0, 7.0, -32768.0]], dtype=torch.float64)
    dash = torch.tensor([1, 1, 1, 2, 2, 2, 4, 1])
    dv = shift_decrement(x, dash)
    assert (x - dv).tolist() == [[50.0, 25.0, 13.0, -2.0, 0.0, 0.0, 6.0, -16384.0]]


def test_saturating_delivery_is_sequential():
    """xylosim adds event by event with saturation: +30000 then +30000 then -30000 gives 2767, not 30000."""
    arith = XyloArithmetic()
    state = torch.zeros(1, 1, dtype=torch.float64)
    counts = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    w = torch.tensor([[30000.0], [30000.0], [-30000.0]], dtype=torch.float64)
    inc = counts @ w
    assert deliver(state, inc, counts, w, arith).item() == 32767 - 30000
    assert deliver(state, inc, counts, w, XyloArithmetic(saturate=False)).item() == 30000


def test_spike_count_caps_and_subtracts():
    arith = XyloArithmetic()
    v = torch.tensor([[99.0, 100.0, 250.0, 100000.0, -5.0]], dtype=torch.float64)
    n = spike_count(v, torch.full((5,), 100.0, dtype=torch.float64), 31, arith)
    assert n.tolist() == [[0.0, 1.0, 2.0, 31.0, 0.0]]


def test_surrogate_gradients_support_double_backward():
    """Gradient inversion differentiates twice: a second-order gradient through the network exists and
    is nonzero (the surrogates are smooth functions, not detached constants)."""
    net = random_network(0)
    with torch.no_grad():
        net.threshold.fill_(512)
        net.threshold_out.fill_(512)
        net.weight_shift.zero_()
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    logits = net(x, torch.Generator().manual_seed(1))
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2]))
    (gw,) = torch.autograd.grad(loss, net.synapse_in.weight, create_graph=True)
    (gx,) = torch.autograd.grad((gw**2).sum(), x)
    assert torch.isfinite(gx).all() and gx.abs().sum() > 0


def test_values_are_exact_integers_while_training():
    """The straight-through stand-ins never leak into values: states and events stay integers."""
    net = random_network(1)
    x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    hidden, out = net.run(net.input_spikes(x, torch.Generator().manual_seed(0)))
    assert hidden.requires_grad
    assert torch.equal(hidden, torch.round(hidden)) and torch.equal(out, torch.round(out))
