"""Run a SLAYER ``SpikingMLP`` layer by layer and keep what deployment checks need: the encoded
input, every block's output spikes, and the range of every block's integer states."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from neurofl.data.encoding import encode
from neurofl.limits import samples_per_chunk

# Lava's bit-accurate LIF keeps current u and voltage v in 24-bit signed registers.
STATE_BITS_LAVA = 24
# SLAYER's CUBA neuron integrates states in units of 1/(64 * 64) (its ``s_scale``).
SLAYER_STATE_SCALE = 1 << 12


@dataclass(frozen=True)
class Trace:
    """Spikes through the network.

    inputs : (N, in, T) the encoded input (graded values for ``direct``, 0/1 for ``rate``)
    layers : per block, (N, out_l, T) output spikes (0/1), already shifted by SLAYER's ``delay_shift``
    """

    inputs: torch.Tensor
    layers: tuple[torch.Tensor, ...]


def encoded_input(
    model: Any, x: torch.Tensor, seed: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The spike trains the model sees for ``x`` (N, *input_shape): (N, in, T); ``seed`` fixes a rate code
    (or ``generator``, continued from earlier chunks: chunk by chunk the draws are those of one call)."""
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    s = encode(x, model.encoding, model.time_steps, gen).detach()
    # the rate code's straight-through sum p + (spike - p) can miss 0/1 by an ulp; chips see clean spikes
    return s.round() if model.encoding == "rate" else s


@torch.no_grad()
def trace(model: Any, x: torch.Tensor | None, seed: int = 0, inputs: torch.Tensor | None = None) -> Trace:
    """Forward ``x`` (N, *input_shape), or already encoded ``inputs`` (N, in, T), keeping every layer's spikes."""
    s = encoded_input(model, x, seed) if inputs is None else inputs
    outs = []
    h = s
    for block in model.blocks:
        h = block(h)
        outs.append(h)
    return Trace(s, tuple(outs))


def neurons(model: Any) -> int:
    """Neurons of one sample at one time step: the input and every block's outputs."""
    return int(sum(b.synapse.weight.shape[1] + b.synapse.weight.shape[0] for b in model.blocks))


def chunks(model: Any, x: torch.Tensor, seed: int) -> Iterator[torch.Tensor]:
    """The encoded input of ``x`` (N, *input_shape), chunk by chunk, each (n, in, T) with
    ``n * neurons * T`` within :data:`neurofl.limits.ACTIVATION_BUDGET`; one generator runs through
    all chunks, so together they are exactly ``encoded_input(model, x, seed)``."""
    gen = torch.Generator().manual_seed(seed)
    step = samples_per_chunk(neurons(model), model.time_steps)
    for i in range(0, x.shape[0], step):
        yield encoded_input(model, x[i : i + step], seed, gen)


@torch.no_grad()
def state_ranges(model: Any, x: torch.Tensor, seed: int = 0) -> list[tuple[int, int]]:
    """Per block, the largest |current| and |voltage| reached on ``x``, in hardware integer units
    (the units of Lava's 24-bit ``u`` and ``v``); computed in bounded chunks of samples."""
    out = [(0, 0)] * len(model.blocks)
    for h in chunks(model, x, seed):
        for i, block in enumerate(model.blocks):
            z = block.synapse(h)
            current, voltage = block.neuron.dynamics(z)
            cur = int(round(float(current.abs().max()) * SLAYER_STATE_SCALE))
            volt = int(round(float(voltage.abs().max()) * SLAYER_STATE_SCALE))
            out[i] = (max(out[i][0], cur), max(out[i][1], volt))
            h = block(h)
    return out
