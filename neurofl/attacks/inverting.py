"""Gradient matching (DLG, iDLG, Inverting Gradients, spike-domain), vectorized over victims.

All victims (and restarts) are optimized in one tensor: their losses are summed but never
interact, Adam is elementwise and L-BFGS keeps one history per row, so the result equals running
each victim on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from neurofl.attacks.analytic import analytic_init, readable
from neurofl.attacks.fedavg import local_update
from neurofl.attacks.lbfgs import BatchedLBFGS
from neurofl.attacks.recipe import AttackRecipe
from neurofl.errors import UserError
from neurofl.leakage.gradients import flatten, per_sample_gradients
from neurofl.models.cuba import surrogate_width
from neurofl.profiles import HardwareProfile
from neurofl.runs.device import device_of

Transform = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per sample. x: (n, C, H, W) -> (n,)"""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    return dx + dy


def _l2(candidate: torch.Tensor, target: torch.Tensor, sizes: list[int] | None) -> torch.Tensor:
    """Squared Euclidean distance (DLG)."""
    return ((candidate - target) ** 2).sum(1)


def _cosine(candidate: torch.Tensor, target: torch.Tensor, sizes: list[int] | None) -> torch.Tensor:
    """1 - cosine similarity over all weights (Inverting Gradients)."""
    dot = (candidate * target).sum(1)
    norms = candidate.norm(dim=1) * target.norm(dim=1)
    return 1 - dot / norms.clamp_min(1e-12)


def _layer_cosine(candidate: torch.Tensor, target: torch.Tensor, sizes: list[int] | None) -> torch.Tensor:
    """1 - cosine averaged over the tensors whose flattened ``sizes`` make up P."""
    parts = zip(candidate.split(sizes, 1), target.split(sizes, 1), strict=True)
    return torch.stack([_cosine(c, t, None) for c, t in parts]).mean(0)


#: The gradient distances, by a recipe's ``distance`` (a lookup table, as breaching keeps its objectives).
DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor, list[int] | None], torch.Tensor]] = {
    "l2": _l2,
    "cosine": _cosine,
    "layer_cosine": _layer_cosine,
}


def gradient_distance(
    candidate: torch.Tensor, target: torch.Tensor, distance: str, sizes: list[int] | None = None
) -> torch.Tensor:
    """Per-victim distance between flattened gradients. (n, P), (n, P) -> (n,)

    ``layer_cosine`` averages ``1 - cosine`` over the tensors whose flattened ``sizes`` make up P
    (every layer counts equally, however many weights it has); a name not in :data:`DISTANCES`
    is the squared L2 distance."""
    return DISTANCES.get(distance, _l2)(candidate, target, sizes)


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


Simulate = Callable[[torch.Tensor, torch.Tensor, bool], dict[str, torch.Tensor]]


def _sigmoid_spikes(z: torch.Tensor, threshold: float) -> torch.Tensor:
    return torch.sigmoid(z)


def _straight_through_spikes(z: torch.Tensor, threshold: float) -> torch.Tensor:
    soft = torch.sigmoid(z)
    return soft + ((soft > threshold).to(soft.dtype) - soft).detach()


#: How ``spike_ig`` turns its unknowns (logits) into a candidate event input, by ``spike_relaxation``.
SPIKE_RELAXATIONS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "sigmoid": _sigmoid_spikes,
    "straight_through": _straight_through_spikes,
}


