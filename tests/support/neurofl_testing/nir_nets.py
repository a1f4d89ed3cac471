"""Test-only snnTorch networks for the NIR round trips (snnTorch is a dev extra, imported lazily)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch


def snntorch_synaptic_net(init: Callable[[tuple[int, ...]], torch.Tensor], **neuron) -> torch.nn.Module:
    """A 64-16-10 snnTorch network of ``Synaptic`` neurons (alpha 0.75, beta 0.875), its bias-free
    Linear weights set by ``init(shape)``; ``neuron`` overrides the neurons' keywords."""
    import snntorch as snn

    kw = dict(alpha=0.75, beta=0.875, init_hidden=True, **neuron)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 16, bias=False), snn.Synaptic(**kw),
        torch.nn.Linear(16, 10, bias=False), snn.Synaptic(output=True, **kw),
    )  # fmt: skip
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.weight.copy_(init(tuple(m.weight.shape)))
    return net


def write_float_snntorch_nir(path: Path) -> None:
    """The digits-shaped snnTorch network with seeded float weights (rounded on import), reset to zero
    at once, exported to ``path`` by snnTorch's own NIR export."""
    import nir
    from snntorch.export_nir import export_to_nir

    g = torch.Generator().manual_seed(5)
    net = snntorch_synaptic_net(lambda shape: torch.randn(shape, generator=g) * 0.4 + 0.1,
                                reset_mechanism="zero", reset_delay=False)  # fmt: skip
    nir.write(path, export_to_nir(net, torch.zeros(1, 64)))
