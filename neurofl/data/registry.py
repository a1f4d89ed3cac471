"""Registers every dataset loader (one line each)."""

from neurofl.data.base import DatasetInfo, register
from neurofl.data.embedded import load_digits

register(DatasetInfo("digits", "scikit-learn load_digits (bundled)", True, load_digits, "1x8x8", "10"))
