"""Gradient inversion attacks on shared (quantized) updates."""

from neurofl.attacks.inverting import Inversion, invert
from neurofl.attacks.labels import count_labels, idlg_labels, recover_labels
from neurofl.attacks.recipe import AttackRecipe, load_recipe

__all__ = ["AttackRecipe", "Inversion", "count_labels", "idlg_labels", "invert", "load_recipe", "recover_labels"]
