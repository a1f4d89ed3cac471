"""Attack recipes and suites: every hyper-parameter of an attack, as a validated TOML file.

A recipe's ``attack`` key picks its family, and the family's frozen dataclass validates every
other key (:data:`FAMILIES`). A suite (a file with a ``recipes`` list) names recipes to run on the
same victims, with optional per-recipe overrides checked by each recipe's own dataclass.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from neurofl.config import bounded, from_table, read_toml
from neurofl.errors import UserError
from neurofl.shipped import resolve_toml


@dataclass(frozen=True)
class AttackRecipe:
    """A gradient-matching attack: DLG, iDLG, Inverting Gradients or its spike-domain variant.

    attack: ``dlg`` / ``idlg`` (Zhu et al. 2019 / Zhao et al. 2020), ``inverting_gradients``
    (Geiping et al. 2020) or ``spike_ig`` (the input is a relaxed binary spike tensor).
    distance: ``cosine`` (1 - cosine similarity over all weights, Geiping et al.), ``layer_cosine``
    (its mean over the layers, so a small first layer counts as much as a large one) or ``l2``
    (squared Euclidean distance, DLG). optimizer: ``adam`` (``signed_gradients`` as in Geiping's
    code) or ``lbfgs`` (per-victim L-BFGS with a fixed step ``lr`` and ``history`` pairs, as DLG).
    labels: ``idlg`` recovers labels from the last layer's gradient (iDLG at batch 1, a count
    estimate above), ``known`` hands the attacker the true labels (an oracle experiment, never in
    a suite), ``joint`` optimizes soft labels with the image (DLG). init: ``analytic`` starts from
    the first layer's rank-``batch`` readout (a bias-free fully connected first layer's gradient
    is ``dz x^T``; a model whose first layer is convolutional starts ``uniform`` instead).
    keep_best: return, per victim, the iterate with the lowest gradient distance seen (the start
    included) rather than the last one. adaptive: the attacker passes its candidate update through
    the device's update quantizer (straight-through) before matching. spike_relaxation /
    spike_threshold: how ``spike_ig`` relaxes its binary input (``sigmoid`` of logits, or
    ``straight_through`` hard spikes with the sigmoid's gradient) and where it thresholds the final
    reconstruction. backward: ``full`` differentiates the candidate update through the whole
    backward pass (for an SNN, through the surrogate's derivative); ``detached`` recomputes each
    layer's output gradient at the current guess but treats it as a constant
    (:func:`neurofl.leakage.gradients.per_sample_gradients`). surrogate_width: the attacker's own input
    gradient passes spikes with a surrogate this many times wider (same area) than the model's
    (:func:`neurofl.models.cuba.surrogate_width`); the simulated update itself always uses the
    model's surrogate, so the victims' inputs still match exactly. 1 is the model's surrogate.
    """

    name: str
    attack: Literal["dlg", "idlg", "inverting_gradients", "spike_ig"]
    distance: Literal["cosine", "layer_cosine", "l2"]
    optimizer: Literal["adam", "lbfgs"]
    signed_gradients: bool
    iterations: int = field(metadata=bounded(1, 1_000_000))
    lr: float = field(metadata=bounded(1e-9, 1e3))
    lr_schedule: Literal["multistep", "constant"]
    tv_weight: float = field(metadata=bounded(0.0, 1e6))
    restarts: int = field(metadata=bounded(1, 64))
    init: Literal["uniform", "gaussian", "zeros", "analytic"]
    labels: Literal["idlg", "known", "joint"]
    boxed: bool
    keep_best: bool = False
    adaptive: bool = False
    history: int = field(default=100, metadata=bounded(1, 1000))
    spike_relaxation: Literal["sigmoid", "straight_through"] = "sigmoid"
    spike_threshold: float = field(default=0.5, metadata=bounded(0.0, 1.0))
    backward: Literal["full", "detached"] = "full"
    surrogate_width: float = field(default=1.0, metadata=bounded(1e-3, 1e3))
    source: str = ""

    def __post_init__(self) -> None:
        if self.optimizer == "lbfgs" and self.signed_gradients:
            raise ValueError("key 'signed_gradients' = true needs optimizer = 'adam' (L-BFGS uses raw gradients)")
        if self.optimizer == "lbfgs" and self.lr_schedule != "constant":
            raise ValueError("key 'lr_schedule' must be 'constant' with optimizer = 'lbfgs' (it takes fixed steps)")
        if self.attack == "spike_ig" and self.init == "analytic":
            raise ValueError("key 'init' = 'analytic' does not apply to attack = 'spike_ig' (it reads analog inputs)")

    @property
    def steps(self) -> int:
        """Progress steps of one run (optimizer iterations)."""
        return self.iterations


@dataclass(frozen=True)
class DisaggregationRecipe:
    """Disaggregation of a fully connected first layer's batch update (neurofl's analytic attack).

    A bias-free first layer's batch update is ``T = (1/B) sum_i D_i x_i^T``, with ``D_i`` the
    sample's output gradient summed over time: its row space is spanned by the B inputs, its
    column space by the B backward signals. ``als_iterations`` alternating least-squares steps
    (``D`` recomputed at the current inputs, then ``X = lstsq(D, T)``, mixed into the estimate
    with weight ``als_step``) are followed by ``search_generations`` of a derivative-free
    (1+lambda) evolution strategy, ``population`` candidates per sample, in the B-dimensional row
    space, minimizing each sample's consistency residual: the part of its backward signal ``D(x)``
    outside T's column space. No derivative of the model's backward pass (so no spike surrogate
    derivative) is ever taken. Labels start from the row's recovered ``labels`` and are re-solved
    every ``label_every`` steps of either stage, and at the end, by non-negative least squares over
    the whole update (a gradient is linear in the one-hot label once the input is fixed).
    """

    name: str
    attack: Literal["disaggregation"]
    labels: Literal["idlg", "known"] = "idlg"
    als_iterations: int = field(default=20, metadata=bounded(0, 100_000))
    als_step: float = field(default=0.5, metadata=bounded(1e-3, 1.0))
    search_generations: int = field(default=160, metadata=bounded(0, 100_000))
    population: int = field(default=32, metadata=bounded(1, 4096))
    search_step: float = field(default=0.3, metadata=bounded(1e-6, 10.0))
    label_every: int = field(default=5, metadata=bounded(1, 100_000))
    source: str = ""

    @property
    def steps(self) -> int:
        return self.als_iterations + self.search_generations


@dataclass(frozen=True)
class CocktailPartyRecipe:
    """Cocktail Party Attack (Kariyappa et al., ICML 2023): the first fully connected layer's batch
    update is a linear mixture of the B inputs; whiten its rows to B components and unmix them by
    FastICA (``ica_iterations`` fixed-point steps, log-cosh contrast, symmetric decorrelation,
    ``restarts`` random rotations, the most non-Gaussian kept). Each source's sign is the one that
    makes it non-negative in the mean and its scale puts its maximum at the auxiliary data's typical
    maximum. ``refine`` names a recipe (or ``none``) that starts from the unmixed batch and the
    row's labels and refines it."""

    name: str
    attack: Literal["cocktail_party"]
    labels: Literal["idlg", "known"] = "idlg"
    ica_iterations: int = field(default=200, metadata=bounded(1, 100_000))
    restarts: int = field(default=4, metadata=bounded(1, 64))
    refine: str = "none"
    source: str = ""

    @property
    def steps(self) -> int:
        return self.ica_iterations * self.restarts


#: Learned inversion's dense limits: entries of a Gaussian feature projection (1 GiB; a larger one is a
#: count sketch), and trunk weights over all B readouts (128 MiB; more: the trunk sees them sketched).
DENSE_PROJECTION = 2**28
TRUNK_READOUTS = 2**25


def feature_projection(total: int, dim: int) -> Literal["none", "gaussian", "sketch"]:
    """How learned inversion projects an update of ``total`` values to ``dim`` features: not at
    all (it fits), by a dense Gaussian matrix, or by a count sketch past ``DENSE_PROJECTION``."""
    if total * dim > DENSE_PROJECTION:
        return "sketch"
    return "gaussian" if total > dim else "none"


def readout_width(batch: int, size: int, hidden: int, dim: int) -> int:
    """What learned inversion's residual trunk sees of the B readouts: all ``batch * size`` values,
    or, where that makes more than ``TRUNK_READOUTS`` trunk weights, a count sketch of ``dim``."""
    return batch * size if batch * size * hidden <= TRUNK_READOUTS else dim


@dataclass(frozen=True)
class LearnedInversionRecipe:
    """Learned inversion (Wu et al., UAI 2023, "Learning to Invert"): the server trains an MLP that
    maps an update to its batch, on updates it simulates itself from its auxiliary data through the
    same model, device arithmetic and upload quantizer (and any public defense).

    features: ``projection`` (the whole update through a fixed seeded Gaussian projection to
    ``projection_dim``, a count sketch past ``DENSE_PROJECTION`` entries; small updates pass
    whole) or ``first_layer`` (the first tensor only).
    ``training_updates`` simulated updates per epoch (drawn afresh each epoch from the auxiliary
    data with ``augment`` shifts and contrast changes), ``epochs``, Adam ``lr``, ``batch_size``;
    the MLP has ``layers`` hidden layers of ``hidden`` units. For a batch the loss pairs outputs
    with inputs by best assignment. ``predict_labels`` adds a label head (cross-entropy).
    ``auxiliary_samples`` caps the auxiliary data the attacker has (a seeded random N of its split;
    by default all of it); more than the split holds is refused.
    readout: ``none`` (the MLP predicts the batch from the features alone) or ``residual``: where the
    first layer is fully connected over the raw input, the MLP also takes that layer's readout
    (:func:`neurofl.attacks.analytic.first_layer_readout`, one start per sample slot) and predicts a
    zero-initialized correction to it; a model without a readout (a convolutional first layer) gets
    the plain MLP. unmix: how a batch's readout is split into per-sample starts (with ``readout =
    "residual"`` only; at batch 1 both give the input itself): ``svd`` (slot i gets the update's
    i-th right singular vector, a mixture of the inputs) or ``als`` (disaggregation's 20
    alternating least-squares steps from there, with the labels recovered from the update, on every
    simulated update too: exact for a float ANN, but it costs minutes of training per row).
    precision: the inverter's matrix products, ``float32`` or ``bfloat16`` (mixed precision: torch
    autocast runs the linear layers in bfloat16 with float32 accumulation; weights, Adam's state,
    the loss and the pairing stay float32; Kalamkar et al. 2019, arXiv:1905.12322). bfloat16 trains
    about 2x faster on CPUs with AVX512-BF16 (``scripts/bench_learned_precision.py``) and on GPUs
    (a CPU without bfloat16 instructions emulates it; not measured); its numbers
    differ from float32's by rounding."""

    name: str
    attack: Literal["learned_inversion"]
    features: Literal["projection", "first_layer"] = "projection"
    projection_dim: int = field(default=2048, metadata=bounded(16, 1 << 16))
    hidden: int = field(default=1024, metadata=bounded(8, 1 << 14))
    layers: int = field(default=2, metadata=bounded(1, 8))
    training_updates: int = field(default=4096, metadata=bounded(16, 10_000_000))
    epochs: int = field(default=20, metadata=bounded(1, 100_000))
    lr: float = field(default=1e-3, metadata=bounded(1e-7, 1.0))
    batch_size: int = field(default=128, metadata=bounded(1, 65_536))
    augment: bool = True
    predict_labels: bool = True
    auxiliary_samples: int | None = field(default=None, metadata=bounded(1, 100_000_000))
    readout: Literal["none", "residual"] = "none"
    unmix: Literal["svd", "als"] = "svd"
    precision: Literal["float32", "bfloat16"] = "float32"
    source: str = ""

    def __post_init__(self) -> None:
        if self.unmix != "svd" and self.readout == "none":
            raise ValueError(f"key 'unmix' = '{self.unmix}' needs readout = 'residual' (it splits the readout)")

    @property
    def labels(self) -> str:
        return "predicted" if self.predict_labels else "none"

    @property
    def steps(self) -> int:
        return self.epochs


@dataclass(frozen=True)
class RgapRecipe:
    """R-GAP (Zhu & Blaschko, ICLR 2021): recursive closed-form recovery of a batch-1 input, layer
    by layer from the output, for a float ANN of bias-free convolutions and fully connected layers
    with sigmoid activations. Each layer's input solves one linear least-squares system made of its
    forward equations (the next layer's pre-activation, the sigmoid inverted) and its weight
    gradient's equations, each block scaled to unit norm; ``ridge`` (relative to the largest diagonal
    entry of the normal equations) regularizes it."""

    name: str
    attack: Literal["rgap"]
    labels: Literal["idlg", "known"] = "idlg"
    ridge: float = field(default=1e-6, metadata=bounded(0.0, 1.0))
    source: str = ""

    @property
    def steps(self) -> int:
        return 1


@dataclass(frozen=True)
class ImprintRecipe:
    """A malicious server's imprint module (Fowl et al., ICLR 2022, "Robbing the Fed"): the server
    ships a model whose first layer has ``bins`` neurons that all measure the input along one random
    direction and fire above increasing thresholds, placed at quantiles of the measurement on the
    attacker's auxiliary data. Differences of consecutive rows of that layer's update isolate the
    samples of a batch that fall between two thresholds (:mod:`neurofl.attacks.imprint`).

    span: the largest absolute measurement over the auxiliary data, in input-current units (SLAYER
    units): wider spreads the thresholds further apart than a spiking neuron's soft onset.
    constant_input: the value of the constant input channel whose weights carry the thresholds (so
    a threshold of up to ``constant_input`` times the weight range fits the chip's weight grid).
    Never part of the honest-but-curious suite (``threat_model = "malicious"``)."""

    name: str
    attack: Literal["imprint"]
    bins: int = field(default=64, metadata=bounded(2, 4096))
    span: float = field(default=100.0, metadata=bounded(1e-3, 1e6))
    constant_input: float = field(default=16.0, metadata=bounded(1e-3, 1e6))
    source: str = ""

    @property
    def steps(self) -> int:
        return 1


Recipe = AttackRecipe | DisaggregationRecipe | CocktailPartyRecipe | LearnedInversionRecipe | RgapRecipe | ImprintRecipe

# attack key -> the dataclass that validates the rest of the recipe
FAMILIES: dict[str, type] = {
    "dlg": AttackRecipe,
    "idlg": AttackRecipe,
    "inverting_gradients": AttackRecipe,
    "spike_ig": AttackRecipe,
    "disaggregation": DisaggregationRecipe,
    "cocktail_party": CocktailPartyRecipe,
    "learned_inversion": LearnedInversionRecipe,
    "rgap": RgapRecipe,
    "imprint": ImprintRecipe,
}


def _family(table: Any, path: Path | str) -> type:
    if not isinstance(table, dict):
        raise UserError(f"{path}: not a table")
    attack = table.get("attack")
    if not isinstance(attack, str) or attack not in FAMILIES:
        raise UserError(f"{path}: key 'attack' must be one of {', '.join(map(repr, FAMILIES))}, got {attack!r}"[:300])
    return FAMILIES[attack]


def recipe_from_table(table: dict[str, Any], path: Path | str) -> Recipe:
    """Validate a parsed recipe table (its ``attack`` picks the family)."""
    return from_table(_family(table, path), table, path)


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load a shipped recipe by name (``attacks/NAME.toml``) or any recipe TOML by path."""
    path = resolve_toml("attacks", name_or_path, "attack")
    table = read_toml(path)
    if isinstance(table, dict) and "recipes" in table:
        raise UserError(f"{path}: is a suite (it lists recipes); use it with `evaluate --attack` or `attack --recipe`")
    recipe = recipe_from_table(table, path)
    if isinstance(recipe, CocktailPartyRecipe) and recipe.refine != "none":
        refine = _referenced(recipe.refine, path, "refine")
        if not isinstance(refine, (AttackRecipe, DisaggregationRecipe)):
            raise UserError(f"{path}: key 'refine' must name a gradient-matching or disaggregation recipe")
    return recipe


@dataclass(frozen=True)
class Suite:
    """Recipes run on the same victims; a row's verdict is the per-sample best over them.

    recipes : recipe names or paths; overrides : recipe name -> keys replaced in that recipe
    (validated by the recipe's own dataclass); max_iterations : caps every gradient-matching
    recipe's iterations (a quick suite)."""

    name: str
    recipes: tuple[str, ...]
    description: str = ""
    max_iterations: int | None = field(default=None, metadata=bounded(1, 1_000_000))
    source: str = ""


def load_attack(name_or_path: str | Path, iterations: int | None = None) -> tuple[str, list[Recipe]]:
    """A recipe or a suite, as (name, recipes). ``iterations`` (the CLI's ``--iterations``)
    replaces every gradient-matching recipe's iteration count.

    Raises
    ------
    UserError
        Unknown name, bad key or value (naming the file and key), or a suite that repeats a recipe.
    """
    path = resolve_toml("attacks", name_or_path, "attack")
    table = read_toml(path)
    if not (isinstance(table, dict) and "recipes" in table):
        recipes = [load_recipe(path)]
        name = recipes[0].name
    else:
        overrides = table.pop("overrides", {})
        suite = from_table(Suite, table, path)
        if not isinstance(overrides, dict) or any(not isinstance(v, dict) for v in overrides.values()):
            raise UserError(f"{path}: [overrides] must hold one table per recipe")
        unknown = sorted(set(overrides) - set(suite.recipes))
        if unknown:
            raise UserError(f"{path}: [overrides.{unknown[0]}] names no recipe of the suite")
        recipes = []
        for ref in suite.recipes:
            base = _referenced(ref, path, "recipes")
            if ref in overrides:
                merged = {**_table_of(base), **overrides[ref]}
                base = recipe_from_table(merged, f"{path} [overrides.{ref}]")
            if suite.max_iterations is not None and isinstance(base, AttackRecipe):
                base = dataclasses.replace(base, iterations=min(base.iterations, suite.max_iterations))
            recipes.append(base)
        names = [r.name for r in recipes]
        if len(set(names)) != len(names):
            raise UserError(f"{path}: key 'recipes' names a recipe twice")
        name = suite.name
    if iterations is not None:
        recipes = [dataclasses.replace(r, iterations=iterations) if isinstance(r, AttackRecipe) else r for r in recipes]
    return name, recipes


def _referenced(ref: str, path: Path, key: str) -> Recipe:
    """A recipe another file names; its errors name that file and key too."""
    if Path(ref).resolve() == Path(path).resolve():
        raise UserError(f"{path}: key '{key}' names the file itself")
    try:
        return load_recipe(ref)
    except UserError as e:
        raise UserError(f"{path}: key '{key}': {e}"[:500]) from None


def check_auxiliary(recipes: list[Recipe], available: int, dataset: str) -> None:
    """Refuse a recipe that asks for more auxiliary data than the split holds (one line)."""
    for r in recipes:
        want = getattr(r, "auxiliary_samples", None)
        if want is not None and want > available:
            raise UserError(
                f"recipe '{r.name}': key 'auxiliary_samples' = {want} exceeds the {available} samples of "
                f"{dataset}'s auxiliary split"
            )


def _table_of(recipe: Recipe) -> dict[str, Any]:
    return {f.name: getattr(recipe, f.name) for f in dataclasses.fields(recipe) if getattr(recipe, f.name) is not None}
