"""The float ANN matched to the SNN: same widths, no bias (SLAYER Dense has none), sigmoid."""

from __future__ import annotations

import torch

from neurofl.models.arch import Architecture


class MLP(torch.nn.Module):
    """Fully connected sigmoid network (the activation DLG and iDLG attacked).

    forward: x (batch, *input_shape) -> logits (batch, classes)
    """

    def __init__(self, arch: Architecture):
        super().__init__()
        widths = arch.widths
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b, bias=False) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        with torch.no_grad():
            for layer in self.layers:
                layer.weight.mul_(arch.weight_scale)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        h = x.reshape(x.shape[0], -1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.sigmoid(h)
        return h

    def weight_layers(self) -> list[tuple[str, torch.nn.Module]]:
        """(parameter name, module) of every weighted layer, for per-sample gradients."""
        return [(f"layers.{i}.weight", m) for i, m in enumerate(self.layers)]
