"""The attack differentiates what it claims: the input-gradient of the gradient-matching loss
through SLAYER's custom autograd neurons equals that of an independent plain-PyTorch CUBA."""

from __future__ import annotations

import torch
from lava.lib.dl.slayer.neuron.cuba import SCALE_RHO_MULT, TAU_RHO_MULT

from neurofl.attacks.inverting import gradient_distance
from neurofl.leakage.gradients import flatten, per_sample_gradients
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile


def _fixed_point_integrator(x: torch.Tensor, decay_int: float, scale: float, threshold: float | None) -> torch.Tensor:
    """Loihi's integer leaky integrator, state in units of 1/scale, truncation toward zero.
    Returns the pre-reset state at each step. x: (n, c, T)."""
    state = torch.zeros(x.shape[:-1], dtype=torch.float64)
    out = []
    for t in range(x.shape[-1]):
        new = torch.trunc(state * (4096 - decay_int) / 4096) + torch.trunc(scale * x[..., t])
        out.append(new / scale)
        state = new * (new < threshold * scale) if threshold is not None else new
    return torch.stack(out, -1)


def _linear_filter(x: torch.Tensor, decay: float) -> torch.Tensor:
    """y[t] = decay * y[t-1] + x[t] (the dynamics SLAYER differentiates; no reset)."""
    y, out = torch.zeros_like(x[..., 0]), []
    for t in range(x.shape[-1]):
        y = decay * y + x[..., t]
        out.append(y)
    return torch.stack(out, -1)


def reference_cuba(z: torch.Tensor, neuron) -> torch.Tensor:
    """Spikes of a CUBA layer given its synaptic input z: (n, c, T), one-step output delay included.

    Forward: exact fixed point. Backward: straight-through the quantization, linear dynamics, and the
    surrogate dS/dv = a/(2 tau) exp(-|v - theta| / tau) written as the derivative of a smooth function.
    """
    scale = float(neuron.s_scale)
    du, dv = float(torch.round(neuron.current_decay).item()), float(torch.round(neuron.voltage_decay).item())
    theta = neuron.threshold + neuron.threshold_eps
    tau = neuron.tau_rho * TAU_RHO_MULT
    a = neuron.scale_rho * SCALE_RHO_MULT
    u_lin = _linear_filter(z, 1 - du / 4096)
    u = u_lin + (_fixed_point_integrator(z.detach(), du, scale, None) - u_lin).detach()
    v_lin = _linear_filter(u, 1 - dv / 4096)
    v = v_lin + (_fixed_point_integrator(u.detach(), dv, scale, theta) - v_lin).detach()
    d = v - theta
    smooth = 0.5 * a * torch.sign(d) * (1 - torch.exp(-d.abs() / tau))
    s = (d >= 0).to(v.dtype) + smooth - smooth.detach()
    return torch.cat([torch.zeros_like(s[..., :1]), s[..., :-1]], -1)


def reference_logits(model, x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    x = x + (torch.round(x * 64) / 64 - x).detach()  # loihi2 receives a graded input as round(64 x)
    s = x.reshape(len(x), -1, 1).expand(-1, -1, model.time_steps)
    for i, (block, w) in enumerate(zip(model.blocks, weights, strict=True)):
        z = torch.einsum("oi,nit->not", model.profile.quantize_weight(w), s)
        if i == 0:  # the chip floors a graded input's current to whole weight units (1/64)
            z = z + (torch.floor(z * 64) / 64 - z).detach()
        s = reference_cuba(z, block.neuron)
    return s.sum(-1)


def test_input_gradient_of_matching_loss_equals_plain_pytorch_cuba():
    torch.manual_seed(0)
    profile = load_profile("loihi2")
    model = build_model("snn", Architecture((6,), 3, hidden=(5,), weight_scale=8.0), profile, seed=4).double()
    x_true = torch.rand(1, 6, dtype=torch.float64)
    y = torch.tensor([1])
    target = {k: v.detach() for k, v in per_sample_gradients(model, x_true, y).items()}

    x = torch.rand(1, 6, dtype=torch.float64, requires_grad=True)
    ours = gradient_distance(flatten(per_sample_gradients(model, x, y, create_graph=True)), flatten(target), "cosine")
    (g_ours,) = torch.autograd.grad(ours.sum(), x)

    weights = [
        b.synapse.weight.detach().reshape(b.synapse.weight.shape[:2]).clone().requires_grad_(True) for b in model.blocks
    ]
    x_ref = x.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(reference_logits(model, x_ref, weights), y)
    grads = torch.autograd.grad(loss, weights, create_graph=True)
    ref = gradient_distance(torch.cat([g.reshape(1, -1) for g in grads], 1), flatten(target), "cosine")
    (g_ref,) = torch.autograd.grad(ref.sum(), x_ref)

    assert torch.allclose(ours.detach(), ref.detach(), rtol=1e-10)
    assert g_ref.abs().max() > 0  # the test would be vacuous on a silent network
    rel = (g_ours - g_ref).norm() / g_ref.norm()
    assert rel < 1e-4, float(rel)
