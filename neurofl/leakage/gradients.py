"""Per-sample parameter gradients that stay differentiable (for the attack's second-order step).

``torch.func.vmap`` cannot run through SLAYER's neurons (their autograd Functions lack
``setup_context``), so, as Opacus' hooks do, each layer's per-sample weight gradient is built
from the layer's input ``a`` and the gradient of the loss w.r.t. its output ``z``:
``dW_i = sum_t dz_i(t) a_i(t)^T``. Samples never interact in the forward pass, so
``d(sum_i loss_i)/dz_i = d loss_i / dz_i``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def per_sample_gradients(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    create_graph: bool = False,
    generator: torch.Generator | None = None,
    group: int = 1,
    detach_backward: bool = False,
) -> dict[str, torch.Tensor]:
    """Gradients of the cross-entropy loss w.r.t. every weight, per group of samples.

    Parameters
    ----------
    model : a model with ``weight_layers()`` (``MLP`` or ``SpikingMLP``)
    x : (n, *input_shape)
    y : (n,) int64 labels, or (n, classes) soft labels (probabilities)
    create_graph : keep the graph so the result can be differentiated again (w.r.t. ``x``)
    generator : randomness of a stochastic input encoding
    group : consecutive samples per client; each client's gradient is the mean over its group
        (FedSGD with batch size ``group``). ``n`` must be a multiple of it.
    detach_backward : treat each layer's output gradient ``dz`` as a constant, so that the result
        depends on ``x`` only through the layers' forward inputs ``a`` (``dW = sum_t dz(t) a(t)^T``
        with ``dz`` detached). This is the first-order path SNN training itself differentiates;
        it never runs the surrogate's second derivative (the detached-backward attack).

    Returns
    -------
    name -> (n // group, *weight_shape), in the order of ``model.weight_layers()``
    """
    layers = model.weight_layers()
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda _m, inp, out: captured.append((inp[0], out))) for _, m in layers]
    try:
        logits = model(x, generator=generator)
    finally:
        for h in hooks:
            h.remove()
    if y.dim() == 1:
        loss = F.cross_entropy(logits, y, reduction="sum")
    else:
        loss = -(y * F.log_softmax(logits, dim=-1)).sum()
    outputs = [z for _, z in captured]
    if detach_backward:
        dz = tuple(
            None if g is None else g.detach()
            for g in torch.autograd.grad(loss, outputs, retain_graph=create_graph, allow_unused=True)
        )
    else:
        dz = torch.autograd.grad(loss, outputs, create_graph=create_graph, allow_unused=True)
    grads: dict[str, torch.Tensor] = {}
    for (name, module), (a, z), g in zip(layers, captured, dz, strict=True):
        if g is None:
            g = torch.zeros_like(z)
        if a.dim() == 2:  # Linear: (n, in), (n, out)
            w = torch.einsum("no,ni->noi", g, a)
        elif a.dim() == 3:  # SLAYER Dense synapse over time: (n, in, T), (n, out, T)
            w = torch.bmm(g, a.transpose(1, 2))  # sum_t g[n, o, t] a[n, i, t]: one bmm, not einsum's permutes
        elif a.dim() == 4 and isinstance(module, torch.nn.Conv2d):  # (n, C, H, W), (n, O, H', W')
            w = _conv_weight_grad(module, a, g)
        elif a.dim() == 5 and isinstance(module, torch.nn.Conv3d):  # SLAYER Conv synapse: (n, C, H, W, T)
            w = _slayer_conv_weight_grad(module, a, g)
        else:
            kind = type(module).__name__
            raise NotImplementedError(f"per-sample gradients for {kind} inputs of shape {tuple(a.shape)}")
        grads[name] = _group_mean(w.reshape((w.shape[0], *module.weight.shape)), group)
        if getattr(module, "bias", None) is not None:  # per-sample bias gradient: dz summed over all but channels
            gb = g.reshape(g.shape[0], g.shape[1], -1).sum(-1)
            grads[name.rsplit(".", 1)[0] + ".bias"] = _group_mean(gb.reshape((gb.shape[0], *module.bias.shape)), group)
    return grads


def _group_mean(w: torch.Tensor, group: int) -> torch.Tensor:
    """(n, ...) -> (n // group, ...): each client's mean over its ``group`` samples."""
    if group == 1:
        return w
    return w.reshape(w.shape[0] // group, group, *w.shape[1:]).mean(1)


def _conv_weight_grad(module: torch.nn.Conv2d, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per-sample Conv2d weight gradient: unfold the input into patches, correlate with ``g``.

    a: (n, C, H, W), g: (n, O, H', W') -> (n, O, C * kh * kw)
    """
    if module.groups != 1 or isinstance(module.padding, str):
        raise NotImplementedError("per-sample conv gradients need groups=1 and numeric padding")
    cols = F.unfold(a, module.kernel_size, module.dilation, module.padding, module.stride)  # (n, C*k*k, L)
    return torch.einsum("nol,nkl->nok", g.flatten(2), cols)


def _slayer_conv_weight_grad(module: torch.nn.Conv3d, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per-sample weight gradient of SLAYER's Conv synapse, a Conv3d with a (kh, kw, 1) kernel
    applied to (n, C, H, W, T): a 2-D convolution per time step, summed over time.

    a: (n, C, H, W, T), g: (n, O, H', W', T) -> (n, O, C * kh * kw)
    """
    padding = module.padding  # a string ("same", "valid") is refused as before: its [2] is not 0 either
    one_step = module.kernel_size[2] == 1 and module.stride[2] == 1 and module.dilation[2] == 1
    if isinstance(padding, str) or not one_step or padding[2] != 0:
        raise NotImplementedError("per-sample SLAYER conv gradients need a kernel of one time step")
    if module.groups != 1:
        raise NotImplementedError("per-sample SLAYER conv gradients need groups=1")
    n, c, h, w, t = a.shape
    frames = a.permute(0, 4, 1, 2, 3).reshape(n * t, c, h, w)
    cols = F.unfold(frames, module.kernel_size[:2], module.dilation[:2], padding[:2], module.stride[:2])
    cols = cols.reshape(n, t, cols.shape[1], cols.shape[2])  # (n, T, C*k*k, L)
    gt = g.permute(0, 4, 1, 2, 3).reshape(n, t, g.shape[1], -1)  # (n, T, O, L)
    return torch.einsum("ntol,ntkl->nok", gt, cols)


def flatten(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate per-sample gradients: name -> (n, ...) into (n, total_parameters)."""
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1)


def first_layer_signal(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Each sample's backward signal at the first weight layer's output: ``d loss_i / d z_i``,
    summed over time for a SLAYER layer (a fully connected first layer's per-sample weight
    gradient is this vector times the layer's input).

    x : (n, *input_shape); y : (n,) int64 labels -> (n, *first_layer_output_shape_without_time)
    """
    _, module = model.weight_layers()[0]
    captured: list[torch.Tensor] = []
    hook = module.register_forward_hook(lambda _m, _inp, out: captured.append(out))
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            logits = model(x, generator=generator)
            (dz,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), captured[0])
    finally:
        hook.remove()
    return dz.sum(-1) if dz.dim() == 3 else dz
