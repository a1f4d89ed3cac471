"""The adaptive attacker: it knows the device's profile and differentiates through its quantizers."""

from __future__ import annotations

from collections.abc import Callable

import torch

from neurofl.profiles import HardwareProfile, quantize_update

Transform = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def update_quantizer(profile: HardwareProfile) -> Transform:
    """The candidate-gradient transform of an adaptive attacker: quantize each tensor per victim
    exactly as the device uploads it (``profile.update``), with a straight-through gradient.

    The weight quantizer needs no transform: the attacker's model already applies it (the SNN's
    pre-hook). Stochastic rounding is replaced by rounding to nearest (its expectation).
    """
    fmt = profile.update
    if fmt.format == "int" and fmt.rounding == "stochastic":
        from dataclasses import replace

        fmt = replace(fmt, rounding="nearest")

    def transform(grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: quantize_update(v, fmt) for k, v in grads.items()}

    return transform
