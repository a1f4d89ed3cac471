"""Convolutional models: a SLAYER conv SNN NetX can import, and its matched LeNet-style ANN.

Both share one :class:`ConvArchitecture`: the same convolutions (channels, kernel, stride,
padding; no bias, as SLAYER synapses have none) followed by one dense read-out. Downsampling
is by strided convolution, not pooling, because NetX does not import ``pool`` layers. The ANN
follows the LeNet that DLG and iDLG attacked (5x5 kernels, 12 channels, strides 2, 2, 1,
sigmoid). Event inputs (C, H, W, T) feed the SNN frame by frame; the ANN sees the T frames as
C*T input channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from lava.lib.dl import slayer

from neurofl.config import bounded
from neurofl.data.encoding import encode
from neurofl.io.atomic import atomic_write
from neurofl.models.arch import NeuronParams
from neurofl.models.cuba import fuse_neurons
from neurofl.models.snn import SlayerNetwork, require_slayer_grids
from neurofl.profiles import HardwareProfile


@dataclass(frozen=True)
class ConvArchitecture:
    """Convolutional topology shared by :class:`ConvSNN` and :class:`ConvANN`.

    ``input_shape`` is (C, H, W) for images or (C, H, W, T) for event frames. ``strides`` has
    one entry per conv layer and sets the number of layers; ``weight_scale`` multiplies
    PyTorch's default initialization (SLAYER's ``weight_scale``).
    """

    input_shape: tuple[int, ...]
    classes: int = field(metadata=bounded(2))
    channels: int = field(default=12, metadata=bounded(1, 4096))
    kernel: int = field(default=5, metadata=bounded(1, 31))
    strides: tuple[int, ...] = (2, 2, 1)
    neuron: NeuronParams = field(default_factory=NeuronParams)
    weight_scale: float = field(default=4.0, metadata=bounded(1e-6, 1e6))

    def __post_init__(self) -> None:
        if len(self.input_shape) not in (3, 4):
            raise ValueError(f"input_shape {self.input_shape}: expected (C, H, W) or (C, H, W, T)")
        if not self.strides or any(s < 1 for s in self.strides):
            raise ValueError(f"strides {self.strides}: need at least one conv layer, strides >= 1")

    @property
    def padding(self) -> int:
        return self.kernel // 2

    @property
    def is_events(self) -> bool:
        return len(self.input_shape) == 4

    def feature_maps(self) -> list[tuple[int, int, int]]:
        """(C, H, W) after each conv layer."""
        _, h, w = self.input_shape[:3]
        out = []
        for s in self.strides:
            h = (h + 2 * self.padding - self.kernel) // s + 1
            w = (w + 2 * self.padding - self.kernel) // s + 1
            if h < 1 or w < 1:
                raise ValueError(f"input {self.input_shape[:3]} is too small for strides {self.strides}")
            out.append((self.channels, h, w))
        return out

    @property
    def features(self) -> int:
        c, h, w = self.feature_maps()[-1]
        return c * h * w


class ConvSNN(SlayerNetwork):
    """CUBA LIF network of ``slayer.block.cuba.Conv`` blocks, a ``Flatten`` and a ``Dense`` read-out.

    Weights pass through the profile's quantizer; each block delays its output one step.

    forward: x (batch, *input_shape) -> logits (batch, classes) = output spike counts.
    Images are encoded over the profile's time steps; event frames bring their own T.
    """

    def __init__(self, arch: ConvArchitecture, profile: HardwareProfile):
        super().__init__()
        require_slayer_grids(profile)
        self.arch = arch
        self.profile = profile
        self.time_steps = arch.input_shape[3] if arch.is_events else profile.simulation.time_steps
        self.encoding = profile.spikes.input_encoding
        common = dict(weight_scale=arch.weight_scale, weight_norm=False, pre_hook_fx=profile.quantize_weight)
        blocks: list[torch.nn.Module] = []
        c_in = arch.input_shape[0]
        for s in arch.strides:
            blocks.append(
                slayer.block.cuba.Conv(
                    arch.neuron.as_slayer(), c_in, arch.channels, arch.kernel,
                    stride=s, padding=arch.padding, delay_shift=True, **common,
                )
            )  # fmt: skip
            c_in = arch.channels
        blocks.append(slayer.block.cuba.Flatten())
        blocks.append(
            slayer.block.cuba.Dense(arch.neuron.as_slayer(), arch.features, arch.classes, delay_shift=True, **common)
        )
        self.blocks = torch.nn.ModuleList(blocks)
        fuse_neurons(self.blocks, arch.neuron.as_slayer(), **arch.neuron.fused_options())
        if not arch.is_events:  # event frames are binary spikes already
            self.floor_graded_input(profile)

    def input_steps(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """x: (batch, *input_shape) -> (batch, C, H, W, T or 1); graded input on the chip's payload grid."""
        if self.arch.is_events:
            return x
        c, h, w = self.arch.input_shape
        s = self.graded_payload(encode(x, self.encoding, self.encoded_steps, generator))
        return s.reshape(x.shape[0], c, h, w, s.shape[-1])

    def export_hdf5(self, path: Path) -> None:
        """Write the network as a NetX HDF5 file (an ``input`` layer, then each block), atomically."""
        import h5py

        path = Path(path)
        c, h, w = self.arch.input_shape[:3]
        with torch.no_grad():  # SLAYER's Flatten learns its shape on the first forward pass
            self.spikes(torch.zeros(1, *self.arch.input_shape))
        def write(tmp: Path) -> None:
            with h5py.File(tmp, "w") as f:
                layers = f.create_group("layer")
                inp = layers.create_group("0")
                inp.create_dataset("type", (1,), "S10", [b"input"])
                inp.create_dataset("shape", data=[c, h, w])  # NetX reads it reversed: (x, y, f)
                for i, block in enumerate(self.blocks):
                    block.export_hdf5(layers.create_group(str(i + 1)))

        atomic_write(path, write)


class ConvANN(torch.nn.Module):
    """LeNet-style float network: the SNN's convolutions with sigmoids, then a linear read-out.

    forward: x (batch, *input_shape) -> logits (batch, classes)
    """

    def __init__(self, arch: ConvArchitecture):
        super().__init__()
        self.arch = arch
        c_in = arch.input_shape[0] * (arch.input_shape[3] if arch.is_events else 1)
        convs = []
        for s in arch.strides:
            convs.append(torch.nn.Conv2d(c_in, arch.channels, arch.kernel, stride=s, padding=arch.padding, bias=False))
            c_in = arch.channels
        self.convs = torch.nn.ModuleList(convs)
        self.fc = torch.nn.Linear(arch.features, arch.classes, bias=False)
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(arch.weight_scale)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.arch.is_events:  # (n, C, H, W, T) -> (n, C*T, H, W)
            n, c, h, w, t = x.shape
            x = x.permute(0, 1, 4, 2, 3).reshape(n, c * t, h, w)
        for conv in self.convs:
            x = torch.sigmoid(conv(x))
        return self.fc(x.flatten(1))

    def weight_layers(self) -> list[tuple[str, torch.nn.Module]]:
        """(parameter name, module) of every weighted layer, for per-sample gradients."""
        return [*((f"convs.{i}.weight", m) for i, m in enumerate(self.convs)), ("fc.weight", self.fc)]
