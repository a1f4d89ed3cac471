"""Attack recipes: every hyper-parameter of an attack, as a validated TOML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from neurofl.config import bounded, from_table, read_toml
from neurofl.errors import UserError
from neurofl.resources import shipped_tomls


@dataclass(frozen=True)
class AttackRecipe:
    """A gradient-inversion attack configuration.

    distance: ``cosine`` (1 - cosine similarity over all weights, Geiping et al.) or ``l2``
    (squared Euclidean distance, DLG). labels: ``idlg`` recovers each victim's label from the
    last layer's gradient; ``known`` hands the attacker the true labels.
    """

    name: str
    attack: Literal["inverting_gradients"]
    distance: Literal["cosine", "l2"]
    optimizer: Literal["adam"]
    signed_gradients: bool
    iterations: int = field(metadata=bounded(1, 1_000_000))
    lr: float = field(metadata=bounded(1e-9, 1e3))
    lr_schedule: Literal["multistep", "constant"]
    tv_weight: float = field(metadata=bounded(0.0, 1e6))
    restarts: int = field(metadata=bounded(1, 64))
    init: Literal["uniform", "gaussian", "zeros"]
    labels: Literal["idlg", "known"]
    boxed: bool
    source: str = ""


def load_recipe(name_or_path: str | Path) -> AttackRecipe:
    """Load a shipped recipe by name (``attacks/NAME.toml``) or any recipe TOML by path."""
    shipped = shipped_tomls("attacks")
    text = str(name_or_path)
    if text in shipped:
        path = shipped[text]
    elif text.endswith(".toml") or "/" in text or Path(text).exists():
        path = Path(text)
    else:
        raise UserError(f"unknown attack '{text}' (shipped: {', '.join(shipped)}; or give a path to a .toml file)")
    return from_table(AttackRecipe, read_toml(path), path)
