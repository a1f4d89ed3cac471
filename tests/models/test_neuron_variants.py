"""The neuron's ablation variants (models/arch.NeuronParams: surrogate, reset, payload) against
independent references: SLAYER's own graded-spike neuron, the surrogate's area and its derivative
by autograd and by finite differences, and the spike count a subtractive reset must give."""

from __future__ import annotations

import math

import pytest
import torch
from lava.lib.dl.slayer.neuron import cuba

from neurofl.errors import UserError
from neurofl.models import Architecture, NeuronParams, build_model
from neurofl.models.arch import SURROGATES
from neurofl.models.cuba import (
    FusedCubaNeuron,
    _SurrogateGrad,
    scan_backend,
    surrogate_derivative,
)
from neurofl.profiles import load_profile


def _input(shape: tuple[int, ...], scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64) * scale


def test_graded_spikes_equal_slayers_graded_neuron_with_first_and_second_order_gradients() -> None:
    params = {**NeuronParams(payload="graded").as_slayer(), "threshold": 0.5, "current_decay": 0.9}
    ref, fused = cuba.Neuron(**params), FusedCubaNeuron(**params)
    x0, w = _input((4, 30, 20), 1.0, 3), _input((4, 30, 20), 1.0, 4)
    out = []
    for neuron in (ref, fused):
        x = x0.clone().requires_grad_(True)
        s = neuron(x)
        (g,) = torch.autograd.grad((s * w).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad((g**2).sum(), x)
        out.append((s.detach(), g.detach(), gg))
    (s_ref, g_ref, gg_ref), (s_fused, g_fused, gg_fused) = out
    assert torch.equal(s_ref, s_fused)
    assert s_ref.sum() > 0 and set(s_ref.unique().tolist()) - {0.0, 1.0}  # graded: not only 0 and 1
    assert gg_ref.abs().max() > 0
    torch.testing.assert_close(g_fused, g_ref, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(gg_fused, gg_ref, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("shape", SURROGATES)
def test_every_surrogate_has_the_same_area_and_peaks_at_the_threshold(shape: str) -> None:
    tau, scale, reach = 0.05, 3.0, 1.0
    x = torch.linspace(-reach, reach, 400_001, dtype=torch.float64)
    rho = surrogate_derivative(x, tau, scale, shape)
    # the fast sigmoid's tails are heavy: its area within `reach` is scale * (1 - 1 / (1 + reach / tau))
    area = scale * (1 - 1 / (1 + reach / tau)) if shape == "fast_sigmoid" else scale
    assert float(torch.trapezoid(rho, x)) == pytest.approx(area, rel=1e-4)
    assert int(rho.argmax()) == len(x) // 2 and bool((rho >= 0).all())


@pytest.mark.parametrize("shape", [*SURROGATES[1:], "graded"])
@pytest.mark.parametrize("delay", [False, True])
def test_written_second_derivatives_equal_autograds_chain(shape: str, delay: bool) -> None:
    """The spike's backward and the attack's derivative of it, per shape: the written-out node equals
    autograd differentiating the plain expression of :func:`surrogate_derivative`."""
    from neurofl.models.cuba import step_advance

    th, tau, scale = 0.4, 0.07, 2.0
    v0 = _input((3, 12, 10), 0.1, 5) + th
    grad0 = _input((3, 12, 10), 1.0, 6)

    def plain(v: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return surrogate_derivative(v - th, tau, scale, shape) * (step_advance(grad) if delay else grad)

    out = []
    for f in (plain, lambda v, g: _SurrogateGrad.apply(v, g, th, tau, scale, delay, shape)):
        v, grad = v0.clone().requires_grad_(True), grad0.clone().requires_grad_(True)
        y = f(v, grad)
        out.append((y.detach(), *torch.autograd.grad((y * y.detach() + 3 * y).sum(), (v, grad))))
    assert out[0][1].abs().max() > 0
    for a, b in zip(*out, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", ["fast_sigmoid", "gaussian", "graded"])
def test_the_surrogate_node_passes_finite_differences(shape: str) -> None:
    v = (_input((2, 3, 6), 0.1, 7) + 0.3).requires_grad_(True)
    if shape == "graded":  # away from its kink at the threshold
        v = (v.detach() + 0.02 * v.detach().sub(0.3).sign()).requires_grad_(True)
    grad = _input((2, 3, 6), 1.0, 8).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: _SurrogateGrad.apply(a, b, 0.3, 0.05, 1.5, False, shape), (v, grad))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("drive", [0.25, 0.5, 0.8125, 1.25])
def test_a_subtractive_reset_spikes_floor_of_the_integrated_drive_over_the_threshold(backend, drive) -> None:
    """No leak, a current that follows its input each step (current decay 1): the voltage integrates
    a constant drive c, so after t steps a subtractive reset has fired floor(t c / theta) times,
    while a reset to zero fires once every ceil(theta / c) steps (theta: SLAYER's threshold plus
    its epsilon)."""
    theta, steps = 1.25, 64
    base = {**NeuronParams().as_slayer(), "threshold": theta, "current_decay": 1.0, "voltage_decay": 0.0}
    x = torch.full((1, 1, steps), drive, dtype=torch.float64)
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    with scan_backend(backend):
        neuron = FusedCubaNeuron(reset="subtract", **base)
        subtract = neuron(x).cumsum(-1)[0, 0]
        zero = FusedCubaNeuron(**base)(x).cumsum(-1)[0, 0]
    theta = neuron.threshold + neuron.threshold_eps  # SLAYER's: a state equal to theta does not spike
    assert subtract.tolist() == torch.floor(t * drive / theta).tolist()
    assert zero.tolist() == torch.floor(t / math.ceil(theta / drive)).tolist()
    assert subtract[-1] > zero[-1] > 0


def test_the_subtractive_reset_scans_agree_between_numpy_and_torch() -> None:
    params = {**NeuronParams().as_slayer(), "threshold": 0.5, "current_decay": 0.3, "voltage_decay": 0.1}
    x = _input((5, 40, 25), 1.0, 9).to(torch.float32)
    outs = []
    for backend in ("numpy", "torch"):
        with scan_backend(backend):
            n = FusedCubaNeuron(reset="subtract", **params)
            outs.append((*n.dynamics(x), n(x)))
    for a, b in zip(*outs, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(outs[0][2], FusedCubaNeuron(**params)(x))  # the reset matters here


@pytest.mark.parametrize("variant", [{"reset": "subtract"}, {"payload": "graded"}])
def test_lava_and_nir_exports_refuse_a_neuron_lava_cannot_run(tmp_path, variant) -> None:
    from neurofl.deploy.export import export_netx
    from neurofl.nir_io.from_model import model_graph

    arch = Architecture((1, 8, 8), 10, neuron=NeuronParams(**variant))
    model = build_model("snn", arch, load_profile("loihi2"), seed=0)
    key = next(iter(variant))
    with pytest.raises(UserError, match=f"neuron.{key}"):
        export_netx(model, tmp_path / "m.net", torch.rand(4, 1, 8, 8), {})
    with pytest.raises(UserError, match=f"neuron.{key}"):
        model_graph(model)
    assert not list(tmp_path.iterdir())


def test_variant_keys_round_trip_through_a_model_header_and_default_identities_are_unchanged() -> None:
    from neurofl.models.checkpoint import arch_from_dict, arch_to_dict

    plain = Architecture((1, 8, 8), 10)
    assert set(arch_to_dict(plain)["neuron"]) == {"threshold", "current_decay", "voltage_decay", "tau_grad",
                                                  "scale_grad"}  # fmt: skip
    for neuron in (NeuronParams(surrogate="triangle"), NeuronParams(reset="subtract"), NeuronParams(payload="graded")):
        arch = Architecture((1, 8, 8), 10, neuron=neuron)
        assert arch_from_dict(arch_to_dict(arch)) == arch
    bad = arch_to_dict(plain)
    bad["neuron"]["reset"] = "halfway"
    with pytest.raises(UserError, match="neuron.reset"):
        arch_from_dict(bad)
    bad["neuron"].update(reset="zero", payload="graded", surrogate="gaussian")
    with pytest.raises(UserError, match="graded spikes have SLAYER's own"):
        arch_from_dict(bad)
