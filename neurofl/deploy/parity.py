"""SLAYER vs Lava parity of an exported network.

The SLAYER reference is rebuilt from the ``.net`` file alone (architecture and profile from its
header, weights from its integer mantissas), so verify tests the file, not a checkpoint beside it.
Both sides see the same encoded inputs (one seeded rate code for binary-spike profiles).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import h5py
import numpy as np
import torch

from neurofl.data import Dataset
from neurofl.deploy.bias_delay import add_bias, add_delays, read_bias_delay
from neurofl.deploy.netx import NetxFile
from neurofl.deploy.trace import encoded_input, neurons, trace
from neurofl.errors import UserError
from neurofl.io.limits import samples_per_chunk
from neurofl.models import build_model


@dataclass(frozen=True)
class ParityReport:
    """Agreement between Lava fixed point and SLAYER on the same inputs (shares in [0, 1]).

    spike_agreement : identical (sample, neuron, time) output bins over the bins ``t >= layers``
        (earlier bins are empty on both sides by construction)
    spike_agreement_chip_grid : the same against a SLAYER reference whose first-layer synaptic input
        is floored to Loihi's integer activation grid (graded input only; ``None`` otherwise): it
        isolates the one known difference, see :func:`chip_grid_hook`
    classification_agreement : same predicted class (argmax of output spike counts)
    slayer_spikes, lava_spikes : output spikes in all compared bins (agreement on silence proves little)
    """

    samples: int
    time_steps: int
    compared_bins: int
    mismatched_bins: int
    slayer_spikes: int
    lava_spikes: int
    spike_agreement: float
    spike_agreement_chip_grid: float | None
    classification_agreement: float
    slayer_accuracy: float
    lava_accuracy: float
    slayer_seconds: float
    lava_seconds: float


def reference_model(nf: NetxFile) -> torch.nn.Module:
    """The SLAYER ``SpikingMLP`` or ``ConvSNN`` described by the file: header architecture/profile, file
    weights; a conv layer's kernel, stride and padding must be those of the header's architecture. A
    dense layer's ``bias`` and ``delay`` are modelled as Lava runs them (:mod:`neurofl.deploy.bias_delay`)."""
    model = build_model("snn", nf.arch, nf.profile, seed=0)
    scale = nf.profile.weights.scale
    layer = 0  # weighted layers so far (a flatten is none)
    with h5py.File(nf.path, "r") as f, torch.no_grad():
        for i, block in enumerate(model.blocks, start=1):
            g = f["layer"][str(i)]
            kind = g["type"][0]
            if not hasattr(block, "synapse"):  # SLAYER Flatten <-> the file's flatten layer
                if kind != b"flatten":
                    raise UserError(f"{nf.path}: /layer/{i} is {kind!r}, the header's architecture has a flatten there")
                continue
            if (kind == b"conv") != (type(block).__name__ == "Conv"):  # slayer.block.cuba.Conv vs Dense
                raise UserError(f"{nf.path}: /layer/{i} is {kind!r}, the header's architecture disagrees")
            if kind == b"conv":
                syn = block.synapse
                file_geo = [tuple(np.broadcast_to(np.asarray(g[k][()]), (2,)).tolist()) for k in ("stride", "padding")]
                want = [tuple(syn.stride[:2]), tuple(syn.padding[:2])]
                if file_geo != want or tuple(g["weight"].shape) != tuple(syn.weight.shape[:4]):
                    raise UserError(
                        f"{nf.path}: /layer/{i}: kernel {tuple(g['weight'].shape)}, stride/padding {file_geo} disagree "
                        f"with the header's architecture ({tuple(syn.weight.shape[:4])}, {want})"
                    )
            w = torch.from_numpy(np.asarray(g["weight"][()], dtype=np.float32)) / scale
            block.synapse.weight.copy_(w.reshape(block.synapse.weight.shape))
            params = block.neuron.device_params
            if "neuron" not in g:
                raise UserError(
                    f"{nf.path}: /layer/{i} has no neuron group (NetX makes it a non-spiking integrator), but the "
                    "header's architecture has CUBA neurons there"
                )
            for key in ("iDecay", "vDecay", "vThMant"):
                if int(g[f"neuron/{key}"][()]) != int(params[key]):
                    raise UserError(
                        f"{nf.path}: /layer/{i}/neuron/{key} = {int(g[f'neuron/{key}'][()])} disagrees with the "
                        f"header's neuron parameters ({int(params[key])})"
                    )
            layer += 1
            if kind == b"dense":
                bias, delays = read_bias_delay(g, *g["weight"].shape)
                if bias is not None:  # integrated from the layer's reset step in Lava, SLAYER time layer - 1
                    add_bias(block, bias, nf.profile.neuron.threshold_scale, start=layer - 1)
                if delays is not None:
                    add_delays(block, delays)
    model.eval()
    return model


def chip_grid_hook(model: torch.nn.Module, frac_bits: int) -> torch.utils.hooks.RemovableHandle:
    """Floor the first block's synaptic input to whole weight-mantissa units, as Loihi does.

    Lava's LIF adds ``a_in << 6`` to its current, so a graded input's contribution ``sum_j w_j x_j``
    (mantissa units) reaches the neuron floored to an integer; SLAYER keeps its 1/64 fraction.
    """
    scale = float(model.profile.weights.scale)

    def hook(_m: torch.nn.Module, _inp: tuple, out: torch.Tensor) -> torch.Tensor:
        return torch.floor(out * scale) / scale

    return model.blocks[0].synapse.register_forward_hook(hook)