@dataclass(frozen=True, eq=False)
class MatchingObjective:
    """The gradient-matching objective of every row (restart x victim, restart-major).

    ``(unknowns, label logits, create_graph) -> (loss, distance)``, each (rows,): the
    :data:`DISTANCES` entry ``distance`` between the candidate's simulated update and the target,
    plus ``tv_weight`` times the candidate's total variation averaged over the row's batch.

    simulate : (inputs, labels, create_graph) -> the candidate update, name -> (rows, ...)
    target : (rows, P) the flattened target update of each row; sizes: its tensors' sizes in P
    labels : (rows * batch,) fixed labels, or None: the labels are the softmax of the optimized
        logits (DLG's joint labels)
    spike_relaxation : None for an analog input (the unknowns are the input), else the
        :data:`SPIKE_RELAXATIONS` entry that turns logits into events, with ``spike_threshold``
    """

    simulate: Simulate
    target: torch.Tensor
    sizes: list[int]
    distance: str
    tv_weight: float
    input_shape: tuple[int, ...]
    batch: int
    labels: torch.Tensor | None
    spike_relaxation: str | None = None
    spike_threshold: float = 0.5

    @property
    def rows(self) -> int:
        return self.target.shape[0]

    def candidate(self, z: torch.Tensor) -> torch.Tensor:
        """The candidate input the unknowns ``z`` stand for."""
        if self.spike_relaxation is None:
            return z
        return SPIKE_RELAXATIONS[self.spike_relaxation](z, self.spike_threshold)

    def __call__(self, z: torch.Tensor, logits: torch.Tensor | None, graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.candidate(z)
        if self.labels is None:
            assert logits is not None, "joint labels need their logits"
            y = F.softmax(logits, dim=-1)
        else:
            y = self.labels
        dist = gradient_distance(flatten(self.simulate(x, y, graph)), self.target, self.distance, self.sizes)
        tv = _tv(x, self.input_shape).reshape(self.rows, self.batch).mean(1)
        return dist + self.tv_weight * tv, dist


class BestIterates:
    """Per row, the iterate an attack returns and its gradient distance: the lowest distance seen
    (``keep_best``) or the last iterate. Non-finite distances count as infinitely far."""

    def __init__(
        self, z: torch.Tensor, logits: torch.Tensor | None, restarts: int, victims: int, batch: int, keep_best: bool
    ):
        self.restarts, self.victims, self.batch, self.keep_best = restarts, victims, batch, keep_best
        self.distance = torch.full((restarts * victims,), float("inf"), device=z.device)
        self.z = z.detach().clone()
        self.logits = logits.detach().clone() if logits is not None else None

    def remember(self, z: torch.Tensor, logits: torch.Tensor | None, dist: torch.Tensor) -> None:
        """Keep the rows of ``z`` (and ``logits``) whose distance ``dist`` is the best so far."""
        d = torch.nan_to_num(dist.detach(), nan=float("inf"))
        better = d < self.distance if self.keep_best else torch.ones_like(d, dtype=torch.bool)
        self.distance.copy_(torch.where(better, d, self.distance))
        per_sample = better.reshape(self.restarts, self.victims).repeat_interleave(self.batch, dim=1).reshape(-1)
        mask = per_sample.reshape((-1,) + (1,) * (z.dim() - 1))
        self.z.copy_(torch.where(mask, z.detach(), self.z))
        if logits is not None:
            assert self.logits is not None
            self.logits.copy_(torch.where(per_sample[:, None], logits.detach(), self.logits))


def select_restarts(distance: torch.Tensor, restarts: int, victims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Restart selection: per victim, the restart whose kept iterate is closest, and its distance.

    distance : (restarts * victims,) restart-major. Returns ``choice`` (victims,) restart indices and
    ``loss`` (victims,), NaN where every restart diverged (the first restart is then chosen)."""
    per_restart = torch.where(torch.isfinite(distance), distance, torch.nan).reshape(restarts, victims)
    choice = torch.nan_to_num(per_restart, nan=float("inf")).argmin(0)
    return choice, per_restart[choice, torch.arange(victims, device=distance.device)]


Remember = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor], None]


def _adam_steps(
    objective: MatchingObjective,
    z: torch.Tensor,
    logits: torch.Tensor | None,
    recipe: AttackRecipe,
    boxed: bool,
    remember: Remember,
    on_step: Callable[[int], None] | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``recipe.iterations`` Adam steps (signed gradients if the recipe says so, MultiStepLR decay
    by 10 at 3/8, 5/8 and 7/8 of the run for ``lr_schedule = "multistep"``); ``boxed``: the input
    is clamped to [0, 1] after each step. Diverged rows get zero gradients."""
    z.requires_grad_(True)
    params = [z] + ([logits.requires_grad_(True)] if logits is not None else [])
    opt = torch.optim.Adam(params, lr=recipe.lr)
    milestones = [int(recipe.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=milestones if recipe.lr_schedule == "multistep" else [], gamma=0.1
    )
    for it in range(recipe.iterations):
        opt.zero_grad()
        loss, dist = objective(z, logits, graph=True)
        remember(z, logits, dist)
        with surrogate_width(recipe.surrogate_width):
            loss.masked_fill(~torch.isfinite(loss), 0).sum().backward()
        with torch.no_grad():
            for p in params:
                assert p.grad is not None
                p.grad.nan_to_num_(0.0, 0.0, 0.0)
                if recipe.signed_gradients:
                    p.grad.sign_()
        opt.step()
        sched.step()
        if boxed:
            with torch.no_grad():
                z.clamp_(0, 1)
        if on_step is not None:
            on_step(it + 1)
    return z.detach(), (logits.detach() if logits is not None else None)


def _lbfgs_steps(
    objective: MatchingObjective,
    z: torch.Tensor,
    logits: torch.Tensor | None,
    recipe: AttackRecipe,
    boxed: bool,
    remember: Remember,
    on_step: Callable[[int], None] | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``recipe.iterations`` steps of :class:`~neurofl.attacks.lbfgs.BatchedLBFGS` (one history per
    row) on the unknowns and label logits concatenated; a diverged row is frozen."""
    rows = objective.rows
    dims = [z.numel() // rows] + ([logits.numel() // rows] if logits is not None else [])
    lbfgs = BatchedLBFGS(rows, sum(dims), recipe.lr, recipe.history, device=z.device)
    flat = torch.cat([z.reshape(rows, -1)] + ([logits.reshape(rows, -1)] if logits is not None else []), 1)
    for it in range(recipe.iterations):
        flat = flat.detach().requires_grad_(True)
        zz = flat[:, : dims[0]].reshape(z.shape)
        ll = flat[:, dims[0] :].reshape(logits.shape) if logits is not None else None
        loss, dist = objective(zz, ll, graph=True)
        remember(zz, ll, dist)
        with surrogate_width(recipe.surrogate_width):
            (grad,) = torch.autograd.grad(loss.masked_fill(~torch.isfinite(loss), 0).sum(), flat)
        grad = torch.where(torch.isfinite(loss)[:, None], grad, torch.nan)  # freezes diverged rows
        flat = lbfgs.step(flat.detach(), grad)
        if boxed:
            flat[:, : dims[0]].clamp_(0, 1)
        if on_step is not None:
            on_step(it + 1)
    z_out = flat[:, : dims[0]].reshape(z.shape)
    return z_out, (flat[:, dims[0] :].reshape(logits.shape) if logits is not None else None)


#: The step loops, by a recipe's ``optimizer``.
STEP_LOOPS = {"adam": _adam_steps, "lbfgs": _lbfgs_steps}


@contextmanager
def _frozen(model: torch.nn.Module) -> Iterator[None]:
    """The model's trainable parameters stop requiring gradients (only the unknowns do) until exit."""
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _start_point(
    recipe: AttackRecipe,
    objective: MatchingObjective,
    target: dict[str, torch.Tensor],
    start_labels: torch.Tensor,
    input_shape: tuple[int, ...],
    seed: int,
    victims: int,
    start: torch.Tensor | None,
    device: torch.device,
) -> torch.Tensor:
    """The restarts' starting inputs (restarts * victims * batch, *input_shape): ``start`` or the
    first layer's readout (``init = "analytic"`` where it is readable), the first restart exactly
    there and the others 0.1-Gaussian noise away; else drawn per victim as ``recipe.init`` says."""
    r, batch = recipe.restarts, objective.batch
    size = int(torch.tensor(input_shape).prod())
    if start is None and not (recipe.init == "analytic" and readable(target, size)):
        how = "uniform" if recipe.init == "analytic" else recipe.init  # no readout: a conv first layer
        return _per_victim(lambda g: _start((batch, *input_shape), how, g), seed, victims, r).to(device)
    if start is not None:
        x0 = start.detach().clamp(0, 1).to(device)
    else:
        x0 = analytic_init(
            objective.simulate, target, start_labels, input_shape, batch,
            lambda a, b: gradient_distance(a, b, recipe.distance, objective.sizes),
        )  # fmt: skip
    noise = _per_victim(lambda g: 0.1 * torch.randn((batch, *input_shape), generator=g), seed, victims, r)
    noise = noise.to(device)
    noise[: victims * batch] = 0  # the first restart starts at the readout itself
    return (x0.repeat(r, *([1] * len(input_shape))) + noise).clamp(0, 1)


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
    minibatch: int | None = None,
) -> Inversion:
    """Reconstruct each victim's private batch from its shared update.

    The attack is three parts: the objective (:class:`MatchingObjective`, its distance from
    :data:`DISTANCES`), a step loop (:data:`STEP_LOOPS`, by ``recipe.optimizer``) that keeps each
    row's best iterate (:class:`BestIterates`), and the restart selection (:func:`select_restarts`).

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
        delta after that many SGD steps of rate ``local_lr``, and the attacker unrolls them
        (:mod:`neurofl.attacks.fedavg`); otherwise the target is the FedSGD gradient
    start : (victims * batch, *input_shape) a starting point (e.g. another attack's result)
        instead of ``recipe.init``
    minibatch : samples per local step (None: the whole batch every step); the candidates are
        split into minibatches in their own order (the client's order is unknown, and the scoring
        pairs an unordered set). With ``minibatch < batch`` the labels are optimized jointly with
        the inputs (as ``labels = "joint"``, DLG's), whatever ``recipe.labels``: a recovered label
        multiset does not say which step each label was in

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
    dev = device_of(model)
    labels = labels.to(dev) if labels is not None else None
    enc_gen = torch.Generator().manual_seed(seed + 1)
    tgt_once = {k: v.detach() for k, v in target.items()}
    # Fresh minibatches: the attacker knows the label multiset at best, not which step each label
    # was in, and the steps' order matters to the delta; so each candidate's label is optimized with it.
    joint = recipe.labels == "joint" or (local_steps > 1 and minibatch is not None and minibatch < batch)
    if not joint and labels is None:
        raise ValueError("labels are required unless the recipe optimizes them jointly")
    spike = recipe.attack == "spike_ig"
    if local_steps > 1 and local_lr is None:
        raise ValueError("local_lr is required when local_steps > 1")

    def simulate(x: torch.Tensor, y: torch.Tensor, graph: bool) -> dict[str, torch.Tensor]:
        """The candidate update of inputs x with labels y: gradient, or unrolled delta."""
        if local_steps > 1:
            assert local_lr is not None
            grads = local_update(model, x, y, batch, local_steps, local_lr, create_graph=graph, generator=enc_gen,
                                 minibatch=minibatch)  # fmt: skip
        else:
            grads = per_sample_gradients(
                model, x, y, create_graph=graph, generator=enc_gen, group=batch,
                detach_backward=recipe.backward == "detached",
            )  # fmt: skip
        return transform(grads) if transform is not None else grads

    objective = MatchingObjective(
        simulate, flatten(tgt_once).repeat(r, 1), [v[0].numel() for v in tgt_once.values()], recipe.distance,
        recipe.tv_weight, input_shape, batch, None if labels is None or joint else labels.repeat(r),
        recipe.spike_relaxation if spike else None, recipe.spike_threshold,
    )  # fmt: skip
    with _frozen(model):
        # The unknowns: the input (or its spike logits) and, for DLG, label logits.
        if labels is not None and not joint:
            start_labels = labels
        else:
            start_labels = torch.full((n, classes), 1.0 / classes, device=dev)
        x0 = _start_point(recipe, objective, tgt_once, start_labels, input_shape, seed, victims, start, dev)
        z = torch.logit(x0.clamp(0.02, 0.98)) if spike else x0.clone()
        lab = None
        if joint:
            lab = _per_victim(lambda g: torch.randn((batch, classes), generator=g), seed + 7, victims, r).to(dev)
        best = BestIterates(z, lab, r, victims, batch, recipe.keep_best)
        steps = STEP_LOOPS[recipe.optimizer]
        z, lab = steps(objective, z, lab, recipe, recipe.boxed and not spike, best.remember, on_step)
        # Score the last iterate too.
        with torch.enable_grad():
            _, dist = objective(z.detach().requires_grad_(True), lab, graph=False)
        best.remember(z, lab, dist)

    choice, loss = select_restarts(best.distance, r, victims)
    idx = torch.arange(victims, device=dev)
    zs = best.z.reshape(r, victims, batch, *input_shape)[choice, idx]
    if spike:
        images = (torch.sigmoid(zs) > recipe.spike_threshold).float()
    else:
        images = zs.clamp(0, 1)
    out_labels = labels
    if best.logits is not None:
        out_labels = best.logits.reshape(r, victims, batch, classes)[choice, idx].argmax(-1).reshape(n)
    return Inversion(images.reshape(n, *input_shape), loss, out_labels)
