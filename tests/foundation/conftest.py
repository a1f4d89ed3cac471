"""Shared fixtures for the foundation tests."""

from __future__ import annotations

import dataclasses

import pytest

from neurofl.attacks import load_recipe


@pytest.fixture
def theory_recipe():
    """Inverting Gradients without the image prior: the setting where theory predicts exact recovery."""
    return dataclasses.replace(load_recipe("inverting_gradients_plain"), tv_weight=0.0, iterations=600)
