"""SLAYER spiking networks (lava-dl CUBA Dense blocks) constrained by a hardware profile."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from lava.lib.dl import slayer

from neurofl.data.encoding import encode
from neurofl.errors import UserError
from neurofl.models.arch import Architecture
from neurofl.models.cuba import fuse_neurons, over_steps, run_block
from neurofl.profiles import HardwareProfile

# SLAYER's CUBA neuron is hard-wired to Loihi's grids; a profile must agree with them.
SLAYER_DECAY_BITS = 12
SLAYER_THRESHOLD_SCALE = 64
_EVERY_INPUT_STEP: ContextVar[bool] = ContextVar("every_input_step", default=False)


@contextmanager
def every_input_step() -> Iterator[None]:
    """Within this block a direct input is encoded over all T steps and the first synapse runs on
    every one, as before the one-step path (:attr:`SlayerNetwork.encoded_steps`): the reference that
    path is held equal to, and the per-step view of the first layer (its output gradient per step).

    >>> from neurofl.models import Architecture, build_model
    >>> from neurofl.profiles import load_profile
    >>> model = build_model("snn", Architecture((1, 8, 8), 10), load_profile("loihi2"), seed=0)
    >>> x = torch.rand(2, 1, 8, 8)
    >>> with every_input_step():
    ...     model.input_steps(x, None).shape[-1]
    16
    >>> model.input_steps(x, None).shape[-1]
    1
    """
    token = _EVERY_INPUT_STEP.set(True)
    try:
        yield
    finally:
        _EVERY_INPUT_STEP.reset(token)


# A graded input value x reaches the chip as the integer spike payload round(x * 2**6): 6 fraction
# bits (NetX's default spike_exp). neurofl.deploy.export records it in every exported file.
GRADED_INPUT_FRAC_BITS = 6


def require_slayer_grids(profile: HardwareProfile) -> None:
    """SLAYER's CUBA neuron is hard-wired to Loihi's decay and threshold grids; refuse other profiles."""
    if profile.neuron.decay_bits != SLAYER_DECAY_BITS or profile.neuron.threshold_scale != SLAYER_THRESHOLD_SCALE:
        raise UserError(
            f"profile '{profile.name}': SLAYER CUBA neurons need neuron.decay_bits = {SLAYER_DECAY_BITS} "
            f"and neuron.threshold_scale = {SLAYER_THRESHOLD_SCALE}"
        )


class FloorGradedInputCurrent:
    """Forward hook: on the chip a graded input payload meets integer weight mantissas and the sum
    is shifted right by 6 bits, so the first layer's input current is floored to whole weight units
    (``1 / weights.scale`` in SLAYER units: 1/64 for Loihi). Straight-through gradient. Without it
    Lava and SLAYER disagree on ~0.4% of spikes.

    Parameters
    ----------
    scale : int
        The profile's ``weights.scale`` (weight mantissas per SLAYER unit).
    """

    def __init__(self, scale: int):
        self.scale = scale

    def __call__(self, module: torch.nn.Module, inputs: tuple, z: torch.Tensor) -> torch.Tensor:
        return z + (torch.floor(z * self.scale) / self.scale - z).detach()


def on_payload_grid(s: torch.Tensor, frac_bits: int = GRADED_INPUT_FRAC_BITS) -> torch.Tensor:
    """Graded input values as the chip receives them: rounded to the nearest multiple of
    ``2**-frac_bits`` (the integer payload ``round(x * 2**frac_bits)``; ties to even), with a
    straight-through gradient. Values already on the grid (digits' k/16) pass unchanged, bit for bit.

    s : any shape, SLAYER units -> same shape
    """
    scale = float(1 << frac_bits)
    return s + (torch.round(s * scale) / scale - s).detach()


class SlayerNetwork(torch.nn.Module):
    """A stack of SLAYER blocks run on encoded inputs; subclasses build ``blocks`` and say how an
    input becomes the first block's spike (or graded) trains.

    forward: x (batch, *input_shape) -> logits (batch, classes) = output spike counts over T steps.
    """

    blocks: torch.nn.ModuleList
    # set by floor_graded_input: graded inputs are put on the chip's payload grid (see on_payload_grid)
    graded_payload_grid: bool = False

    time_steps: int

    def input_steps(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """x: (batch, *input_shape) -> the first block's input over its distinct time steps:
        (..., T), or (..., 1) where the encoding gives every step the same input (``direct``)."""
        raise NotImplementedError

    def input_spikes(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """x: (batch, *input_shape) -> the first block's input (..., T)."""
        return over_steps(self.input_steps(x, generator), self.time_steps)

    def floor_graded_input(self, profile: HardwareProfile) -> None:
        """Use the chip's arithmetic for graded inputs when weights are quantized and the input is
        direct: the input is put on the payload grid (:func:`on_payload_grid`, in ``input_spikes``)
        and the first block's current floored to the profile's weight units
        (:class:`FloorGradedInputCurrent`)."""
        if profile.weights.quantized and profile.spikes.input_encoding == "direct":
            self.graded_payload_grid = True
            self.blocks[0].synapse.register_forward_hook(FloorGradedInputCurrent(profile.weights.scale))

    @property
    def encoded_steps(self) -> int:
        """Distinct time steps of the encoded input: 1 for the ``direct`` encoding (the same
        current every step; T under :func:`every_input_step`), else T."""
        return 1 if self.encoding == "direct" and not _EVERY_INPUT_STEP.get() else self.time_steps

    def graded_payload(self, s: torch.Tensor) -> torch.Tensor:
        """Encoded input ``s`` as the chip receives it: on the payload grid when the model uses the
        chip's graded-input arithmetic (see :meth:`floor_graded_input`), else unchanged."""
        return on_payload_grid(s) if self.graded_payload_grid else s

    def spikes(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Output spike trains. x: (batch, *input_shape) -> (batch, classes, T).

        An input the same at every step passes the first synapse once, as one step, and its
        current is repeated over T (:func:`~neurofl.models.cuba.run_block`): the same currents,
        a T-th of that layer's work, and its weight gradient is one contraction with the step's
        summed gradient."""
        s = self.input_steps(x, generator)
        for block in self.blocks:
            s = run_block(block, s, self.time_steps)
        return s

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.spikes(x, generator).sum(-1)

    def weight_layers(self) -> list[tuple[str, torch.nn.Module]]:
        """(parameter name, synapse module) of every weighted block, for per-sample gradients."""
        return [(f"blocks.{i}.synapse.weight", b.synapse) for i, b in enumerate(self.blocks) if hasattr(b, "synapse")]


class SpikingMLP(SlayerNetwork):
    """CUBA LIF network of ``slayer.block.cuba.Dense`` blocks.

    Weights pass through the profile's quantizer (a straight-through pre-hook); each block
    delays its output by one step (``delay_shift``), as Lava's Dense does. The neurons are
    :class:`neurofl.models.cuba.FusedCubaNeuron` (SLAYER's arithmetic, fewer operations).

    forward: x (batch, *input_shape) -> logits (batch, classes) = output spike counts over T steps.
    """

    def __init__(self, arch: Architecture, profile: HardwareProfile):
        super().__init__()
        require_slayer_grids(profile)
        self.arch = arch
        self.profile = profile
        self.time_steps = profile.simulation.time_steps
        self.encoding = profile.spikes.input_encoding
        widths = arch.widths
        self.blocks = torch.nn.ModuleList(
            slayer.block.cuba.Dense(
                arch.neuron.as_slayer(),
                a,
                b,
                weight_scale=arch.weight_scale,
                weight_norm=False,
                pre_hook_fx=profile.quantize_weight,
                delay_shift=True,
            )
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        fuse_neurons(self.blocks, arch.neuron.as_slayer(), **arch.neuron.fused_options())
        self.floor_graded_input(profile)

    def input_steps(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """x: (batch, *input_shape) -> (batch, inputs, T or 1); graded input on the chip's payload grid."""
        return self.graded_payload(encode(x, self.encoding, self.encoded_steps, generator))
