"""A neurofl SLAYER SNN -> a NIR graph (and ``.nir`` file) that snnTorch and Norse read.

Each Dense block becomes an ``Affine`` node (its weights as the chip uses them, i.e. after the
profile's quantizer; a zero bias, because snnTorch 0.9.4 imports ``Affine`` but not ``Linear``)
and a ``CubaLIF`` node (:func:`neurofl.nir_io.neurons.nir_from_cuba`: unit gains, ``tau = dt /
decay``). Two things NIR cannot say are left out and documented (docs/nir.md): the one-step
output delay of each block (``delay_shift``; the frameworks' output at step t is neurofl's at
t + layers) and the reset to zero (NIR's nominal reset subtracts; snnTorch's and Norse's importers
reset to zero, as the chip does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neurofl.errors import UserError
from neurofl.io.atomic import atomic_write
from neurofl.nir_io.neurons import DECAY_STEPS, nir_from_cuba

# The step written into the time constants: snnTorch's importer assumes 1e-4 s; pass the same
# dt to Norse's from_nir.
DEFAULT_DT = 1e-4


def model_graph(model: torch.nn.Module, dt: float = DEFAULT_DT):  # noqa: ANN201 - a nir.NIRGraph
    """The NIR graph of a fully connected neurofl SNN (:class:`neurofl.models.snn.SpikingMLP`).

    Parameters
    ----------
    model : the SNN (its profile's weight quantizer is applied to the weights written)
    dt : seconds per time step, written into every time constant (``tau = dt / decay``)

    Raises
    ------
    UserError
        A convolutional model, or a decay of 0 (no NIR time constant expresses it).
    """
    import nir

    from neurofl.models.snn import SpikingMLP

    if not isinstance(model, SpikingMLP):
        raise UserError(f"NIR export takes fully connected SNNs; this model is a {type(model).__name__}")
    if not dt > 0:
        raise UserError(f"--dt must be positive, got {dt}")
    why = model.arch.neuron.lava_incompatibility()
    if why is not None:  # NIR's CubaLIF resets to zero and emits binary spikes
        raise UserError(f"NIR export: {why} (NIR's CubaLIF resets to zero and emits binary spikes)")
    nodes: dict = {"input": nir.Input(input_type=np.array([model.arch.widths[0]]))}
    edges = []
    prev = "input"
    with torch.no_grad():
        for i, block in enumerate(model.blocks):
            w = model.profile.quantize_weight(block.synapse.weight).reshape(block.synapse.weight.shape[:2])
            w = w.detach().cpu().numpy().astype(np.float32)
            neuron = block.neuron
            a_u = float(torch.round(neuron.current_decay.detach()).item()) / DECAY_STEPS
            a_v = float(torch.round(neuron.voltage_decay.detach()).item()) / DECAY_STEPS
            params = nir_from_cuba(a_u, a_v, float(neuron.threshold), w.shape[0], dt)
            nodes[f"fc{i + 1}"] = nir.Affine(weight=w, bias=np.zeros(w.shape[0], dtype=np.float32))
            nodes[f"lif{i + 1}"] = nir.CubaLIF(**params)
            edges += [(prev, f"fc{i + 1}"), (f"fc{i + 1}", f"lif{i + 1}")]
            prev = f"lif{i + 1}"
    nodes["output"] = nir.Output(output_type=np.array([model.arch.widths[-1]]))
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def write_nir(model: torch.nn.Module, path: Path, dt: float = DEFAULT_DT) -> int:
    """Write ``model`` as a ``.nir`` file at ``path`` atomically; return the number of layers."""
    import nir

    graph = model_graph(model, dt)
    atomic_write(Path(path), lambda tmp: nir.write(tmp, graph))
    return len(model.blocks)
