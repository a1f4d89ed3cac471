"""Closed-form readout of the input from a fully connected first layer's gradient.

For one sample, a first layer ``z = W x (+ b)`` has the gradient ``dW = dz x^T`` (``db = dz``):
every row is the input times a scalar, for an ANN and, with the direct encoding, for a SLAYER SNN
(``dW = (sum_t dz(t)) x^T``). With a bias the scale is exact (Phong et al. 2017); without one the
direction is exact and the scale is chosen by gradient matching. For a batch of B samples the
gradient's row space is spanned by the B inputs; its top-B right singular vectors are a start.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from neurofl.errors import UserError
from neurofl.leakage.gradients import flatten

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def readable(target: dict[str, torch.Tensor], input_size: int) -> bool:
    """Whether the first update tensor is a fully connected layer over the whole input."""
    w = next(iter(target.values()))
    return w.dim() >= 3 and w[0].numel() == w.shape[1] * input_size


def first_layer_readout(target: dict[str, torch.Tensor], batch: int, input_size: int) -> tuple[torch.Tensor, bool]:
    """Input directions read from the first layer's update.

    target : name -> (victims, *weight_shape); its first entry is the first layer's weight and a
        following ``*.bias`` entry, if present, its bias
    Returns (victims * batch, input_size) non-negative rows, and whether their scale is exact
    (bias present and batch 1); otherwise each row is scaled to a maximum of 1. Sample ``i`` of a
    batch gets the update's ``i``-th right singular vector, modulo their number (min(neurons,
    inputs)) when the batch is larger.
    """
    names = list(target)
    w = target[names[0]]
    victims = w.shape[0]
    if not readable(target, input_size):
        raise UserError(
            f"init = 'analytic' needs a fully connected first layer over the whole input; "
            f"'{names[0]}' has shape {tuple(w.shape[1:])}"
        )
    w = w.reshape(victims, -1, input_size).double()
    bias_name = names[0].rsplit(".", 1)[0] + ".bias"
    if batch == 1 and bias_name in target:
        b = target[bias_name].reshape(victims, -1).double()
        x = torch.einsum("vo,voi->vi", b, w) / (b * b).sum(1, keepdim=True).clamp_min(1e-300)
        return x.float(), True
    # A victim whose update is non-finite would make the batched SVD raise for everyone: decompose
    # a zero matrix in its place and hand it a NaN start, so it fails alone and is recorded as failed.
    finite = torch.isfinite(w).flatten(1).all(1)
    _, _, vh = torch.linalg.svd(torch.where(finite[:, None, None], w, torch.zeros_like(w)), full_matrices=False)
    vh = torch.where(finite[:, None, None], vh, torch.full_like(vh, float("nan")))
    # The update has at most min(neurons, inputs) directions; a larger batch (e.g. a secure-
    # aggregation sum) gets them in turn, so every sample still starts from the update's row space.
    v = vh[:, torch.arange(batch, device=vh.device) % vh.shape[1], :]  # (victims, batch, in)
    v = v * torch.where(v.sum(-1, keepdim=True) < 0, -1.0, 1.0)  # inputs are non-negative
    v = v.clamp_min(0)
    v = v / v.amax(-1, keepdim=True).clamp_min(1e-12)
    return v.reshape(victims * batch, input_size).float(), False


def analytic_init(
    simulate: Callable[[torch.Tensor, torch.Tensor, bool], dict[str, torch.Tensor]],
    target: dict[str, torch.Tensor],
    labels: torch.Tensor,
    input_shape: tuple[int, ...],
    batch: int,
    distance: Distance,
    scales: int = 16,
) -> torch.Tensor:
    """Readout, then per victim the scale in ``(0, 1]`` (``scales`` grid points) whose update
    matches the target best.

    simulate : (inputs, labels, create_graph) -> the candidate update, name -> (victims, ...)
    Returns (victims * batch, *input_shape) in [0, 1]."""
    size = 1
    for s in input_shape:
        size *= s
    rows, exact = first_layer_readout(target, batch, size)
    victims = rows.shape[0] // batch
    if exact:
        return rows.clamp(0, 1).reshape(-1, *input_shape)
    tgt = flatten(target).detach()
    best = torch.full((victims,), float("inf"), device=rows.device)
    best_scale = torch.ones(victims, device=rows.device)
    for c in torch.linspace(1.0 / scales, 1.0, scales, device=rows.device):
        x = (c * rows).reshape(-1, *input_shape).requires_grad_(True)
        with torch.enable_grad():
            grads = simulate(x, labels, False)
        d = torch.nan_to_num(distance(flatten(grads).detach(), tgt), nan=float("inf"))
        better = d < best
        best = torch.where(better, d, best)
        best_scale = torch.where(better, c, best_scale)
    return (best_scale.repeat_interleave(batch)[:, None] * rows).reshape(-1, *input_shape)
