"""Chip resources and energy of one inference, from the profile's per-core limits and measured spikes.

Mapping model (stated in every figure's ``source``): each layer's neurons are spread over as few
cores as its neuron count, its synaptic memory (fan-in x neurons x weight bits, no index
overhead) and the core limits allow; a dense layer's core needs one input axon per presynaptic
neuron, and each presynaptic neuron needs one output axon per core of the next layer. Synaptic
operations are counted from the spikes (or nonzero graded input values) measured on the inputs
``x``: every event reaches all ``fan_out`` synapses of its target layer. Every compartment updates
once per time step.
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


def _layer_cores(neurons: int, fan_in: int, bits: int, profile: HardwareProfile) -> int:
    r = profile.resources
    if r is None:
        return 1
    mem_bytes = fan_in * neurons * bits / 8
    per_core_mem = r.synapse_memory_kib_per_core * 1024
    # neurons per core limited by compartments and by synaptic memory (each neuron's fan-in stays on its core)
    fit_by_mem = max(1, int(per_core_mem // max(1.0, fan_in * bits / 8)))
    return max(
        math.ceil(neurons / r.neurons_per_core), math.ceil(neurons / fit_by_mem), math.ceil(mem_bytes / per_core_mem)
    )


@torch.no_grad()
def estimate_resources(model: Any, profile: HardwareProfile, x: torch.Tensor | Any, seed: int = 0) -> ResourceReport:
    """Cores, synaptic memory, synaptic operations and energy per inference of an SNN.

    Parameters
    ----------
    model : ``SpikingMLP`` (its blocks' widths and its encoding are used)
    profile : limits and per-operation energies (``profile.resources``)
    x : (N, *input_shape) inputs in [0, 1]; spikes are counted on them (N >= 1)
    seed : rate-code randomness

    Returns
    -------
    ResourceReport; ``problems`` lists every limit the model exceeds (empty when it fits).
    """
    from neurofl.deploy.trace import chunks

    x = torch.as_tensor(x, dtype=torch.float32)
    n = x.shape[0]
    steps = model.time_steps
    # input events of every block, counted chunk by chunk (bounded memory)
    events_in = [0] * len(model.blocks)
    for h in chunks(model, x, seed):
        for i, block in enumerate(model.blocks):
            events_in[i] += int((h != 0).sum())
            h = block(h)
    bits = profile.weights.bits if profile.weights.quantized else 32
    r = profile.resources
    layers = []
    problems = []
    for i, block in enumerate(model.blocks):
        fan_out, fan_in = block.synapse.weight.shape[:2]
        cores = _layer_cores(fan_out, fan_in, bits, profile)
        events = events_in[i] / n
        layers.append(
            LayerResources(
                i, fan_out, fan_in, fan_in * fan_out, cores, fan_in * fan_out * bits // 8, events, events * fan_out
            )
        )
        if r is not None and fan_in > r.input_axons_per_core:
            problems.append(f"layer {i}: fan-in {fan_in} exceeds {r.input_axons_per_core} input axons per core")
    for i in range(len(layers) - 1):
        per_core_neurons = math.ceil(layers[i].neurons / layers[i].cores)
        needed = per_core_neurons * layers[i + 1].cores
        if r is not None and needed > r.output_axons_per_core:
            problems.append(f"layer {i}: {needed} output axons per core exceed {r.output_axons_per_core}")
    cores = sum(layer.cores for layer in layers)
    if r is not None and cores > r.cores:
        problems.append(f"needs {cores} cores, the chip has {r.cores}")
    limits = r.source if r is not None else "profile has no [resources] section"
    synops = sum(layer.synops for layer in layers)
    updates = float(sum(layer.neurons for layer in layers) * steps)
    measured = f"measured: mean over {n} inputs x {steps} time steps"
    energy = None
    if r is not None:
        pj = synops * r.energy_per_synop_pj + updates * r.energy_per_neuron_update_pj
        energy = Figure(
            pj / 1e6,
            "uJ",
            f"synops x {r.energy_per_synop_pj} pJ + neuron updates x {r.energy_per_neuron_update_pj} pJ ({r.source})",
        )
    return ResourceReport(
        profile=profile.name,
        samples=n,
        time_steps=steps,
        layers=tuple(layers),
        cores_used=Figure(cores, "cores", f"per-layer packing under the per-core limits ({limits})"),
        cores_available=Figure(r.cores, "cores", r.source) if r is not None else None,
        synapse_memory=Figure(
            sum(layer.synapse_memory_bytes for layer in layers) / 1024,
            "KiB",
            f"{bits}-bit weights, dense, no index overhead",
        ),
        synops_per_inference=Figure(synops, "synops", f"input events x fan-out per layer, {measured}"),
        neuron_updates_per_inference=Figure(updates, "updates", "every compartment updates once per time step"),
        energy_per_inference=energy,
        problems=tuple(problems),
    )
