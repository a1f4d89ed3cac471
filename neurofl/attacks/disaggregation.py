"""Disaggregating a fully connected first layer's batch update into its samples.

For a bias-free first layer ``z = W a`` the batch update is ``T = (1/B) sum_i D_i x_i^T``, where
``D_i`` is sample i's backward signal at the layer's output (summed over time for an SNN with a
direct input; with a rate code ``x_i`` stands for its spike trains' mean). So ``T``'s row space is
spanned by the inputs and its column space by the backward signals. Two steps use that:

1. Alternating least squares: recompute every ``D_i`` at the current inputs and labels, solve
   ``X = lstsq(D, B T)``, and move the estimate towards it (box-clipped). The victims' inputs are a
   fixed point; for a float ANN the iteration converges to them from the readout start.
2. A consistency search: a true input's backward signal lies in ``T``'s column space, so each
   sample minimizes ``rho(x) = |P_perp D(x)| / |D(x)|`` over ``x`` in the B-dimensional row space,
   with a derivative-free (1+lambda) evolution strategy (an SNN's ``D(x)`` jumps with every spike,
   which breaks gradient steps and fixed-point iterations but not a search).

Labels are re-solved from the whole update (:func:`neurofl.attacks.labels.solve_labels`). The
backward pass is only ever run forward (first order); no derivative of a spike surrogate is taken.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from neurofl.attacks.analytic import first_layer_readout
from neurofl.attacks.inverting import Inversion, per_victim_generators
from neurofl.attacks.labels import solve_labels
from neurofl.attacks.recipe import DisaggregationRecipe
from neurofl.attacks.target import Target
from neurofl.leakage.gradients import first_layer_signal


def _signal(target: Target, x: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(m, D) candidate inputs -> (m, H) float64 backward signals."""
    xs = x.reshape(-1, *target.input_shape).float()
    return first_layer_signal(target.model, xs, labels, gen).detach().double().reshape(xs.shape[0], -1)


def _residual(signal: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Relative part of each signal outside the column space. signal (V, m, H), basis (V, H, B) -> (V, m)"""
    inside = torch.einsum("vhk,vmk->vmh", basis, torch.einsum("vhk,vmh->vmk", basis, signal))
    return (signal - inside).norm(dim=-1) / signal.norm(dim=-1).clamp_min(1e-300)


def disaggregate(
    target: Target,
    recipe: DisaggregationRecipe,
    labels: torch.Tensor,
    seed: int,
    on_step: Callable[[int], None] | None = None,
    start: torch.Tensor | None = None,
) -> Inversion:
    """Reconstruct each victim's batch from its first layer's update (see the module docstring).

    labels : (victims * batch,) the starting labels (recovered from the update). start :
    (victims * batch, *input_shape) a start another attack found (default: the top-B right
    singular vectors of the first layer's update, made non-negative). Victim ``v``'s
    random draws come from its own generator seeded by ``seed + v`` (chunking does not change them).
    Returns images (victims * batch, *input_shape), loss (victims,) the mean consistency residual
    (NaN where the update is not finite) and the solved labels.
    """
    model, b, v_count = target.model, target.batch, target.victims
    grads = {k: t.detach() for k, t in target.gradients().items()}
    first = next(iter(grads.values()))
    t1 = first.reshape(v_count, first.shape[1], -1).double()  # (V, H, D)
    finite = torch.isfinite(t1).flatten(1).all(1)
    t1 = torch.where(finite[:, None, None], t1, torch.zeros_like(t1))
    u, _, vh = torch.linalg.svd(t1, full_matrices=False)
    col, row = u[:, :, :b], vh[:, :b, :]  # (V, H, B), (V, B, D)
    if start is None:
        start, _ = first_layer_readout(grads, b, target.input_size)
    x = torch.nan_to_num(start.detach().double().reshape(v_count, b, -1)).to(t1.device)
    enc = torch.Generator().manual_seed(seed + 1)
    gens = per_victim_generators(seed, v_count)
    labels = labels.clone().to(t1.device)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    step = 0
    try:
        for it in range(recipe.als_iterations):
            if it % recipe.label_every == 0:
                labels = solve_labels(model, x.reshape(-1, *target.input_shape).float(), grads, b, target.classes, enc)
            d = _signal(target, x, labels, enc).reshape(v_count, b, -1)
            sol = torch.linalg.lstsq(d.transpose(1, 2) / b, t1).solution  # (V, B, D)
            x = (1 - recipe.als_step) * x + recipe.als_step * torch.nan_to_num(sol).clamp(0, 1)
            step += 1
            if on_step is not None:
                on_step(step)
        coef = torch.einsum("vbd,vkd->vbk", x, row)
        best = _residual(_signal(target, x, labels, enc).reshape(v_count, b, -1), col)
        sigma = recipe.search_step * coef.norm(dim=-1, keepdim=True) / b**0.5 + 1e-12
        pop = recipe.population
        for gen in range(recipe.search_generations):
            if gen % recipe.label_every == recipe.label_every - 1:
                x = torch.einsum("vbk,vkd->vbd", coef, row).clamp(0, 1)
                labels = solve_labels(model, x.reshape(-1, *target.input_shape).float(), grads, b, target.classes, enc)
                best = _residual(_signal(target, x, labels, enc).reshape(v_count, b, -1), col)
            noise = torch.stack([torch.randn((b, pop, b), generator=g, dtype=torch.float64) for g in gens])
            noise = noise.to(t1.device)  # drawn on the CPU: one seed, one draw on any device
            cand = coef.unsqueeze(2) + sigma.unsqueeze(2) * noise  # (V, B, P, B)
            xs = torch.einsum("vbpk,vkd->vbpd", cand, row).clamp(0, 1)
            lab = labels.reshape(v_count, b, 1).expand(v_count, b, pop).reshape(-1)
            res = _residual(_signal(target, xs, lab, enc).reshape(v_count, b * pop, -1), col).reshape(v_count, b, pop)
            res = torch.nan_to_num(res, nan=float("inf"))
            low, pick = res.min(-1)
            better = low < best
            chosen = torch.gather(cand, 2, pick[..., None, None].expand(-1, -1, 1, b)).squeeze(2)
            coef = torch.where(better.unsqueeze(-1), chosen, coef)
            best = torch.where(better, low, best)
            sigma = torch.where(better.unsqueeze(-1), sigma * 1.2, sigma * 0.9)  # one-fifth success rule
            step += 1
            if on_step is not None:
                on_step(step)
        if recipe.search_generations > 0:
            x = torch.einsum("vbk,vkd->vbd", coef, row).clamp(0, 1)
        labels = solve_labels(model, x.reshape(-1, *target.input_shape).float(), grads, b, target.classes, enc)
        loss = _residual(_signal(target, x, labels, enc).reshape(v_count, b, -1), col).mean(1)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    images = torch.where(finite[:, None, None], x, torch.full_like(x, float("nan")))
    loss = torch.where(finite, loss, torch.full_like(loss, float("nan")))
    return Inversion(images.float().reshape(-1, *target.input_shape), loss.float(), labels)
