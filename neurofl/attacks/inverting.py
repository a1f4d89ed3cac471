"""Gradient matching (DLG, iDLG, Inverting Gradients, spike-domain), vectorized over victims.

All victims (and restarts) are optimized in one tensor: their losses are summed but never
interact, Adam is elementwise and L-BFGS keeps one history per row, so the result equals running
each victim on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from neurofl.attacks.analytic import analytic_init, readable
from neurofl.attacks.fedavg import local_update
from neurofl.attacks.lbfgs import BatchedLBFGS
from neurofl.attacks.recipe import AttackRecipe
from neurofl.device import device_of
from neurofl.errors import UserError
from neurofl.gradients import flatten, per_sample_gradients
from neurofl.models.cuba import surrogate_width
from neurofl.profiles import HardwareProfile

Transform = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per sample. x: (n, C, H, W) -> (n,)"""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    return dx + dy


def gradient_distance(
    candidate: torch.Tensor, target: torch.Tensor, distance: str, sizes: list[int] | None = None
) -> torch.Tensor:
    """Per-victim distance between flattened gradients. (n, P), (n, P) -> (n,)

    ``layer_cosine`` averages ``1 - cosine`` over the tensors whose flattened ``sizes`` make up P
    (every layer counts equally, however many weights it has)."""
    if distance == "layer_cosine":
        parts = zip(candidate.split(sizes, 1), target.split(sizes, 1), strict=True)
        return torch.stack([gradient_distance(c, t, "cosine") for c, t in parts]).mean(0)
    if distance == "cosine":
        dot = (candidate * target).sum(1)
        norms = candidate.norm(dim=1) * target.norm(dim=1)
        return 1 - dot / norms.clamp_min(1e-12)
    return ((candidate - target) ** 2).sum(1)


@dataclass(frozen=True)
class Inversion:
    """Result of an attack on ``n`` victims.

    images: (n * batch, *input_shape) in [0, 1]; loss: (n,) final gradient distance (NaN where
    every restart diverged); labels: (n * batch,) the labels the attack ended with (the joint
    DLG estimate, or the labels it was given).
    """

    images: torch.Tensor
    loss: torch.Tensor
    labels: torch.Tensor | None = None


