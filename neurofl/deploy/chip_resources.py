"""Synaptic events, neuron updates and energy of one inference of a chip network (Xylo, Speck, Akida,
SpiNNaker2, TrueNorth: :class:`neurofl.models.chips.xylo_net.TwoProjectionNetwork`).

The same accounting as :func:`neurofl.deploy.resources.estimate_resources` for SLAYER models, on the
chip network's own events: the input event counts and hidden events of :meth:`run` on the inputs
``x`` (measured), each event driving every nonzero integer weight of its row (the synapses it
reaches; TrueNorth: the effective crossbar weight ``c * s``), and every hidden and output neuron
updating once per time step (counted). Output events drive no synapse (they are the read-out).
Energy is those counts times the profile's published per-operation energies
(:func:`neurofl.deploy.resources.energy_figure`), or ``None`` when a figure is ``"unknown"``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from neurofl.deploy.resources import Figure, energy_figure
from neurofl.profiles import HardwareProfile

CHUNK = 256  # inputs per forward pass (bounded memory)


@dataclass(frozen=True)
class ChipResourceReport:
    """Counts and energy per inference (means over the inputs) of a chip network under ``profile``."""

    profile: str
    samples: int
    time_steps: int
    input_events: Figure
    hidden_events: Figure
    synaptic_events: Figure
    neuron_updates: Figure
    energy_per_inference: Figure | None
    energy_note: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def synaptic_events(
    counts: torch.Tensor, hidden: torch.Tensor, w_in: torch.Tensor, w_out: torch.Tensor
) -> torch.Tensor:
    """Synaptic events of each sample: every input and hidden event reaches the nonzero weights of its row.

    Parameters
    ----------
    counts : (batch, inputs, T) input event counts
    hidden : (batch, hidden, T) hidden event counts
    w_in : (inputs, hidden) integer input weights
    w_out : (hidden, classes) integer read-out weights

    Returns
    -------
    (batch,) float64 synaptic events over the T steps.
    """
    fan_in = (w_in != 0).sum(1).to(torch.float64)  # synapses one input event drives
    fan_hidden = (w_out != 0).sum(1).to(torch.float64)
    return counts.sum(-1).to(torch.float64) @ fan_in + hidden.sum(-1).to(torch.float64) @ fan_hidden


@torch.no_grad()
def estimate_chip_resources(
    model: Any, profile: HardwareProfile, x: torch.Tensor | Any, seed: int = 0
) -> ChipResourceReport:
    """Synaptic events, neuron updates and energy per inference of a chip network.

    Parameters
    ----------
    model : ``TwoProjectionNetwork`` (``XyloNetwork`` or ``ChipNetwork``)
    profile : its ``[resources]`` per-operation energies (pJ), if any
    x : (N, *input_shape) inputs in [0, 1] (N >= 1); the rate code draws from ``seed``
    seed : rate-code randomness

    Returns
    -------
    ChipResourceReport; ``energy_per_inference`` is ``None`` without published per-operation energies.
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    n, steps = x.shape[0], model.time_steps
    w_in, w_out = (w.detach() for w in model.integer_weights())
    gen = torch.Generator().manual_seed(seed)
    inputs = hidden_total = synops = 0.0
    for start in range(0, n, CHUNK):
        counts = model.input_spikes(x[start : start + CHUNK], gen).detach()
        hidden, _ = model.run(counts)
        inputs += float(counts.sum())
        hidden_total += float(hidden.sum())
        synops += float(synaptic_events(counts, hidden, w_in, w_out).sum())
    neurons = int(w_in.shape[1] + w_out.shape[1])
    updates = float(neurons * steps)
    measured = f"measured (mean over {n} inputs x {steps} time steps)"
    energy = energy_figure(synops / n, updates, profile)
    r = profile.resources
    if energy is not None:
        note = "energy = measured synaptic events and counted neuron updates x published per-operation energies"
    elif r is None:
        note = "no energy: the profile has no [resources] section"
    else:
        note = f"no energy: a per-operation energy is not published ({r.source})"
    return ChipResourceReport(
        profile=profile.name,
        samples=n,
        time_steps=steps,
        input_events=Figure(inputs / n, "events", f"{measured}: rate-coded input event counts"),
        hidden_events=Figure(hidden_total / n, "events", f"{measured}: hidden neurons' events"),
        synaptic_events=Figure(
            synops / n,
            "synops",
            f"{measured}: input and hidden events x the nonzero integer weights each drives",
        ),
        neuron_updates=Figure(updates, "updates", f"counted: {neurons} neurons x {steps} time steps"),
        energy_per_inference=energy,
        energy_note=note,
    )
