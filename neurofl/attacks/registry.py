"""The attacks, by recipe family: when each applies, and how each runs (one lookup table).

Every attack takes a :class:`~neurofl.attacks.target.Target` (never the victims' data), its
recipe, the labels the row recovered from the updates and a seed, and returns an
:class:`~neurofl.attacks.inverting.Inversion`. :func:`why_not` says, in one sentence, why a recipe
cannot run on a target (the report shows it instead of a score).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from neurofl.attacks.analytic import readable
from neurofl.attacks.inverting import Inversion, invert
from neurofl.attacks.recipe import (
    AttackRecipe,
    CocktailPartyRecipe,
    DisaggregationRecipe,
    ImprintRecipe,
    LearnedInversionRecipe,
    Recipe,
    RgapRecipe,
    load_recipe,
)
from neurofl.attacks.target import Target

StepFn = Callable[[int], None] | None


R = TypeVar("R", bound=Recipe)


@dataclass(frozen=True)
class Method(Generic[R]):
    """How one recipe family ``R`` is run: ``why_not`` (a reason it cannot, or None), ``run`` on a
    chunk of victims, and ``prepare`` once per row on all of them (state kept in a cache file)."""

    why_not: Callable[[Target, R], str | None]
    run: Callable[[Target, R, torch.Tensor | None, int, StepFn, Path | None], Inversion]
    prepare: Callable[[Target, R, int, Path, StepFn], None] | None = None


def _conv_first(target: Target) -> bool:
    return not readable(target.update, target.input_size)


def _first_layer_reason(target: Target, what: str) -> str | None:
    if _conv_first(target):
        return (f"{what} unmixes a fully connected first layer's update over the raw input; this model's first "
                "layer is convolutional or sees a pooled input")
    if target.local_steps > 1:
        return f"{what} reads a single gradient; a FedAvg delta of {target.local_steps} local steps is not one"
    return None


def _gm_why_not(target: Target, recipe: AttackRecipe) -> str | None:
    if recipe.attack == "spike_ig" and not target.events:
        return "spike_ig reconstructs binary event inputs; this dataset's inputs are images"
    if recipe.attack != "spike_ig" and target.events:
        return f"{recipe.attack} reconstructs images; event inputs are attacked by spike_ig"
    if target.local_steps > 1 and recipe.backward == "detached":
        return "the detached backward reads one gradient; unrolling FedAvg local steps needs the full backward"
    if target.local_steps > 1 and _conv_first(target):
        return "unrolled FedAvg local training is implemented for fully connected models only"
    return None


def _gm_run(target, recipe, labels, seed, on_step, cache, start=None) -> Inversion:
    return invert(
        target.model, target.update, labels, target.input_shape, recipe, seed, batch=target.batch,
        on_step=on_step, profile=target.profile, local_steps=target.local_steps,
        local_lr=target.local_lr if target.local_steps > 1 else None, start=start, minibatch=target.minibatch,
    )  # fmt: skip


def _disaggregation_run(target, recipe, labels, seed, on_step, cache) -> Inversion:
    from neurofl.attacks.disaggregation import disaggregate

    return disaggregate(target, recipe, labels, seed, on_step)


def _cocktail_run(target, recipe: CocktailPartyRecipe, labels, seed, on_step, cache) -> Inversion:
    import numpy as np

    from neurofl.attacks.cocktail import cocktail_party

    aux = target.auxiliary
    typical = 1.0
    if aux is not None and len(aux.y):
        typical = float(np.median(aux.x.reshape(len(aux.x), -1).max(1)))
    inv = cocktail_party(target, recipe, labels, seed, on_step, typical_max=typical)
    if recipe.refine == "none":
        return inv
    refine = load_recipe(recipe.refine)
    start = torch.nan_to_num(inv.images, nan=0.0)
    if isinstance(refine, DisaggregationRecipe):
        from neurofl.attacks.disaggregation import disaggregate

        out = disaggregate(target, refine, labels, seed, on_step, start=start)
    else:
        out = _gm_run(target, refine, labels, seed, on_step, cache, start=start)
    failed = ~torch.isfinite(inv.loss)
    return Inversion(out.images, torch.where(failed, torch.nan, out.loss), out.labels)


def _cocktail_why_not(target: Target, recipe: CocktailPartyRecipe) -> str | None:
    reason = _first_layer_reason(target, "the Cocktail Party Attack")
    if reason is None and target.batch == 1:
        reason = ("the Cocktail Party Attack unmixes a batch; at batch 1 the update is rank one and its one "
                  "component is the first-layer readout that disaggregation starts from")
    if reason is None:
        rank = min(next(iter(target.update.values())).shape[1], target.input_size)
        if target.batch > rank:
            reason = (f"the Cocktail Party Attack separates at most {rank} inputs (the first layer's update has "
                      f"rank at most min(neurons, inputs)); this update mixes {target.batch}")
    return reason


def _learned_why_not(target: Target, recipe: LearnedInversionRecipe) -> str | None:
    if target.auxiliary is None or len(target.auxiliary.y) < target.batch:
        return "learned inversion needs auxiliary data (at least one batch of it)"
    return None


def _learned_prepare(target, recipe, seed, cache, on_step) -> None:
    from neurofl.attacks.learned import prepare_inverter

    prepare_inverter(target, recipe, seed, cache, on_step)


def _learned_run(target, recipe, labels, seed, on_step, cache) -> Inversion:
    from neurofl.attacks.learned import learned_inversion

    return learned_inversion(target, recipe, cache)


def _rgap_why_not(target: Target, recipe: RgapRecipe) -> str | None:
    from neurofl.attacks.rgap import why_not

    if target.kind == "snn":
        return "R-GAP inverts each layer's activation; a spike map does not determine the membrane input behind it"
    if target.batch != 1:
        return f"R-GAP recovers a single input; this update averages {target.batch}"
    if target.local_steps > 1:
        return "R-GAP reads a single gradient, not a multi-step FedAvg delta"
    return why_not(target.model)


def _rgap_run(target, recipe, labels, seed, on_step, cache) -> Inversion:
    from neurofl.attacks.rgap import rgap

    return rgap(target, recipe, labels, seed, on_step)


def _imprint_why_not(target: Target, recipe: ImprintRecipe) -> str | None:
    return ("the imprint attack needs a malicious server that ships its own first layer; it runs under "
            "`neurofl evaluate --threat-model malicious`, never in the honest-but-curious rows")


def _imprint_run(target, recipe, labels, seed, on_step, cache) -> Inversion:
    raise AssertionError("the imprint attack never runs on an honest target (see _imprint_why_not)")


# keyed by the recipe's class: the family of METHODS[type(recipe)] is type(recipe), which a dict's type cannot say
METHODS: dict[type, Method[Any]] = {
    AttackRecipe: Method(_gm_why_not, _gm_run),
    DisaggregationRecipe: Method(lambda t, r: _first_layer_reason(t, "disaggregation"), _disaggregation_run),
    CocktailPartyRecipe: Method(_cocktail_why_not, _cocktail_run),
    LearnedInversionRecipe: Method(_learned_why_not, _learned_run, _learned_prepare),
    RgapRecipe: Method(_rgap_why_not, _rgap_run),
    ImprintRecipe: Method(_imprint_why_not, _imprint_run),
}


def why_not(target: Target, recipe: Recipe) -> str | None:
    """Why ``recipe`` cannot run on ``target``, in one sentence; None if it can."""
    return METHODS[type(recipe)].why_not(target, recipe)


def prepare(target: Target, recipe: Recipe, seed: int, cache: Path, on_step: StepFn = None) -> None:
    """Per-row work of ``recipe`` (training a learned inverter), done once and kept in ``cache``;
    nothing for attacks that need none. ``seed`` is the row's (not a chunk's)."""
    method = METHODS[type(recipe)]
    if method.prepare is not None:
        method.prepare(target, recipe, seed, cache, on_step)


def run_recipe(
    target: Target,
    recipe: Recipe,
    labels: torch.Tensor | None,
    seed: int,
    on_step: StepFn = None,
    cache: Path | None = None,
) -> Inversion:
    """Run ``recipe`` on ``target``. ``labels``: (victims * batch,) the row's recovered labels (or
    the true ones for a ``labels = "known"`` recipe; None for one that needs none). ``cache``: a
    file an attack may keep per-row state in (the learned inverter)."""
    return METHODS[type(recipe)].run(target, recipe, labels, seed, on_step, cache)