def output_spikes(model: torch.nn.Module, inputs: torch.Tensor, chunk: int | None = None) -> np.ndarray:
    """The last block's spikes (N, out, T) int8 for encoded ``inputs`` (N, in, T), computed in chunks
    of samples within :data:`neurofl.io.limits.ACTIVATION_BUDGET` (and of at most ``chunk`` samples)."""
    step = samples_per_chunk(neurons(model), inputs.shape[-1])
    step = step if chunk is None else max(1, min(step, chunk))
    parts = [trace(model, None, inputs=inputs[i : i + step]).layers[-1] for i in range(0, inputs.shape[0], step)]
    return torch.cat(parts).numpy().astype(np.int8)


def check_dataset(nf: NetxFile, data: Dataset, samples: int = 1) -> None:
    """Raise :class:`UserError` unless ``data`` fits the network (input shape, classes) and ``samples`` >= 1."""
    if tuple(data.input_shape) != tuple(nf.arch.input_shape):
        raise UserError(
            f"dataset '{data.name}' has inputs of shape {data.input_shape}, the network in {nf.path} expects "
            f"{tuple(nf.arch.input_shape)}"
        )
    if data.classes != nf.arch.classes:
        raise UserError(
            f"dataset '{data.name}' has {data.classes} classes, the network in {nf.path} has {nf.arch.classes}"
        )
    if samples < 1:
        raise UserError(f"--samples must be >= 1, got {samples}")


def memory_chunk(nf: NetxFile, samples: int, limit: int) -> int:
    """Samples per Lava run (and per pass of the SLAYER reference) whose working memory fits
    ``limit`` bytes (:func:`neurofl.runs.memory.lava_chunk`), beside what the run holds for all
    ``samples`` (:func:`neurofl.runs.memory.verify_held`); at most ``samples``.

    Raises
    ------
    UserError
        One line naming ``--samples`` and ``--max-memory`` when not even one sample fits.
    """
    from neurofl.runs import memory

    with torch.random.fork_rng(devices=[]):  # a rate-coded model draws from the global generator here
        fp = memory.footprint(reference_model(nf), tuple(nf.arch.input_shape))
    inputs, outputs = nf.widths[0], nf.widths[-1]
    per_run = memory.lava_chunk(fp, inputs, outputs)
    held = samples * memory.verify_held(inputs, outputs, nf.time_steps)
    est = memory.Estimate(per_run.fixed + held, per_run.per_victim)
    what = f"verifying {samples} samples x {nf.time_steps} time steps (one sample per Lava run)"
    return memory.units_that_fit(est, limit, samples, what, "--samples")


def verify_netx(
    nf: NetxFile,
    data: Dataset,
    samples: int,
    seed: int = 0,
    on_start: Callable[[], None] | None = None,
    chunk: int | None = None,
) -> ParityReport:
    """Run the first ``samples`` of ``data`` through SLAYER and Lava fixed point and compare.

    ``on_start`` is called once every input check has passed, before the simulations run.
    ``chunk``: samples per Lava run and per reference pass (None: all in one Lava run; see
    :func:`memory_chunk`). Samples are independent in Lava (each layer resets between samples), so
    the report is the same for any chunk.

    Raises
    ------
    UserError
        ``data``'s input shape or classes do not match the network, or ``samples`` < 1.
    """
    from neurofl.deploy.lava_run import run_lava, to_payload

    check_dataset(nf, data, samples)
    samples = min(samples, len(data.y))
    x = torch.from_numpy(data.x[:samples])
    y = data.y[:samples]
    model = reference_model(nf)
    t0 = time.perf_counter()
    inputs = encoded_input(model, x, seed)
    step = samples if chunk is None else max(1, chunk)
    for i in range(0, samples, step):  # refuses inputs the chip cannot represent, before any run
        to_payload(inputs[i : i + step].numpy(), nf)
    if on_start is not None:
        on_start()
    ref = output_spikes(model, inputs, step)
    t1 = time.perf_counter()
    out = np.concatenate([run_lava(nf, inputs[i : i + step].numpy()) for i in range(0, samples, step)])
    t2 = time.perf_counter()
    layers = len(nf.widths) - 1
    bins = ref[..., layers:].size
    mismatched = int((ref[..., layers:] != out[..., layers:]).sum())
    grid = None
    if nf.input_frac_bits:
        handle = chip_grid_hook(model, nf.input_frac_bits)
        try:
            ref_grid = output_spikes(model, inputs, step)
        finally:
            handle.remove()
        grid = float((ref_grid[..., layers:] == out[..., layers:]).mean())
    pred_ref = ref.sum(-1).argmax(-1)
    pred_lava = out.sum(-1).argmax(-1)
    return ParityReport(
        samples=samples,
        time_steps=nf.time_steps,
        compared_bins=bins,
        mismatched_bins=mismatched,
        slayer_spikes=int(ref[..., layers:].sum()),
        lava_spikes=int(out[..., layers:].sum()),
        spike_agreement=1.0 - mismatched / bins,
        spike_agreement_chip_grid=grid,
        classification_agreement=float((pred_ref == pred_lava).mean()),
        slayer_accuracy=float((pred_ref == y).mean()),
        lava_accuracy=float((pred_lava == y).mean()),
        slayer_seconds=t1 - t0,
        lava_seconds=t2 - t1,
    )
