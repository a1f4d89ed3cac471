"""Shared pieces of the NIR tests: running a neurofl SNN and a framework's network on the same
binary spike trains, and counting differing (neuron, time) bins.

neurofl's SLAYER blocks each delay their output one step (``delay_shift``); the frameworks do not.
So neurofl's output at step t + L (L layers) is compared with the framework's at step t, over the
last T - L steps: every compared bin is one output neuron at one step of one sample.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


def neurofl_spikes(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x (batch, inputs, T) binary -> output spikes (batch, outputs, T) of the model's blocks."""
    with torch.no_grad():
        s = x
        for block in model.blocks:
            s = block(s)
    return s


def stepped_spikes(net: Callable, x: torch.Tensor) -> torch.Tensor:
    """Run a framework's stateful ``net(x_t, state) -> (spikes, state)`` step by step."""
    state, outs = None, []
    with torch.no_grad():
        for t in range(x.shape[-1]):
            out, state = net(x[..., t], state)
            outs.append(out)
    return torch.stack(outs, -1)


def mismatches(ours: torch.Tensor, theirs: torch.Tensor, layers: int) -> tuple[int, int]:
    """(bins that differ, bins compared), ours shifted back by ``layers`` steps."""
    a, b = ours[..., layers:], theirs[..., : theirs.shape[-1] - layers]
    return int((a != b).sum()), a.numel()


@pytest.fixture
def spikes_in() -> torch.Tensor:
    """32 samples of 64 binary inputs over 12 steps, rate 0.3 (seeded)."""
    g = torch.Generator().manual_seed(0)
    return (torch.rand(32, 64, 12, generator=g) < 0.3).float()


@pytest.fixture
def helpers():
    """The helper functions above, for the test modules (importlib mode: conftest is not importable)."""

    class H:
        pass

    h = H()
    h.neurofl_spikes, h.stepped_spikes, h.mismatches = neurofl_spikes, stepped_spikes, mismatches
    return h

