"""The one-state chip networks (Speck, Akida, SpiNNaker2, TrueNorth) compute their profile's arithmetic.

The torch network is held equal, event for event, to an independent plain-Python reference written
from the profiles' rules (decay, sequential saturating delivery, event count, reset); TrueNorth's
crossbar weights are checked against their definition; second derivatives exist (the attacks need
them); a network that exceeds a chip is still built but its fit check names the limit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neurofl.models import Architecture
from neurofl.models.chips.crossbar import axon_type
from neurofl.models.chips.net import ChipNetwork
from neurofl.models.chips.xylo_net import fit_problems
from neurofl.models.factory import build_model
from neurofl.pipelines.evaluate import chip_fit, profiles_for
from neurofl.profiles import HardwareProfile, load_profile, shipped_profiles

CHIPS = ("speck", "akd1000", "spinnaker2", "truenorth")
ARCH = Architecture((1, 4, 4), 3, hidden=(6,))


def reference_run(net: ChipNetwork, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python events of the network for one sample's input counts (inputs, T)."""
    p: HardwareProfile = net.profile
    n = p.neuron
    half = 1 << (n.state_bits - 1)
    lo, hi = -half, half - 1
    w_in, w_out = (w.detach().numpy().astype(np.float64) for w in net.integer_weights())

    def population(inp, w, thr, dec, cap):
        pre, post = w.shape
        v = [0.0] * post
        out = np.zeros((post, inp.shape[1]))
        for t in range(inp.shape[1]):
            for j in range(post):
                x = v[j]
                if n.decay == "linear":
                    x = x - math.copysign(min(abs(x), dec[j]), x) if x else 0.0
                elif n.decay == "exponential":
                    x = float(np.float32(np.float32(x) * np.float32(dec[j])))
                for i in range(pre):
                    x += inp[i, t] * w[i, j]
                    if n.saturate:
                        x = min(max(x, lo), hi)
                if n.decay == "exponential":
                    x = float(np.float32(x))
                k = min(max(math.floor(x / thr[j]), 0), cap)
                out[j, t] = k
                x = x - k * thr[j] if n.reset == "subtract" else (0.0 if k else x)
                v[j] = x
        return out

    thr, thr_out = net.threshold.tolist(), net.threshold_out.tolist()
    hidden = population(counts, w_in, thr, net.decay.tolist(), net.hidden_max)
    return hidden, population(hidden, w_out, thr_out, net.decay_out.tolist(), net.output_max)


@pytest.mark.parametrize("name", CHIPS)
def test_network_equals_the_reference_event_for_event(name):
    p = load_profile(name)
    net = build_model("snn", ARCH, p, seed=0)
    assert isinstance(net, ChipNetwork)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        net.synapse_in.weight.mul_(3.0)  # strong enough that 16-bit states saturate and counts exceed 1
        net.threshold.mul_(0.5)
        counts = torch.randint(0, p.spikes.input_max_per_step + 1, (2, net.inputs, 6), generator=g).double()
        hidden, out = net.run(counts)
    for b in range(2):
        ref_h, ref_o = reference_run(net, counts[b].numpy())
        assert np.array_equal(hidden[b].numpy(), ref_h), name
        assert np.array_equal(out[b].numpy(), ref_o), name
    assert hidden.sum() > 0


def test_speck_saturates_and_emits_several_events_per_step():
    p = load_profile("speck")
    net = build_model("snn", ARCH, p, seed=0)
    steps = 40  # 16 inputs x 127 = 2032 per step: the 16-bit register saturates after 17 steps
    with torch.no_grad():
        net.synapse_in.weight.fill_(p.weight_range[1])
        net.threshold.fill_(32767)
        hidden, _ = net.run(torch.ones(1, net.inputs, steps, dtype=torch.float64))
    ref_h, _ = reference_run(net, np.ones((net.inputs, steps)))
    assert np.array_equal(hidden[0].numpy(), ref_h)
    unsaturated = 2032 * np.arange(1, steps + 1) // 32767  # cumulative events of an unbounded register
    assert not np.array_equal(hidden[0, 0].numpy().cumsum(), unsaturated)
    with torch.no_grad():
        net.threshold.fill_(100)
        hidden, _ = net.run(torch.ones(1, net.inputs, 2, dtype=torch.float64))
    assert hidden.max() > 1  # Speck's multi-spike bins


def test_truenorth_crossbar_is_on_off_times_one_weight_per_neuron_and_type():
    p = load_profile("truenorth")
    w = torch.randn(7, 12, generator=torch.Generator().manual_seed(0))
    q = p.quantize_weight(w, descale=True)
    types = axon_type(12, p.weights.axon_types)
    half = p.weights.axon_types // 2
    for j in range(7):
        for g in range(half):
            for sign in (1, -1):
                vals = {float(v) for v, t in zip(q[j], types, strict=True) if t == g and v * sign > 0}
                assert len(vals) <= 1  # one signed weight per neuron and axon type
                u = (w[j] * 64 * sign)[(types == g)]
                u = u[u > 0]
                if len(u):  # the type's weight is the rounded mean magnitude of its sign's weights
                    assert vals <= {sign * float(torch.round(u.mean()).clamp(1, 255 if sign > 0 else 256))}
    assert q.abs().max() <= 256 and torch.equal(q, q.round())
    assert (q == 0).any() and (q > 0).any() and (q < 0).any()
    w.requires_grad_(True)
    p.quantize_weight(w).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight-through


@pytest.mark.parametrize("name", CHIPS)
def test_second_derivatives_exist(name):
    """Gradient matching differentiates the weight gradient w.r.t. the input."""
    torch.manual_seed(0)
    net = build_model("snn", ARCH, load_profile(name), seed=0)
    x = torch.rand(2, 1, 4, 4, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(net(x, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1]))
    (gw,) = torch.autograd.grad(loss, net.synapse_in.weight, create_graph=True)
    (gx,) = torch.autograd.grad(gw.pow(2).sum(), x)
    assert torch.isfinite(gx).all() and gx.abs().sum() > 0


def test_truenorth_digits_network_does_not_fit_and_says_why():
    """A hidden neuron reaching 10 classes needs 20 axons; TrueNorth's neuron targets one axon."""
    arch = Architecture((1, 8, 8), 10, hidden=(128,))
    p = load_profile("truenorth")
    problems, _ = fit_problems(arch, p)
    assert problems == ["20 hidden-neuron fan-out (axons) > chip.max_fan_out = 1"]
    row = chip_fit(build_model("snn", arch, p, seed=0), arch, p)  # simulated all the same
    assert row["fits"] is False and row["fit_problems"] == problems
    wide = Architecture((1, 8, 8), 10, hidden=(129,))  # 129 hidden x 2 axons > 256 axons per core
    assert any("chip.max_fan_in = 256" in m for m in fit_problems(wide, p)[0])


def test_profile_all_lists_every_shipped_chip():
    specs, skipped = profiles_for(Architecture((1, 8, 8), 10), seed=0)
    assert set(specs) == set(shipped_profiles()) - {"float32"} and not skipped
    assert len(specs) >= 8 and set(CHIPS) <= set(specs)
    assert len({load_profile(s).arithmetic for s in specs}) == len(specs) - 1  # xylo-audio2, xylo-imu share one
