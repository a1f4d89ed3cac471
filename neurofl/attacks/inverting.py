"""Inverting Gradients (Geiping et al. 2020), vectorized over victims.

All victims (and restarts) are optimized in one tensor: their losses are summed but never
interact, and Adam is elementwise, so the result equals running each victim on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from neurofl.attacks.recipe import AttackRecipe
from neurofl.gradients import flatten, per_sample_gradients


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per sample. x: (n, C, H, W) -> (n,)"""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    return dx + dy


def gradient_distance(candidate: torch.Tensor, target: torch.Tensor, distance: str) -> torch.Tensor:
    """Per-victim distance between flattened gradients. (n, P), (n, P) -> (n,)"""
    if distance == "cosine":
        dot = (candidate * target).sum(1)
        norms = candidate.norm(dim=1) * target.norm(dim=1)
        return 1 - dot / norms.clamp_min(1e-12)
    return ((candidate - target) ** 2).sum(1)


@dataclass(frozen=True)
class Inversion:
    """Result of an attack on ``n`` victims.

    images: (n, *input_shape) in the input range; loss: (n,) final gradient distance (NaN where
    every restart diverged).
    """

    images: torch.Tensor
    loss: torch.Tensor


def _init(shape: tuple[int, ...], how: str, generator: torch.Generator) -> torch.Tensor:
    if how == "uniform":
        return torch.rand(shape, generator=generator)
    if how == "gaussian":
        return (0.5 + 0.25 * torch.randn(shape, generator=generator)).clamp(0, 1)
    return torch.full(shape, 0.5)


def invert(
    model: torch.nn.Module,
    target: dict[str, torch.Tensor],
    labels: torch.Tensor,
    input_shape: tuple[int, ...],
    recipe: AttackRecipe,
    seed: int,
    batch: int = 1,
    transform: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Inversion:
    """Reconstruct each victim's private batch from its shared update.

    Parameters
    ----------
    model : the global model the victims computed their update on (attacker's copy)
    target : name -> (victims, *weight_shape): the updates the server received
    labels : (victims * batch,) labels the attacker uses (recovered or known)
    input_shape : shape of one input sample, e.g. (1, 8, 8)
    recipe : attack hyper-parameters
    seed : seeds the dummy initialization and any stochastic encoding
    batch : samples per victim update (FedSGD batch size)
    transform : applied to the candidate's gradients before matching (an adaptive attacker
        passes them through the device's update quantizer)
    on_step : called with the iteration number after each step (progress)

    Returns
    -------
    Inversion with images (victims * batch, *input_shape)
    """
    victims = next(iter(target.values())).shape[0]
    r = recipe.restarts
    gen = torch.Generator().manual_seed(seed)
    n = victims * batch
    x = _init((r * n, *input_shape), recipe.init, gen).requires_grad_(True)
    y = labels.repeat(r)
    tgt = flatten(target).detach().repeat(r, 1)
    opt = torch.optim.Adam([x], lr=recipe.lr)
    milestones = [int(recipe.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=milestones if recipe.lr_schedule == "multistep" else [], gamma=0.1
    )
    enc_gen = torch.Generator().manual_seed(seed + 1)
    for params in model.parameters():
        params.requires_grad_(False)
    final = torch.full((r * victims,), float("nan"))
    for it in range(recipe.iterations):
        opt.zero_grad()
        grads = per_sample_gradients(model, x, y, create_graph=True, generator=enc_gen, group=batch)
        if transform is not None:
            grads = transform(grads)
        dist = gradient_distance(flatten(grads), tgt, recipe.distance)
        tv = total_variation(x.reshape(r * n, *input_shape)).reshape(r * victims, batch).mean(1) if len(input_shape) >= 2 else 0
        loss = dist + recipe.tv_weight * tv
        bad = ~torch.isfinite(loss)
        loss.masked_fill(bad, 0).sum().backward()
        with torch.no_grad():
            x.grad.nan_to_num_(0.0)
            if recipe.signed_gradients:
                x.grad.sign_()
        opt.step()
        sched.step()
        with torch.no_grad():
            if recipe.boxed:
                x.clamp_(0, 1)
            final = dist.detach().masked_fill(bad, float("nan"))
        if on_step is not None:
            on_step(it + 1)
    for params in model.parameters():
        params.requires_grad_(True)
    # Pick, per victim, the restart whose gradients match best.
    per_restart = final.reshape(r, victims)
    best = torch.nan_to_num(per_restart, nan=float("inf")).argmin(0)
    images = x.detach().reshape(r, victims, batch, *input_shape)
    chosen = images[best, torch.arange(victims)].reshape(n, *input_shape)
    return Inversion(chosen, per_restart[best, torch.arange(victims)])
