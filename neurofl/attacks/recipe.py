"""Attack recipes: every hyper-parameter of an attack, as a validated TOML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from neurofl.config import bounded, from_table, read_toml
from neurofl.resources import resolve_toml


@dataclass(frozen=True)
class AttackRecipe:
    """A gradient-inversion attack configuration.

    attack: ``dlg`` / ``idlg`` (Zhu et al. 2019 / Zhao et al. 2020), ``inverting_gradients``
    (Geiping et al. 2020) or ``spike_ig`` (the input is a relaxed binary spike tensor).
    distance: ``cosine`` (1 - cosine similarity over all weights, Geiping et al.) or ``l2``
    (squared Euclidean distance, DLG). optimizer: ``adam`` (``signed_gradients`` as in Geiping's
    code) or ``lbfgs`` (per-victim L-BFGS with a fixed step ``lr`` and ``history`` pairs, as DLG).
    labels: ``idlg`` recovers labels from the last layer's gradient (iDLG at batch 1, a count
    estimate above), ``known`` hands the attacker the true labels, ``joint`` optimizes soft labels
    with the image (DLG). init: ``analytic`` starts from the first layer's rank-``batch`` readout
    (a bias-free fully connected first layer's gradient is ``dz x^T``; a model whose first layer
    is convolutional starts ``uniform`` instead). keep_best: return, per
    victim, the iterate with the lowest gradient distance seen rather than the last one.
    adaptive: the attacker passes its candidate update through the device's update quantizer
    (straight-through) before matching. spike_relaxation / spike_threshold: how ``spike_ig``
    relaxes its binary input (``sigmoid`` of logits, or ``straight_through`` hard spikes with the
    sigmoid's gradient) and where it thresholds the final reconstruction.
    """

    name: str
    attack: Literal["dlg", "idlg", "inverting_gradients", "spike_ig"]
    distance: Literal["cosine", "l2"]
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
    source: str = ""

    def __post_init__(self) -> None:
        if self.optimizer == "lbfgs" and self.signed_gradients:
            raise ValueError("key 'signed_gradients' = true needs optimizer = 'adam' (L-BFGS uses raw gradients)")
        if self.optimizer == "lbfgs" and self.lr_schedule != "constant":
            raise ValueError("key 'lr_schedule' must be 'constant' with optimizer = 'lbfgs' (it takes fixed steps)")
        if self.attack == "spike_ig" and self.init == "analytic":
            raise ValueError("key 'init' = 'analytic' does not apply to attack = 'spike_ig' (it reads analog inputs)")


def load_recipe(name_or_path: str | Path) -> AttackRecipe:
    """Load a shipped recipe by name (``attacks/NAME.toml``) or any recipe TOML by path."""
    path = resolve_toml("attacks", name_or_path, "attack")
    return from_table(AttackRecipe, read_toml(path), path)
