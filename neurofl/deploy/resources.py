"""Chip resources and energy of one inference, from the profile's per-core limits and measured spikes.

Mapping model (stated in every figure's ``source``): each layer's neurons are spread over as few
cores as its neuron count, its synaptic memory (fan-in x neurons x weight bits, no index
overhead) and the core limits allow; a dense layer's core needs one input axon per presynaptic
neuron, and each presynaptic neuron needs one output axon per core of the next layer. Synaptic
operations are counted from the spikes (or nonzero graded input values) measured on the inputs
``x``: every event reaches all ``fan_out`` synapses of its target layer. Every compartment updates
once per time step.

Conv layers (``ConvSNN``) are mapped the same way, conservatively: every neuron keeps its own copy
of its ``C_in x k x k`` kernel weights (no weight sharing), and every core of a conv layer receives
the whole input map on its axons (no spatial partitioning). Their synaptic operations are exact:
each input event reaches the synapses of the output neurons whose receptive field holds it
(zero padding and stride included).

Every figure's ``source`` starts with how it was obtained: ``measured`` (counted on the inputs ``x``:
synaptic operations), ``counted`` (from the topology: neuron updates), ``derived`` (the mapping model
above applied to the profile's published per-core limits: cores, synaptic memory) or ``measured x
published`` (energy: measured operations times the profile's published per-operation energies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from neurofl.profiles import HardwareProfile


@dataclass(frozen=True)
class Figure:
    """A number with its unit and where it comes from."""

    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class LayerResources:
    """One dense layer on the chip. ``events_in`` and ``synops`` are means per inference."""

    index: int
    neurons: int
    fan_in: int
    synapses: int
    cores: int
    synapse_memory_bytes: int
    events_in: float
    synops: float


@dataclass(frozen=True)
class ResourceReport:
    """Resources of the model under ``profile``; energy figures are ``None`` without ``[resources]``."""

    profile: str
    samples: int
    time_steps: int
    layers: tuple[LayerResources, ...]
    cores_used: Figure
    cores_available: Figure | None
    synapse_memory: Figure
    synops_per_inference: Figure
    neuron_updates_per_inference: Figure
    energy_per_inference: Figure | None
    problems: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        import dataclasses

        return dataclasses.asdict(self)


def energy_figure(synops: float, updates: float, profile: HardwareProfile) -> Figure | None:
    """Energy of one inference: measured synaptic operations and counted neuron updates times the
    profile's published per-operation energies.

    Parameters
    ----------
    synops : synaptic operations per inference (mean)
    updates : neuron updates per inference
    profile : its ``[resources]`` energies, in pJ per operation

    Returns
    -------
    ``Figure`` in uJ, or ``None`` when the profile has no ``[resources]`` or an energy is ``"unknown"``
    (no figure rather than a zero).
    """
    r = profile.resources
    # `not r.energy_known`, spelled out so that the two energies are known to be numbers below
    if r is None or r.energy_per_synop_pj is None or r.energy_per_neuron_update_pj is None:
        return None
    pj = synops * r.energy_per_synop_pj + updates * r.energy_per_neuron_update_pj
    return Figure(
        pj / 1e6,
        "uJ",
        f"measured x published: synops x {r.energy_per_synop_pj} pJ + neuron updates x "
        f"{r.energy_per_neuron_update_pj} pJ ({r.source})",
    )


def _per_core(limit: int | None) -> int:
    """A per-core limit of the SLAYER mapping: a profile without ``[chip]`` (a SLAYER model's) gives
    every one (:class:`~neurofl.profiles.HardwareProfile` refuses it otherwise)."""
    assert limit is not None, "a SLAYER model's profile gives every per-core limit"
    return limit


def _layer_cores(neurons: int, fan_in: int, bits: int, profile: HardwareProfile) -> int:
    r = profile.resources
    if r is None:
        return 1
    mem_bytes = fan_in * neurons * bits / 8
    per_core_mem = _per_core(r.synapse_memory_kib_per_core) * 1024
    # neurons per core limited by compartments and by synaptic memory (each neuron's fan-in stays on its core)
    fit_by_mem = max(1, int(per_core_mem // max(1.0, fan_in * bits / 8)))
    by_neurons = math.ceil(neurons / _per_core(r.neurons_per_core))
    return max(by_neurons, math.ceil(neurons / fit_by_mem), math.ceil(mem_bytes / per_core_mem))


def _synops(block: Any, h: torch.Tensor) -> float:
    """Synaptic operations of ``block`` on its input ``h``: events x fan-out for dense synapses; for
    conv synapses each event counts the output neurons whose receptive field holds it."""
    w = block.synapse.weight
    events = (h != 0).to(torch.float32)
    if w.dim() == 5 and h.dim() == 5:
        syn = block.synapse
        ones = torch.ones(w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        fired = events.sum(-1)  # (N, C, H, W): event counts over time
        out = torch.nn.functional.conv2d(fired, ones, stride=syn.stride[:2], padding=syn.padding[:2])
        return float(out.sum())
    return float(events.sum()) * int(w.shape[0])


@torch.no_grad()
def estimate_resources(model: Any, profile: HardwareProfile, x: torch.Tensor | Any, seed: int = 0) -> ResourceReport:
    """Cores, synaptic memory, synaptic operations and energy per inference of an SNN.

    Parameters
    ----------
    model : ``SpikingMLP`` or ``ConvSNN`` (its blocks' shapes and its encoding are used)
    profile : limits and per-operation energies (``profile.resources``)
    x : (N, *input_shape) inputs in [0, 1]; spikes are counted on them (N >= 1)
    seed : rate-code randomness

    Returns
    -------
    ResourceReport; ``problems`` lists every limit the model exceeds (empty when it fits).
    """
    from neurofl.deploy.trace import block_input, chunks, layer_sizes, weighted

    x = torch.as_tensor(x, dtype=torch.float32)
    n = x.shape[0]
    steps = model.time_steps
    blocks = [b for _, b in weighted(model)]
    sizes = layer_sizes(model)
    # input events and synaptic operations of every weighted block, chunk by chunk (bounded memory)
    events_in = [0] * len(blocks)
    synops_in = [0.0] * len(blocks)
    for h in chunks(model, x, seed):
        h = block_input(model, h)
        k = 0
        for block in model.blocks:
            if hasattr(block, "synapse"):
                events_in[k] += int((h != 0).sum())
                synops_in[k] += _synops(block, h)
                k += 1
            h = block(h)
    bits = profile.weights.bits if profile.weights.quantized else 32
    r = profile.resources
    layers = []
    problems = []
    for i, block in enumerate(blocks):
        w = block.synapse.weight
        neurons, inputs = sizes[i + 1], sizes[i]
        fan_in = int(w.shape[1] * (w[0, 0].numel()))  # synapses per neuron: C_in x k x k for conv
        conv = w.dim() == 5 and w[0, 0].numel() > 1
        axons = inputs  # dense: every input; conv: the whole input map reaches every core
        cores = _layer_cores(neurons, fan_in, bits, profile)
        events = events_in[i] / n
        layers.append(
            LayerResources(
                i, neurons, fan_in, fan_in * neurons, cores, fan_in * neurons * bits // 8, events, synops_in[i] / n
            )
        )
        if r is not None and axons > _per_core(r.input_axons_per_core):
            what = f"fan-in {axons}" if not conv else f"conv input map of {axons} neurons"
            problems.append(f"layer {i}: {what} exceeds {r.input_axons_per_core} input axons per core")
    for i in range(len(layers) - 1):
        per_core_neurons = math.ceil(layers[i].neurons / layers[i].cores)
        needed = per_core_neurons * layers[i + 1].cores
        if r is not None and needed > _per_core(r.output_axons_per_core):
            problems.append(f"layer {i}: {needed} output axons per core exceed {r.output_axons_per_core}")
    cores = sum(layer.cores for layer in layers)
    if r is not None and cores > _per_core(r.cores):
        problems.append(f"needs {cores} cores, the chip has {r.cores}")
    limits = r.source if r is not None else "profile has no [resources] section"
    synops = sum(layer.synops for layer in layers)
    updates = float(sum(layer.neurons for layer in layers) * steps)
    measured = f"measured (mean over {n} inputs x {steps} time steps)"
    energy = energy_figure(synops, updates, profile)
    return ResourceReport(
        profile=profile.name,
        samples=n,
        time_steps=steps,
        layers=tuple(layers),
        cores_used=Figure(cores, "cores", f"derived: per-layer packing under the per-core limits ({limits})"),
        cores_available=Figure(_per_core(r.cores), "cores", r.source) if r is not None else None,
        synapse_memory=Figure(
            sum(layer.synapse_memory_bytes for layer in layers) / 1024,
            "KiB",
            f"derived: {bits}-bit weights, dense (conv: one kernel copy per neuron), no index overhead",
        ),
        synops_per_inference=Figure(
            synops,
            "synops",
            f"{measured}: input events x fan-out per layer (conv: the output neurons whose receptive field "
            "holds the event)",
        ),
        neuron_updates_per_inference=Figure(
            updates, "updates", "counted: every compartment updates once per time step"
        ),
        energy_per_inference=energy,
        problems=tuple(problems),
    )
