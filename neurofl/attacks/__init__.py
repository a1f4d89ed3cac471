"""Gradient inversion attacks on shared (quantized) updates."""

from neurofl.attacks.inverting import invert
from neurofl.attacks.labels import idlg_labels
from neurofl.attacks.recipe import AttackRecipe, load_recipe

__all__ = ["AttackRecipe", "idlg_labels", "invert", "load_recipe"]
