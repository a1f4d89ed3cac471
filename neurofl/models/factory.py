"""One place that turns (architecture, kind, profile) into a model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from neurofl.models.arch import Architecture, ModelKind, NeuronParams
from neurofl.profiles import HardwareProfile

if TYPE_CHECKING:  # models/conv.py imports lava-dl (slow): at run time it is imported in build_model
    from neurofl.models.conv import ConvArchitecture

__all__ = ["Architecture", "ModelKind", "NeuronParams", "build_model"]


def build_model(
    kind: ModelKind, arch: Architecture | ConvArchitecture, profile: HardwareProfile, seed: int
) -> torch.nn.Module:
    """Build a freshly initialized model; the same ``seed`` gives the same weights.

    ``arch`` is an :class:`Architecture` (fully connected) or a
    :class:`neurofl.models.conv.ConvArchitecture`. The ANN is always float (it is the
    reference); the SNN follows ``profile``: SLAYER CUBA blocks, under a shift-decay profile
    (``neuron.decay = "shift"``, SynSense Xylo) a :class:`neurofl.models.chips.xylo_net.XyloNetwork`, and under
    ``none``, ``linear`` or ``exponential`` decay (Speck, Akida, TrueNorth, SpiNNaker2) a
    :class:`neurofl.models.chips.net.ChipNetwork`.
    """
    from neurofl.models.ann import MLP
    from neurofl.models.conv import ConvANN, ConvArchitecture, ConvSNN
    from neurofl.models.snn import SpikingMLP

    torch.manual_seed(seed)
    if kind == "snn" and profile.neuron.decay != "multiplier":
        from neurofl.errors import UserError
        from neurofl.models.chips.net import ChipNetwork
        from neurofl.models.chips.xylo_net import XyloNetwork

        if isinstance(arch, ConvArchitecture):
            raise UserError(f"profile '{profile.name}': this chip network is fully connected; --arch conv does not map")
        return XyloNetwork(arch, profile) if profile.neuron.decay == "shift" else ChipNetwork(arch, profile)
    if kind == "snn":
        return ConvSNN(arch, profile) if isinstance(arch, ConvArchitecture) else SpikingMLP(arch, profile)
    if kind == "ann":
        return ConvANN(arch) if isinstance(arch, ConvArchitecture) else MLP(arch)
    raise ValueError(f"unknown model kind {kind!r}")
