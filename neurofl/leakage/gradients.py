"""Per-sample parameter gradients that stay differentiable (for the attack's second-order step).

``torch.func.vmap`` cannot run through SLAYER's neurons (their autograd Functions lack
``setup_context``), so, as Opacus' hooks do, each layer's per-sample weight gradient is built
from the layer's input ``a`` and the gradient of the loss w.r.t. its output ``z``:
``dW_i = sum_t dz_i(t) a_i(t)^T``. Samples never interact in the forward pass, so
``d(sum_i loss_i)/dz_i = d loss_i / dz_i``. A client's update, the mean over its ``group``
samples, is ``(1/group) sum_i sum_t dz_i(t) a_i(t)^T``: one contraction over samples and time
(for a convolution, its own weight backward with the clients as channel groups).
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
        grads[name] = client_weight_grad(module, a, g, group)
        if getattr(module, "bias", None) is not None:  # per-sample bias gradient: dz summed over all but channels
            gb = g.reshape(g.shape[0], g.shape[1], -1).sum(-1)
            grads[name.rsplit(".", 1)[0] + ".bias"] = _group_mean(gb.reshape((gb.shape[0], *module.bias.shape)), group)
    return grads


def client_weight_grad(module: torch.nn.Module, a: torch.Tensor, g: torch.Tensor, group: int) -> torch.Tensor:
    """One layer's weight gradient per client: the mean over each client's ``group`` samples of
    ``sum_t g_i(t) a_i(t)^T``, summed inside one contraction, so no (n, out, in) per-sample tensor
    is built (``scripts/bench_gradients.py`` times it against that build).

    a : the layer's input, g : the loss gradient w.r.t. its output (n, ...) -> (n // group, *weight_shape)
    """
    if a.dim() == 2:  # Linear: (n, in), (n, out)
        w = torch.bmm(_groups(g[:, None], group).transpose(1, 2), _groups(a[:, None], group))
    elif a.dim() == 3:  # SLAYER Dense synapse over time: (n, in, T), (n, out, T)
        gt = _groups(g.transpose(1, 2), group)  # (G, group * T, out)
        w = torch.bmm(gt.transpose(1, 2), _groups(a.transpose(1, 2), group))  # sum over samples and t
    elif a.dim() == 4 and isinstance(module, torch.nn.Conv2d):  # (n, C, H, W), (n, O, H', W')
        w = _conv_weight_grad(module, a, g, group)
    elif a.dim() == 5 and isinstance(module, torch.nn.Conv3d):  # SLAYER Conv synapse: (n, C, H, W, T)
        w = _slayer_conv_weight_grad(module, a, g, group)
    else:
        kind = type(module).__name__
        raise NotImplementedError(f"per-sample gradients for {kind} inputs of shape {tuple(a.shape)}")
    w = w / group if group > 1 else w
    return w.reshape((w.shape[0], *module.weight.shape))


def _groups(t: torch.Tensor, group: int) -> torch.Tensor:
    """(n, A, B) -> (n // group, group * A, B): each group's samples stacked along the first axis."""
    return t.reshape(t.shape[0] // group, group * t.shape[1], *t.shape[2:])


def _group_mean(w: torch.Tensor, group: int) -> torch.Tensor:
    """(n, ...) -> (n // group, ...): each client's mean over its ``group`` samples."""
    if group == 1:
        return w
    return w.reshape(w.shape[0] // group, group, *w.shape[1:]).mean(1)


def _grouped_weight_grad(module: torch.nn.Module, a: torch.Tensor, g: torch.Tensor, group: int) -> torch.Tensor:
    """A convolution's weight gradient summed over each group of ``group`` samples, as the
    convolution's own backward computes it: the groups become the channel groups of one grouped
    convolution (a copy of ``a`` and ``g``, no unfolded patches), differentiable again through
    ``aten.convolution_backward``'s own backward.

    a: (n, C, *spatial), g: (n, O, *spatial') -> (n // group, O, C * prod(kernel))
    """
    n, c = a.shape[:2]
    o = g.shape[1]
    clients = n // group
    aa = a.reshape(clients, group, c, *a.shape[2:]).transpose(0, 1).reshape(group, clients * c, *a.shape[2:])
    gg = g.reshape(clients, group, o, *g.shape[2:]).transpose(0, 1).reshape(group, clients * o, *g.shape[2:])
    weight = torch.zeros((clients * o, c, *module.kernel_size), dtype=a.dtype, device=a.device)  # shape only
    _, dw, _ = torch.ops.aten.convolution_backward(
        gg, aa, weight, None, list(module.stride), list(module.padding), list(module.dilation),
        False, [0] * len(module.kernel_size), clients, [False, True, False],
    )  # fmt: skip
    return dw.reshape(clients, o, -1)


def _conv_weight_grad(module: torch.nn.Conv2d, a: torch.Tensor, g: torch.Tensor, group: int = 1) -> torch.Tensor:
    """Conv2d weight gradient summed over each group of ``group`` samples.

    a: (n, C, H, W), g: (n, O, H', W') -> (n // group, O, C * kh * kw)
    """
    if module.groups != 1 or isinstance(module.padding, str):
        raise NotImplementedError("per-sample conv gradients need groups=1 and numeric padding")
    return _grouped_weight_grad(module, a, g, group)


def _slayer_conv_weight_grad(module: torch.nn.Conv3d, a: torch.Tensor, g: torch.Tensor, group: int = 1) -> torch.Tensor:
    """Weight gradient of SLAYER's Conv synapse, a Conv3d with a (kh, kw, 1) kernel applied to
    (n, C, H, W, T) (a 2-D convolution per time step), summed over time and each group's samples.

    a: (n, C, H, W, T), g: (n, O, H', W', T) -> (n // group, O, C * kh * kw)
    """
    padding = module.padding  # a string ("same", "valid") is refused as before: its [2] is not 0 either
    one_step = module.kernel_size[2] == 1 and module.stride[2] == 1 and module.dilation[2] == 1
    if isinstance(padding, str) or not one_step or padding[2] != 0:
        raise NotImplementedError("per-sample SLAYER conv gradients need a kernel of one time step")
    if module.groups != 1:
        raise NotImplementedError("per-sample SLAYER conv gradients need groups=1")
    return _grouped_weight_grad(module, a, g, group)


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
