"""A validated NIR graph -> a neurofl SLAYER SNN under a hardware profile, with one note per layer.

neurofl's fully connected SNN (:class:`neurofl.models.snn.SpikingMLP`) is a chain of SLAYER CUBA
Dense blocks sharing one neuron parameter set, without biases, each delaying its output one step.
A graph maps onto it when it is a chain ``Input -> [Flatten] -> (Linear | Affine with zero bias ->
CubaLIF | LIF | IF)+ -> Output``; anything else (a branch, a bias, convolutions, pooling) is refused
with one line. Neurons map by :func:`neurofl.nir_io.neurons.cuba_from_nir`.

Weights land on the profile's grid. When a layer's weights are not on that grid already (a model
trained in float elsewhere), every layer is first scaled so that its threshold becomes one common
threshold chosen to use the weight range best: a layer's spikes are unchanged by scaling its
weights and threshold together (``v`` is linear in the weights), so the only loss is the grid's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from neurofl.errors import UserError
from neurofl.models import Architecture, NeuronParams, build_model
from neurofl.models.checkpoint import MAX_PARAMETERS, MAX_WIDTH
from neurofl.nir_io.neurons import CubaNeuron, cuba_from_nir
from neurofl.nir_io.read import NirGraph
from neurofl.profiles import HardwareProfile

NEURON_TYPES = ("CubaLIF", "LIF", "IF")
WEIGHT_TYPES = ("Linear", "Affine")
MAX_THRESHOLD_MANTISSA = (1 << 17) - 1  # Loihi's vThMant (NetX checks the same bound)


@dataclass(frozen=True)
class Layer:
    """One weight node and the neuron node it feeds.

    weight : (outputs, inputs), in the file's units
    """

    weight_node: str
    neuron_node: str
    neuron_type: str
    weight: np.ndarray
    neuron: CubaNeuron


@dataclass(frozen=True)
class Imported:
    """The built model (eval mode), its architecture, and one note per layer."""

    model: torch.nn.Module
    arch: Architecture
    notes: tuple[str, ...]


def chain(graph: NirGraph) -> list[str]:
    """The node names from Input to Output; refuses anything that is not one unbranched path."""
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    pred: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        succ[a].append(b)
        pred[b].append(a)
    start = next(n for n, node in graph.nodes.items() if node.type == "Input")
    order = [start]
    while graph.nodes[order[-1]].type != "Output":
        here = order[-1]
        if len(succ[here]) != 1:
            raise UserError(
                f"{graph.path}: node {here!r} feeds {len(succ[here])} nodes; neurofl imports one unbranched chain"
            )
        nxt = succ[here][0]
        if len(pred[nxt]) != 1:
            raise UserError(f"{graph.path}: node {nxt!r} has {len(pred[nxt])} inputs; neurofl imports one chain")
        order.append(nxt)
    unused = sorted(set(graph.nodes) - set(order))
    if unused:
        raise UserError(f"{graph.path}: node {unused[0]!r} is not on the path from Input to Output")
    return order


def _width(shape: np.ndarray) -> int:
    """Neurons of an Input/Output shape, a leading batch dimension of 1 ignored."""
    dims = [int(d) for d in np.asarray(shape).reshape(-1)]
    if len(dims) > 1 and dims[0] == 1:
        dims = dims[1:]
    if not dims or any(d < 1 for d in dims):
        return -1
    return math.prod(dims)


def layers(graph: NirGraph, dt: float) -> tuple[int, list[Layer]]:
    """(input width, the layers) of a chain graph, each neuron mapped to CUBA."""
    order = chain(graph)
    width = _width(graph.nodes[order[0]].params["shape"])
    out: list[Layer] = []
    i = 1
    while graph.nodes[order[i]].type == "Flatten" and not out:
        i += 1
    while graph.nodes[order[i]].type != "Output":
        node = graph.nodes[order[i]]
        where = f"{graph.path}: node {node.name!r}"
        if node.type not in WEIGHT_TYPES:
            expected = "Linear or Affine" if node.type not in NEURON_TYPES else "a weight node (Linear/Affine) first"
            hint = " (convolutional graphs: not imported yet)" if node.type in ("Conv2d", "SumPool2d") else ""
            raise UserError(f"{where}: {node.type} where neurofl expects {expected}{hint}")
        w = node.params["weight"]
        if w.ndim != 2 or not 1 <= w.shape[0] <= MAX_WIDTH:
            raise UserError(f"{where}: weight must be (outputs, inputs) with 1..{MAX_WIDTH} outputs, got {w.shape}")
        if w.shape[1] != width:
            raise UserError(f"{where}: weight takes {w.shape[1]} inputs, the layer before gives {width}")
        if node.type == "Affine":
            bias = node.params["bias"].reshape(-1)
            if bias.size not in (1, w.shape[0]):
                raise UserError(f"{where}: bias has {bias.size} values for {w.shape[0]} outputs")
            if np.any(bias != 0):
                raise UserError(f"{where}: bias = {bias[bias != 0][0]:g}; SLAYER synapses have no bias")
        nxt = graph.nodes[order[i + 1]]
        if nxt.type not in NEURON_TYPES:
            raise UserError(f"{graph.path}: node {nxt.name!r}: {nxt.type} after a weight node; expected a spiking "
                            "neuron (CubaLIF, LIF, IF)")  # fmt: skip
        try:
            neuron = cuba_from_nir(nxt.name, nxt.type, nxt.params, w.shape[0], dt)
        except UserError as e:
            raise UserError(f"{graph.path}: {e}") from None
        out.append(Layer(node.name, nxt.name, nxt.type, w.astype(np.float64), neuron))
        width = w.shape[0]
        i += 2
    if not out:
        raise UserError(f"{graph.path}: no weight layer between Input and Output")
    if _width(graph.nodes[order[-1]].params["shape"]) not in (width, -1):
        raise UserError(f"{graph.path}: Output shape disagrees with the last layer's {width} neurons")
    return _width(graph.nodes[order[0]].params["shape"]), out


def _on_grid(w: np.ndarray, profile: HardwareProfile) -> bool:
    if not profile.weights.quantized:
        return True
    step = profile.weight_step
    lo, hi = profile.weight_range
    k = w / step  # float32 files carry ~1e-7 relative error: within 1/1000 of a step is on the grid
    return bool(np.all(np.abs(k - np.round(k)) < 1e-3) and w.min() >= lo - step / 2 and w.max() <= hi + step / 2)


def common_threshold(effective: list[np.ndarray], thresholds: list[float], profile: HardwareProfile,
                     rescale: bool) -> tuple[float, bool]:  # fmt: skip
    """(the one threshold every layer gets, on the profile's grid; whether layers are scaled to it).

    Weights already on the grid with equal thresholds keep theirs (rounded to the threshold grid).
    Otherwise (``rescale``) the largest grid threshold for which every layer's scaled weights stay
    in the weight range; without ``rescale`` all thresholds must already be equal.
    """
    grid = 1.0 / profile.neuron.threshold_scale
    top = MAX_THRESHOLD_MANTISSA * grid
    same = all(t == thresholds[0] for t in thresholds)
    if same and (not rescale or all(_on_grid(w, profile) for w in effective)):
        return float(min(max(round(thresholds[0] / grid) * grid, grid), top)), False
    elif not rescale:
        raise UserError(f"layer thresholds differ ({min(thresholds):g} to {max(thresholds):g}); neurofl's layers "
                        "share one threshold: import with --rescale")  # fmt: skip
    elif profile.weights.quantized:
        w_top = min(-profile.weight_range[0], profile.weight_range[1])
        peaks = [float(np.abs(w).max()) for w in effective]
        theta = min(t * w_top / p if p > 0 else top for t, p in zip(thresholds, peaks, strict=True))
        theta = math.floor(min(theta, top) / grid) * grid
    else:
        theta = thresholds[0]
    if theta < grid:
        raise UserError(f"the weights need a threshold below the {grid:g} grid to fit the weight range; refused")
    return float(min(round(theta / grid) * grid, top)), True


def _weight_note(w: np.ndarray, q: np.ndarray, profile: HardwareProfile) -> str:
    if not profile.weights.quantized:
        return "weights float (unquantized profile)"
    step = profile.weight_step
    err = np.abs(q - w)
    rounded = int((err > 1e-3 * step).sum())
    lo, hi = profile.weight_range
    clipped = int(((w < lo - step / 2) | (w > hi + step / 2)).sum())
    if not rounded:
        return f"weights on the {step:g} grid (exact)"
    text = f"weights: {rounded} of {w.size} rounded to the {step:g} grid (max error {err.max() / step:.2f} step)"
    return text + (f", {clipped} clipped to [{lo:g}, {hi:g}]" if clipped else "")


def check_profile(profile: HardwareProfile) -> None:
    """Refuse a profile whose SNN is not SLAYER's CUBA network (the chip networks of Xylo, Speck,
    Akida, SpiNNaker2, TrueNorth): a NIR graph maps onto SLAYER Dense blocks only.

    Raises
    ------
    UserError
        One line naming the profile and its neuron decay.
    """
    if profile.neuron.decay != "multiplier":
        from neurofl.profiles import shipped_profiles

        fits = [n for n in shipped_profiles() if _slayer(n)]
        raise UserError(
            f"--profile {profile.name}: its SNN is a chip network (neuron.decay = '{profile.neuron.decay}'), "
            f"and NIR graphs import onto SLAYER CUBA networks only (neuron.decay = 'multiplier': {', '.join(fits)})"
        )


def _slayer(name: str) -> bool:
    from neurofl.profiles import load_profile

    return load_profile(name).neuron.decay == "multiplier"


def to_model(graph: NirGraph, profile: HardwareProfile, dt: float, input_shape: tuple[int, ...] | None = None,
             rescale: bool = True) -> Imported:  # fmt: skip
    """Build the SLAYER SNN ``graph`` describes, under ``profile``.

    Parameters
    ----------
    graph : a validated chain graph (:func:`neurofl.nir_io.read.read_nir`)
    profile : the hardware profile whose grids the weights and neurons land on
    dt : the Euler step (seconds) the file's time constants assume
    input_shape : the model's input shape (a dataset's, e.g. (1, 8, 8)); default (inputs,)
    rescale : allow scaling each layer's weights and threshold together (see module doc)

    Raises
    ------
    UserError
        One line: the node, key and value the profile or neurofl's models cannot express.
    """
    check_profile(profile)
    inputs, ls = layers(graph, dt)
    widths = [inputs, *(int(layer.weight.shape[0]) for layer in ls)]
    if input_shape is None:
        input_shape = (inputs,)
    if math.prod(input_shape) != inputs:
        raise UserError(f"{graph.path}: the graph takes {inputs} inputs, the dataset's inputs {input_shape} are "
                        f"{math.prod(input_shape)}")  # fmt: skip
    if sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=False)) > MAX_PARAMETERS:
        raise UserError(f"{graph.path}: more than {MAX_PARAMETERS} weights")
    if widths[-1] < 2:
        raise UserError(f"{graph.path}: the last layer has {widths[-1]} neuron; neurofl's models need >= 2 classes")
    first = ls[0]
    for layer in ls[1:]:
        for key in ("current_decay", "voltage_decay"):
            a, b = getattr(first.neuron, key), getattr(layer.neuron, key)
            if a != b:
                raise UserError(
                    f"{graph.path}: node {layer.neuron_node!r}: {key} {b:g} differs from node "
                    f"{first.neuron_node!r}'s {a:g}; neurofl's layers share one neuron parameter set"
                )
    effective = [layer.weight * layer.neuron.gain[:, None] for layer in ls]
    try:
        theta, rescaled = common_threshold(effective, [layer.neuron.threshold for layer in ls], profile, rescale)
    except UserError as e:
        raise UserError(f"{graph.path}: {e}") from None
    neuron = NeuronParams(threshold=theta, current_decay=first.neuron.current_decay,
                          voltage_decay=first.neuron.voltage_decay)  # fmt: skip
    arch = Architecture(tuple(input_shape), widths[-1], tuple(widths[1:-1]), neuron, 1.0)
    model = build_model("snn", arch, profile, seed=0)
    notes = []
    with torch.no_grad():
        for i, (layer, w) in enumerate(zip(ls, effective, strict=True)):
            scale = theta / layer.neuron.threshold if rescaled else 1.0
            scaled = w * scale
            q = profile.quantize_weight(torch.from_numpy(scaled)).numpy()
            block = model.blocks[i]
            block.synapse.weight.copy_(torch.from_numpy(q).float().reshape(block.synapse.weight.shape))
            parts = [_weight_note(scaled, q, profile)]
            if scale != 1:
                parts.append(f"weights and threshold scaled x{scale:.6g} (threshold {layer.neuron.threshold:g} -> "
                             f"{theta:g}, spikes unchanged)")  # fmt: skip
            elif layer.neuron.threshold != theta:
                parts.append(f"threshold {layer.neuron.threshold:g} -> {theta:g} (1/{profile.neuron.threshold_scale} "
                             "grid)")  # fmt: skip
            parts.extend(layer.neuron.notes)
            parts.append("reset to zero (NIR: subtract threshold)")
            parts.append("output delayed 1 step")
            notes.append(
                f"layer {i + 1} ({layer.weight_node!r} -> {layer.neuron_node!r} {layer.neuron_type}, "
                f"{widths[i]}->{widths[i + 1]}): " + "; ".join(parts)
            )
    model.eval()
    return Imported(model, arch, tuple(notes))
