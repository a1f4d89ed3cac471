"""The fused CUBA neuron computes what SLAYER's computes: spikes bin for bin, states exactly, input
gradients and the second-order gradients the attacks take, to 1e-5 relative in float64."""

from __future__ import annotations

import pytest
import torch
from lava.lib.dl.slayer.block.base import step_delay as slayer_step_delay
from lava.lib.dl.slayer.neuron import cuba
from lava.lib.dl.slayer.synapse import layer as slayer_synapse

from neurofl.models import Architecture, NeuronParams, build_model
from neurofl.models.conv import ConvArchitecture
from neurofl.models.cuba import (
    FusedCubaNeuron,
    _crossings,
    _padded_shift,
    padded_shifts,
    step_advance,
    step_delay,
)
from neurofl.models.synapses import MatmulDense, TransposedGradConv
from neurofl.profiles import load_profile

PARAMS = [
    NeuronParams().as_slayer(),
    {**NeuronParams().as_slayer(), "threshold": 0.5, "current_decay": 0.9, "voltage_decay": 0.5},
    {**NeuronParams().as_slayer(), "threshold": 40.0, "current_decay": 0.0, "voltage_decay": 0.0},
]


def _pair(params: dict) -> tuple[cuba.Neuron, FusedCubaNeuron]:
    return cuba.Neuron(**params), FusedCubaNeuron(**params)


