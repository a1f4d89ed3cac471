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
    dz = torch.autograd.grad(loss, outputs, create_graph=create_graph, allow_unused=True)
    grads: dict[str, torch.Tensor] = {}
    for (name, module), (a, z), g in zip(layers, captured, dz, strict=True):
        if g is None:
            g = torch.zeros_like(z)
        if a.dim() == 2:  # Linear: (n, in), (n, out)
            w = torch.einsum("no,ni->noi", g, a)
        elif a.dim() == 3:  # SLAYER Dense synapse over time: (n, in, T), (n, out, T)
            w = torch.einsum("not,nit->noi", g, a)
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


def flatten(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate per-sample gradients: name -> (n, ...) into (n, total_parameters)."""
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1)
