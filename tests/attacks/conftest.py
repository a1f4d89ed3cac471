"""Shared helpers for the attack tests: embedded digits, tiny models, PSNR."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from neurofl.attacks import AttackRecipe, load_recipe


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR in dB (data range 1), computed inline as an independent reference."""
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-20)
    return 10 * torch.log10(1 / mse)


def recipe(name: str, **changes) -> AttackRecipe:
    return dataclasses.replace(load_recipe(name), **changes)


class LinearWithBias(torch.nn.Module):
    """One fully connected layer with bias: the case the analytic readout solves exactly."""

    def __init__(self, inputs: int, classes: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.layer = torch.nn.Linear(inputs, classes)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.layer(x.reshape(x.shape[0], -1))

    def weight_layers(self) -> list[tuple[str, torch.nn.Module]]:
        return [("layer.weight", self.layer)]


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 64 embedded digits: x (64, 1, 8, 8) in [0, 1], y (64,)."""
    from neurofl.data.embedded import load_digits

    d = load_digits()
    return torch.from_numpy(d.x[:64]), torch.from_numpy(d.y[:64])


@pytest.fixture(scope="session")
def h():
    """The helpers above (pytest's importlib mode cannot import conftest by name)."""
    import types

    return types.SimpleNamespace(psnr=psnr, recipe=recipe, LinearWithBias=LinearWithBias)