def _input(shape: tuple[int, ...], scale: float, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_states_and_spikes_equal_slayer(params: dict, dtype: torch.dtype) -> None:
    ref, fused = _pair(params)
    for seed, scale in enumerate((0.3, 1.0, 5.0)):
        x = _input((6, 40, 25), scale, dtype, seed)
        for a, b in zip(ref.dynamics(x), fused.dynamics(x), strict=True):
            assert a.dtype == b.dtype and torch.equal(a, b)
        s_ref, s_fused = ref(x), fused(x)
        assert s_ref.sum() > 0 and torch.equal(s_ref, s_fused)


def test_huge_states_take_slayers_float32_threshold_comparison() -> None:
    """Above 2**24 SLAYER's int64 state is compared with the threshold in float32 (rounded): the
    fused neuron must follow it there too."""
    params = {**NeuronParams().as_slayer(), "threshold": 5000.0, "voltage_decay": 0.0, "current_decay": 0.0}
    ref, fused = _pair(params)
    x = _input((3, 50, 30), 2000.0, torch.float32, 7).abs()
    _, v = ref.dynamics(x)
    assert float(v.abs().max()) * ref.s_scale > 2**24
    assert torch.equal(ref(x), fused(x))


@pytest.mark.parametrize("params", PARAMS[:2])
def test_input_gradients_first_and_second_order_equal_slayer(params: dict) -> None:
    ref, fused = _pair(params)
    x0 = _input((4, 30, 20), 1.0, torch.float64, 3)
    weights = _input((4, 30, 20), 1.0, torch.float64, 4)
    out = []
    for neuron in (ref, fused):
        x = x0.clone().requires_grad_(True)
        loss = (neuron(x) * weights).sum()
        (g,) = torch.autograd.grad(loss, x, create_graph=True)
        (gg,) = torch.autograd.grad((g**2).sum(), x)
        out.append((g.detach(), gg))
    (g_ref, gg_ref), (g_fused, gg_fused) = out
    assert g_ref.abs().max() > 0 and gg_ref.abs().max() > 0
    torch.testing.assert_close(g_fused, g_ref, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(gg_fused, gg_ref, rtol=1e-5, atol=1e-12)


def test_step_delay_equals_slayer() -> None:
    x = _input((2, 5, 9), 1.0, torch.float32, 1)
    assert torch.equal(step_delay(x), slayer_step_delay(torch.nn.Module(), x))


@pytest.mark.parametrize("shape", [(3, 4, 7), (2, 3, 4, 5, 16), (5, 1)], ids=["dense", "conv", "T1"])
def test_shifts_equal_pad_and_are_adjoint(shape: tuple[int, ...]) -> None:
    """step_delay / step_advance (no zero fill outside a recorded graph) equal F.pad's shifts on
    contiguous, non-contiguous, non-finite and graph-recorded inputs, and are each other's adjoint."""
    x = _input(shape, 2.0, torch.float64, 5)
    x.view(-1)[0], x.view(-1)[-1] = float("nan"), float("inf")
    for later, shift in ((True, step_delay), (False, step_advance)):
        for xi in (x, x.transpose(0, 1).contiguous().transpose(0, 1)):
            got, ref = shift(xi), _padded_shift(xi, later)
            assert got.shape == ref.shape and got.is_contiguous()
            assert torch.equal(got.nan_to_num(7.0), ref.nan_to_num(7.0))
        leaf = x.nan_to_num(0.0).requires_grad_(True)
        (g,) = torch.autograd.grad((shift(leaf) * torch.ones_like(leaf)).sum(), leaf)
        assert torch.equal(g, _padded_shift(torch.ones_like(leaf), not later))
    y = _input(shape, 1.0, torch.float64, 6)
    xf = x.nan_to_num(0.0, 0.0, 0.0)
    assert torch.allclose((step_delay(xf) * y).sum(), (xf * step_advance(y)).sum())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_delayed_crossings_equal_delayed_spikes(dtype: torch.dtype) -> None:
    """The spike comparison with the delay written into its output equals the comparison then the
    delay, NaN and infinite voltages included."""
    v = _input((3, 70, 16), 1.5, dtype, 8)
    v[0, 0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=dtype)
    for th in (1.25, 0.0, -1.0):
        got = _crossings(v, th, delay=True)
        assert got.dtype == dtype and torch.equal(got, _padded_shift((v >= th).to(dtype), True))
        with padded_shifts():
            assert torch.equal(_crossings(v, th, delay=True), got)
        assert torch.equal(_crossings(v, th), (v >= th).to(dtype))


def _slayer_reference(model: torch.nn.Module) -> torch.nn.Module:
    """The same network with SLAYER's own neurons, synapses and block forward."""
    for block in model.blocks:
        if isinstance(getattr(block, "neuron", None), FusedCubaNeuron):
            block.neuron = cuba.Neuron(**model.arch.neuron.as_slayer())
        if isinstance(getattr(block, "synapse", None), MatmulDense):
            block.synapse.__class__ = slayer_synapse.Dense
        if isinstance(getattr(block, "synapse", None), TransposedGradConv):
            block.synapse.__class__ = slayer_synapse.Conv
    return model


ARCHS = [Architecture((1, 8, 8), 10), ConvArchitecture((1, 16, 16), 4, channels=4, strides=(2, 1))]


@pytest.mark.parametrize("arch", ARCHS, ids=["mlp", "conv"])
@pytest.mark.parametrize("profile", ["loihi2", "loihi1", "float32"])
def test_models_equal_their_slayer_version(arch, profile: str) -> None:
    """Whole SNNs: output spikes bin for bin and the per-sample weight gradients the attacks match."""
    from neurofl.leakage.gradients import per_sample_gradients

    prof = load_profile(profile)
    fused = build_model("snn", arch, prof, seed=0)
    ref = _slayer_reference(build_model("snn", arch, prof, seed=0))
    x = torch.rand((6, *arch.input_shape), generator=torch.Generator().manual_seed(0))
    y = torch.arange(6) % arch.classes
    gen = torch.Generator
    s_f, s_r = fused.spikes(x, gen().manual_seed(1)), ref.spikes(x, gen().manual_seed(1))
    assert s_r.sum() > 0 and torch.equal(s_f, s_r)
    g_f = per_sample_gradients(fused, x, y, generator=gen().manual_seed(1))
    g_r = per_sample_gradients(ref, x, y, generator=gen().manual_seed(1))
    for k in g_r:  # float32 models: the filters sum in another order, so compare at float32 precision
        torch.testing.assert_close(g_f[k], g_r[k], rtol=1e-5, atol=1e-5 * float(g_r[k].abs().max()))


def test_surrogate_width_widens_only_the_backward_inside_its_block() -> None:
    """The attacker's surrogate: forward spikes and the default backward are untouched; inside the
    block the spike derivative is SLAYER's Laplace shape with ``tau`` times the width, same area."""
    from neurofl.models.cuba import surrogate_width

    fused = FusedCubaNeuron(**PARAMS[1])
    x = _input((3, 20, 16), 1.0, torch.float64, 5).requires_grad_(True)

    def grad() -> tuple[torch.Tensor, torch.Tensor]:
        s = fused(x)
        (g,) = torch.autograd.grad(s.sum(), x)
        return s.detach(), g

    s1, g1 = grad()
    with surrogate_width(0.5):
        s_half, g_half = grad()
    s_again, g_again = grad()
    assert torch.equal(s1, s_half) and torch.equal(s1, s_again) and s1.sum() > 0
    assert torch.equal(g1, g_again) and not torch.allclose(g1, g_half)
    with pytest.raises(RuntimeError), surrogate_width(2.0):
        raise RuntimeError
    assert torch.equal(grad()[1], g1)  # restored after an exception
    with pytest.raises(ValueError, match="> 0"), surrogate_width(0.0):
        pass


@pytest.mark.parametrize("params", PARAMS[:2])
def test_gradients_through_both_dynamics_outputs_equal_slayer(params: dict) -> None:
    """The fused dynamics is one autograd node with two outputs: a loss on the current as well as
    the voltage must still get SLAYER's input gradient (the two reverse filters, summed)."""
    ref, fused = _pair(params)
    x0 = _input((3, 20, 12), 1.0, torch.float64, 8)
    w_current, w_voltage = _input((3, 20, 12), 1.0, torch.float64, 9), _input((3, 20, 12), 1.0, torch.float64, 10)
    grads = []
    for neuron in (ref, fused):
        for use_current in (True, False):
            x = x0.clone().requires_grad_(True)
            current, voltage = neuron.dynamics(x)
            loss = (voltage * w_voltage).sum() + ((current * w_current).sum() if use_current else 0)
            grads.append(torch.autograd.grad(loss, x)[0])
    for g_ref, g_fused in zip(grads[:2], grads[2:], strict=True):
        assert g_ref.abs().max() > 0
        torch.testing.assert_close(g_fused, g_ref, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numpy_and_torch_integrators_agree_bit_for_bit(monkeypatch, dtype: torch.dtype) -> None:
    """On the CPU both integrators run in NumPy in one pass; the per-integrator torch path (other
    devices and dtypes) must give the same states."""
    from neurofl.models import cuba as fused_cuba

    x = _input((4, 30, 16), 3.0, dtype, 11)
    args = (x, 1024, 123, 4096, 1.25 + 0.01 / 4096)
    fast = fused_cuba.cuba_states(*args)
    monkeypatch.setattr(fused_cuba, "_numpy_ok", lambda _x: False)
    slow = fused_cuba.cuba_states(*args)
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype == dtype and a.is_contiguous() and torch.equal(a, b)


@pytest.mark.parametrize("delay", [False, True], ids=["spike", "delayed"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_surrogate_gradient_equals_its_plain_ops_bit_for_bit(dtype: torch.dtype, delay: bool) -> None:
    """The spike's backward (with the one-step delay, if any) is one autograd node with a
    written-out derivative; its outputs and first and second-order gradients equal those of the
    plain-ops expression (and ``step_delay``) it replaces, bit for bit."""
    from lava.lib.dl.slayer.neuron.cuba import SCALE_RHO_MULT, TAU_RHO_MULT

    from neurofl.models.cuba import _Spike

    fused = FusedCubaNeuron(**PARAMS[0])
    th = fused.threshold + fused.threshold_eps
    tau, scale = fused.tau_rho * TAU_RHO_MULT, fused.scale_rho * SCALE_RHO_MULT

    class PlainSpike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            ctx.save_for_backward(v)
            return (v >= th).to(v.dtype)

        @staticmethod
        def backward(ctx, grad):
            (v,) = ctx.saved_tensors
            return scale / 2 / tau * torch.exp(-(v - th).abs() / tau) * grad

    v0 = _input((4, 30, 16), 0.05, dtype, 12) + th
    v0[0, 0, :2] = th  # |v - threshold| = 0: autograd's sgn(0) = 0
    w = _input((4, 30, 16), 1.0, dtype, 13).requires_grad_(True)

    def plain(v: torch.Tensor) -> torch.Tensor:
        return step_delay(PlainSpike.apply(v)) if delay else PlainSpike.apply(v)

    out = []
    for spike in (plain, lambda v: _Spike.apply(v, th, tau, scale, delay)):
        v = v0.clone().requires_grad_(True)
        s = spike(v)
        g_v, _ = torch.autograd.grad((s * w).sum(), (v, w), create_graph=True)
        second = torch.autograd.grad((g_v * g_v.detach() + g_v * w * w).sum(), (v, w))
        (first,) = torch.autograd.grad((spike(v) * w).sum(), v)  # a backward that records nothing
        out.append((s.detach(), g_v.detach(), first, *second))
    assert out[0][3].abs().max() > 0 and out[0][4].abs().max() > 0
    for a, b in zip(*out, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_attack_gradients_equal_with_padded_shifts(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attacks' second-order step through whole SNNs is bit for bit the same with the
    fill-free shifts as with ``F.pad``'s (they move the same values)."""
    from neurofl.leakage.gradients import flatten, per_sample_gradients
    from neurofl.models import cuba as fused_cuba

    a = Architecture((1, 8, 8), 10) if arch == "mlp" else ConvArchitecture((1, 12, 12), 4, channels=4, strides=(2, 1))
    model = build_model("snn", a, load_profile("loihi2"), seed=0)
    x0 = torch.rand((6, *a.input_shape), generator=torch.Generator().manual_seed(0))
    y = torch.arange(6) % a.classes
    target = flatten(per_sample_gradients(model, x0, y, group=3)).detach()

    def attack_step() -> tuple[torch.Tensor, torch.Tensor]:
        x = (x0 * 0.9 + 0.05).requires_grad_(True)
        g = flatten(per_sample_gradients(model, x, y, create_graph=True, group=3))
        (dx,) = torch.autograd.grad((g - target).pow(2).sum(), x)
        return g.detach(), dx

    fast = attack_step()
    calls = []
    monkeypatch.setattr(fused_cuba, "_padded_shift", lambda x, later: calls.append(later) or _padded_shift(x, later))
    with padded_shifts():
        padded = attack_step()
    assert True in calls and False in calls  # the reference ran: the delays and their adjoints
    assert fast[1].abs().sum() > 0
    assert torch.equal(fast[0], padded[0]) and torch.equal(fast[1], padded[1])
