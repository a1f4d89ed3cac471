"""Run a SLAYER ``SpikingMLP`` or ``ConvSNN`` layer by layer and keep what deployment checks need:
the encoded input, every block's output spikes, and the range of every block's integer states.

Encoded inputs are handled flat, (N, in, T) with ``in`` the input's C*H*W in SLAYER's (C, H, W)
order; :func:`block_input` gives them the shape the first block takes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from neurofl.io.limits import samples_per_chunk

# Lava's bit-accurate LIF keeps current u and voltage v in 24-bit signed registers.
STATE_BITS_LAVA = 24
# SLAYER's CUBA neuron integrates states in units of 1/(64 * 64) (its ``s_scale``).
SLAYER_STATE_SCALE = 1 << 12


@dataclass(frozen=True)
class Trace:
    """Spikes through the network.

    inputs : (N, in, T) the encoded input (graded values for ``direct``, 0/1 for ``rate``)
    layers : per weighted block (``Flatten`` blocks are skipped), (N, out_l, T) output spikes (0/1),
        flattened in (C, H, W) order for conv blocks, already shifted by SLAYER's ``delay_shift``
    """

    inputs: torch.Tensor
    layers: tuple[torch.Tensor, ...]


def encoded_input(
    model: Any, x: torch.Tensor, seed: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The spike trains the model sees for ``x`` (N, *input_shape): (N, in, T); ``seed`` fixes a rate code
    (or ``generator``, continued from earlier chunks: chunk by chunk the draws are those of one call)."""
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    # the model's own encoding (ConvSNN: images encoded, event frames passed through; graded input on
    # the chip's payload grid), flattened to (N, in, T)
    s = model.input_spikes(x, gen).detach()
    s = s.reshape(s.shape[0], -1, s.shape[-1])
    # the rate code's straight-through sum p + (spike - p) can miss 0/1 by an ulp; chips see clean spikes
    return s.round() if model.encoding == "rate" else s


def block_input(model: Any, s: torch.Tensor) -> torch.Tensor:
    """Flat encoded inputs (N, in, T) in the shape the first block takes: unchanged for an MLP,
    (N, C, H, W, T) for a conv SNN."""
    if hasattr(model.arch, "strides"):
        return s.reshape(s.shape[0], *model.arch.input_shape[:3], s.shape[-1])
    return s


def weighted(model: Any) -> list[tuple[int, Any]]:
    """(block index, block) of every block with a synapse (``Flatten`` has none)."""
    return [(i, b) for i, b in enumerate(model.blocks) if hasattr(b, "synapse")]


@torch.no_grad()
def trace(model: Any, x: torch.Tensor | None, seed: int = 0, inputs: torch.Tensor | None = None) -> Trace:
    """Forward ``x`` (N, *input_shape), or already encoded ``inputs`` (N, in, T), keeping every layer's spikes."""
    if inputs is None:
        assert x is not None, "trace needs x or the encoded inputs"
        s = encoded_input(model, x, seed)
    else:
        s = inputs
    outs = []
    h = block_input(model, s)
    for block in model.blocks:
        h = block(h)
        if hasattr(block, "synapse"):
            outs.append(h.reshape(h.shape[0], -1, h.shape[-1]))
    return Trace(s, tuple(outs))


def arch_widths(arch: Any) -> tuple[int, ...]:
    """Neurons of the input and of every weighted layer of ``arch`` (an MLP's ``widths``; for a conv
    architecture C*H*W of the input and of every feature map, then the classes)."""
    if hasattr(arch, "strides"):
        c, h, w = arch.input_shape[:3]
        return (int(c * h * w), *(int(c * h * w) for c, h, w in arch.feature_maps()), int(arch.classes))
    return tuple(int(v) for v in arch.widths)


def layer_sizes(model: Any) -> list[int]:
    """Neurons of the input and of every weighted block's output, per sample and time step."""
    return list(arch_widths(model.arch))


def neurons(model: Any) -> int:
    """Neurons of one sample at one time step: the input and every block's outputs."""
    sizes = layer_sizes(model)
    return int(sum(sizes[:-1]) + sum(sizes[1:]))


def chunks(model: Any, x: torch.Tensor, seed: int) -> Iterator[torch.Tensor]:
    """The encoded input of ``x`` (N, *input_shape), chunk by chunk, each (n, in, T) with
    ``n * neurons * T`` within :data:`neurofl.io.limits.ACTIVATION_BUDGET`; one generator runs through
    all chunks, so together they are exactly ``encoded_input(model, x, seed)``."""
    gen = torch.Generator().manual_seed(seed)
    step = samples_per_chunk(neurons(model), model.time_steps)
    for i in range(0, x.shape[0], step):
        yield encoded_input(model, x[i : i + step], seed, gen)


@torch.no_grad()
def state_ranges(model: Any, x: torch.Tensor, seed: int = 0) -> list[tuple[int, int]]:
    """Per weighted block, the largest |current| and |voltage| reached on ``x``, in hardware integer units
    (the units of Lava's 24-bit ``u`` and ``v``); computed in bounded chunks of samples."""
    blocks = weighted(model)
    out = [(0, 0)] * len(blocks)
    for h in chunks(model, x, seed):
        h = block_input(model, h)
        k = 0
        for block in model.blocks:
            if hasattr(block, "synapse"):
                z = block.synapse(h)
                current, voltage = block.neuron.dynamics(z)
                cur = int(round(float(current.abs().max()) * SLAYER_STATE_SCALE))
                volt = int(round(float(voltage.abs().max()) * SLAYER_STATE_SCALE))
                out[k] = (max(out[k][0], cur), max(out[k][1], volt))
                k += 1
            h = block(h)
    return out
