"""Gradient inversion attacks on shared (quantized) updates: recipes, the attacks, label recovery."""

from neurofl.attacks.inverting import Inversion, invert
from neurofl.attacks.labels import count_labels, idlg_labels, recover_labels, solve_labels
from neurofl.attacks.recipe import AttackRecipe, Recipe, load_attack, load_recipe

__all__ = [
    "AttackRecipe", "Inversion", "Recipe", "count_labels", "idlg_labels", "invert", "load_attack", "load_recipe",
    "recover_labels", "solve_labels",
]