def _tv(x: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """TV over the two spatial axes: (C, H, W) images, or (C, H, W, T) event frames."""
    if len(input_shape) == 3:
        return total_variation(x)
    if len(input_shape) == 4:
        return total_variation(x.movedim(-1, 1).flatten(1, 2))
    return torch.zeros(x.shape[0], device=x.device)


def per_victim_generators(seed: int, victims: int, restarts: int = 1) -> list[torch.Generator]:
    """One generator per (restart, victim), restart-major; victim ``v`` restart ``k`` is seeded
    from ``(seed + v, k)``, so a victim attacked alone with seed ``seed + v`` draws the same."""
    return [torch.Generator().manual_seed((seed + v) * 1_000_003 + k) for k in range(restarts) for v in range(victims)]


def _per_victim(
    draw: Callable[[torch.Generator], torch.Tensor], seed: int, victims: int, restarts: int
) -> torch.Tensor:
    """Stack ``draw(generator)`` over restarts and victims (restart-major). Victim ``v`` restart
    ``k`` uses its own generator seeded from ``(seed + v, k)``, so a victim attacked alone with
    seed ``seed + v`` starts from the same point as in a batch. Drawn on the CPU (its generators
    are CPU generators), so the caller moves the result to its device."""
    return torch.cat([draw(g) for g in per_victim_generators(seed, victims, restarts)])


def _start(shape: tuple[int, ...], how: str, generator: torch.Generator) -> torch.Tensor:
    if how == "uniform":
        return torch.rand(shape, generator=generator)
    if how == "gaussian":
        return (0.5 + 0.25 * torch.randn(shape, generator=generator)).clamp(0, 1)
    return torch.full(shape, 0.5)


def invert(
    model: torch.nn.Module,
    target: dict[str, torch.Tensor],
    labels: torch.Tensor | None,
    input_shape: tuple[int, ...],
    recipe: AttackRecipe,
    seed: int,
    batch: int = 1,
    transform: Transform | None = None,
    on_step: Callable[[int], None] | None = None,
    profile: HardwareProfile | None = None,
    local_steps: int = 1,
    local_lr: float | None = None,
    start: torch.Tensor | None = None,
) -> Inversion:
    """Reconstruct each victim's private batch from its shared update.

    Parameters
    ----------
    model : the global model the victims computed their update on (attacker's copy)
    target : name -> (victims, *weight_shape): the updates the server received
    labels : (victims * batch,) labels the attacker uses (recovered or known); ignored (may be
        None) when ``recipe.labels == "joint"``
    input_shape : shape of one input sample, e.g. (1, 8, 8)
    recipe : attack hyper-parameters
    seed : victim ``v`` (0-based in ``target``) starts from a point seeded by ``seed + v``, so
        attacking it alone with ``seed + v`` gives the same result; also seeds a stochastic encoding
    batch : samples per victim update (FedSGD batch size)
    transform : applied to the candidate's gradients before matching; overrides ``profile``
    on_step : called with the iteration number after each step (progress)
    profile : the device profile; an ``adaptive`` recipe quantizes its candidate update with it
    local_steps, local_lr : with ``local_steps > 1`` the target is each victim's FedAvg weight
        delta after that many full-batch SGD steps of rate ``local_lr``, and the attacker unrolls
        them (:mod:`neurofl.attacks.fedavg`); otherwise the target is the FedSGD gradient

    Returns
    -------
    Inversion with images (victims * batch, *input_shape)
    """
    if recipe.adaptive and transform is None:
        if profile is None:
            raise UserError(f"recipe '{recipe.name}': adaptive = true needs the device profile")
        from neurofl.attacks.adaptive import update_quantizer

        transform = update_quantizer(profile)
    victims = next(iter(target.values())).shape[0]
    classes = target[[k for k in target if k.endswith("weight")][-1]].shape[1]
    r, n = recipe.restarts, victims * batch
    rows = r * victims
    dev = device_of(model)
    labels = labels.to(dev) if labels is not None else None
    enc_gen = torch.Generator().manual_seed(seed + 1)
    tgt_once = {k: v.detach() for k, v in target.items()}
    tgt = flatten(tgt_once).repeat(r, 1)
    sizes = [v[0].numel() for v in tgt_once.values()]
    joint = recipe.labels == "joint"
    if not joint and labels is None:
        raise ValueError("labels are required unless the recipe optimizes them jointly")
    spike = recipe.attack == "spike_ig"
    if local_steps > 1 and local_lr is None:
        raise ValueError("local_lr is required when local_steps > 1")

    def simulate(x: torch.Tensor, y: torch.Tensor, graph: bool) -> dict[str, torch.Tensor]:
        """The candidate update of inputs x with labels y: gradient, or unrolled delta."""
        if local_steps > 1:
            grads = local_update(model, x, y, batch, local_steps, local_lr, create_graph=graph, generator=enc_gen)
        else:
            grads = per_sample_gradients(
                model, x, y, create_graph=graph, generator=enc_gen, group=batch,
                detach_backward=recipe.backward == "detached",
            )  # fmt: skip
        return transform(grads) if transform is not None else grads

    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        # The unknowns: the input (or its spike logits) and, for DLG, label logits.
        size = int(torch.tensor(input_shape).prod())
        if start is not None or (recipe.init == "analytic" and readable(tgt_once, size)):
            if start is not None:
                x0 = start.detach().clamp(0, 1).to(dev)
            else:
                start_labels = labels if not joint else torch.full((n, classes), 1.0 / classes, device=dev)
                x0 = analytic_init(
                    simulate, tgt_once, start_labels, input_shape, batch,
                    lambda a, b: gradient_distance(a, b, recipe.distance, sizes),
                )
            noise = _per_victim(lambda g: 0.1 * torch.randn((batch, *input_shape), generator=g), seed, victims, r)
            noise = noise.to(dev)
            noise[:n] = 0  # the first restart starts at the readout itself
            x0 = (x0.repeat(r, *([1] * len(input_shape))) + noise).clamp(0, 1)
        else:
            how = "uniform" if recipe.init == "analytic" else recipe.init  # no readout: a conv first layer
            x0 = _per_victim(lambda g: _start((batch, *input_shape), how, g), seed, victims, r).to(dev)
        z = torch.logit(x0.clamp(0.02, 0.98)) if spike else x0.clone()
        lab = _per_victim(lambda g: torch.randn((batch, classes), generator=g), seed + 7, victims, r) if joint else None
        lab = lab.to(dev) if lab is not None else None
        y_fixed = None if joint else labels.repeat(r)

        def candidate(zz: torch.Tensor) -> torch.Tensor:
            if not spike:
                return zz
            soft = torch.sigmoid(zz)
            if recipe.spike_relaxation == "sigmoid":
                return soft
            return soft + ((soft > recipe.spike_threshold).to(soft.dtype) - soft).detach()

        def objective(zz: torch.Tensor, ll: torch.Tensor | None, graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
            x = candidate(zz)
            y = F.softmax(ll, dim=-1) if joint else y_fixed
            dist = gradient_distance(flatten(simulate(x, y, graph)), tgt, recipe.distance, sizes)
            tv = _tv(x, input_shape).reshape(rows, batch).mean(1)
            return dist + recipe.tv_weight * tv, dist

        best = torch.full((rows,), float("inf"), device=dev)
        best_z = z.detach().clone()
        best_lab = lab.detach().clone() if joint else None

        def remember(zz: torch.Tensor, ll: torch.Tensor | None, dist: torch.Tensor) -> None:
            d = torch.nan_to_num(dist.detach(), nan=float("inf"))
            better = d < best if recipe.keep_best else torch.ones_like(d, dtype=torch.bool)
            best.copy_(torch.where(better, d, best))
            per_sample = better.reshape(r, victims).repeat_interleave(batch, dim=1).reshape(-1)
            mask = per_sample.reshape((-1,) + (1,) * (zz.dim() - 1))
            best_z.copy_(torch.where(mask, zz.detach(), best_z))
            if ll is not None:
                best_lab.copy_(torch.where(per_sample[:, None], ll.detach(), best_lab))

        def box(zz: torch.Tensor) -> None:
            if recipe.boxed and not spike:
                zz.clamp_(0, 1)

        if recipe.optimizer == "adam":
            z.requires_grad_(True)
            params = [z] + ([lab.requires_grad_(True)] if joint else [])
            opt = torch.optim.Adam(params, lr=recipe.lr)
            milestones = [int(recipe.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]
            sched = torch.optim.lr_scheduler.MultiStepLR(
                opt, milestones=milestones if recipe.lr_schedule == "multistep" else [], gamma=0.1
            )
            for it in range(recipe.iterations):
                opt.zero_grad()
                loss, dist = objective(z, lab, graph=True)
                remember(z, lab, dist)
                with surrogate_width(recipe.surrogate_width):
                    loss.masked_fill(~torch.isfinite(loss), 0).sum().backward()
                with torch.no_grad():
                    for p in params:
                        p.grad.nan_to_num_(0.0, 0.0, 0.0)
                        if recipe.signed_gradients:
                            p.grad.sign_()
                opt.step()
                sched.step()
                with torch.no_grad():
                    box(z)
                if on_step is not None:
                    on_step(it + 1)
            z, lab = z.detach(), (lab.detach() if joint else None)
        else:
            dims = [z.numel() // rows] + ([lab.numel() // rows] if joint else [])
            lbfgs = BatchedLBFGS(rows, sum(dims), recipe.lr, recipe.history, device=dev)
            flat = torch.cat([z.reshape(rows, -1)] + ([lab.reshape(rows, -1)] if joint else []), 1)
            for it in range(recipe.iterations):
                flat = flat.detach().requires_grad_(True)
                zz = flat[:, : dims[0]].reshape(z.shape)
                ll = flat[:, dims[0] :].reshape(lab.shape) if joint else None
                loss, dist = objective(zz, ll, graph=True)
                remember(zz, ll, dist)
                with surrogate_width(recipe.surrogate_width):
                    (grad,) = torch.autograd.grad(loss.masked_fill(~torch.isfinite(loss), 0).sum(), flat)
                grad = torch.where(torch.isfinite(loss)[:, None], grad, torch.nan)  # freezes diverged rows
                flat = lbfgs.step(flat.detach(), grad)
                if recipe.boxed and not spike:
                    flat[:, : dims[0]].clamp_(0, 1)
                if on_step is not None:
                    on_step(it + 1)
            z = flat[:, : dims[0]].reshape(z.shape)
            lab = flat[:, dims[0] :].reshape(lab.shape) if joint else None
        # Score the last iterate too.
        with torch.enable_grad():
            _, dist = objective(z.detach().requires_grad_(True), lab, graph=False)
        remember(z, lab, dist)
    finally:
        for p in frozen:
            p.requires_grad_(True)

    per_restart = torch.where(torch.isfinite(best), best, torch.nan).reshape(r, victims)
    choice = torch.nan_to_num(per_restart, nan=float("inf")).argmin(0)
    idx = torch.arange(victims, device=dev)
    zs = best_z.reshape(r, victims, batch, *input_shape)[choice, idx]
    if spike:
        images = (torch.sigmoid(zs) > recipe.spike_threshold).float()
    else:
        images = zs.clamp(0, 1)
    if joint:
        out_labels = best_lab.reshape(r, victims, batch, classes)[choice, idx].argmax(-1).reshape(n)
    else:
        out_labels = labels
    return Inversion(images.reshape(n, *input_shape), per_restart[choice, idx], out_labels)
