"""Bit-accurate verification of a Xylo network in xylosim (the optional extra ``neurofl[xylo]``).

xylosim (PyPI ``xylosim``; SynSense's C++ simulator behind rockpool's ``XyloSim``) is an independent
implementation of the Xylo SNN core's integer arithmetic. :func:`verify_xylo` runs a trained
:class:`neurofl.models.chips.xylo_net.XyloNetwork` and xylosim's ``xylosim.v2.XyloLayer`` on the same
input event counts and compares every hidden and output neuron's events, bin by bin.

xylosim hard-wires Xylo's numbers (16-bit saturating states, subtractive reset, at most 15 input,
31 hidden and 1 output events per step); :func:`check_xylosim_profile` refuses a profile that
differs, rather than comparing two different arithmetics.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurofl.data import Dataset
from neurofl.errors import UserError
from neurofl.profiles import HardwareProfile

# Xylo's decay shifts have 4 bits ("should be 4 bits", XyloIAFNeuron.h); larger C shifts of an int16 are
# not meaningful.
XYLOSIM_MAX_DASH = 15
INSTALL_HINT = "xylosim is not installed; install it with: pip install 'neurofl[xylo]'"

# What xylosim 0.1.3 hard-wires (XyloIAFNeuron.h: BITS_STATE, MAX_NUM_INP_SPIKES, MAX_NUM_SPIKES,
# MAX_NUM_OUT_SPIKES; safe_add saturates; XyloIAFNeuron::evolve subtracts the threshold per event).
XYLOSIM_FIXED: dict[str, Any] = {
    "neuron.decay": "shift",
    "neuron.state_bits": 16,
    "neuron.saturate": True,
    "neuron.reset": "subtract",
    "spikes.input_max_per_step": 15,
    "spikes.max_per_step": 31,
    "spikes.output_max_per_step": 1,
}


def import_xylosim() -> Any:
    """The ``xylosim.v2`` module.

    Raises
    ------
    UserError
        xylosim is not installed (the message says how to install it).
    """
    try:
        import xylosim.v2 as v2
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return v2


def check_xylosim_profile(profile: HardwareProfile) -> None:
    """Refuse a profile whose arithmetic xylosim cannot run (it hard-wires Xylo's numbers).

    Raises
    ------
    UserError
        naming the first key that differs from :data:`XYLOSIM_FIXED`.
    """
    values = {
        "neuron.decay": profile.neuron.decay,
        "neuron.state_bits": profile.neuron.state_bits,
        "neuron.saturate": profile.neuron.saturate,
        "neuron.reset": profile.neuron.reset,
        "spikes.input_max_per_step": profile.spikes.input_max_per_step,
        "spikes.max_per_step": profile.spikes.max_per_step,
        "spikes.output_max_per_step": profile.spikes.output_max_per_step,
    }
    for key, fixed in XYLOSIM_FIXED.items():
        if values[key] != fixed:
            shown = "2**spikes.payload_bits - 1" if key == "spikes.max_per_step" else f"key '{key}'"
            raise UserError(
                f"profile '{profile.name}': {shown} = {values[key]!r}, but xylosim hard-wires {fixed!r}; "
                "the torch network runs this profile, xylosim cannot verify it"
            )


@dataclass(frozen=True)
class XyloConfig:
    """What a Xylo core is configured with for an input -> hidden -> output network.

    Attributes
    ----------
    w_in : (inputs, hidden) int8 input weights
    w_out : (hidden, classes) int8 readout weights
    dash_syn, dash_mem, threshold : (hidden,) integer parameters of hidden neurons
    dash_syn_out, dash_mem_out, threshold_out : (classes,) the same for output neurons
    weight_shift_in, weight_shift_out : left shifts of the input and readout weights
    """

    w_in: np.ndarray
    w_out: np.ndarray
    dash_syn: np.ndarray
    dash_mem: np.ndarray
    threshold: np.ndarray
    dash_syn_out: np.ndarray
    dash_mem_out: np.ndarray
    threshold_out: np.ndarray
    weight_shift_in: int
    weight_shift_out: int


def xylo_config(net: torch.nn.Module) -> XyloConfig:
    """The integer configuration of a :class:`~neurofl.models.chips.xylo_net.XyloNetwork`."""
    with torch.no_grad():
        w_in, w_out = (w.numpy().astype(np.int64) for w in net.integer_weights())
    if w_in.min() < -128 or w_in.max() > 127 or w_out.min() < -128 or w_out.max() > 127:
        raise UserError(f"profile '{net.profile.name}': weights.bits = {net.profile.weights.bits}: xylosim stores int8")
    ints = {k: getattr(net, k).numpy().astype(np.int64) for k in (
        "dash_syn", "dash_mem", "threshold", "dash_syn_out", "dash_mem_out", "threshold_out")}
    for k in ("dash_syn", "dash_mem", "dash_syn_out", "dash_mem_out"):
        if ints[k].max() > XYLOSIM_MAX_DASH:
            raise UserError(
                f"profile '{net.profile.name}': {k} up to {ints[k].max()}: xylosim takes 4-bit shifts "
                f"(0..{XYLOSIM_MAX_DASH})"
            )
    shift_in, shift_out = (int(s) for s in net.weight_shift.tolist())
    return XyloConfig(w_in, w_out, weight_shift_in=shift_in, weight_shift_out=shift_out, **ints)


class XylosimNetwork:
    """A configured ``xylosim.v2.XyloLayer`` (no recurrent weights, no aliases, no biases).

    xylosim keeps raw pointers to the synapse objects, so this object keeps them alive.
    """

    def __init__(self, cfg: XyloConfig):
        v2 = import_xylosim()
        syn = v2.XyloSynapse
        hidden, classes = cfg.w_out.shape
        self._synapses_in = [
            [syn(int(j), 0, int(w)) for j, w in enumerate(row) if w != 0] for row in cfg.w_in
        ]
        self._synapses_rec: list[list[Any]] = [[] for _ in range(hidden)]
        self._synapses_out = [
            [syn(int(j), 0, int(w)) for j, w in enumerate(row) if w != 0] for row in cfg.w_out
        ]
        self.layer = v2.XyloLayer(
            self._synapses_in,
            self._synapses_rec,
            self._synapses_out,
            [[] for _ in range(hidden)],  # aliases
            cfg.threshold.tolist(),
            cfg.threshold_out.tolist(),
            False,  # has_bias
            [0] * hidden,
            [0] * classes,
            cfg.weight_shift_in,
            0,  # weight_shift_rec (no recurrent weights)
            cfg.weight_shift_out,
            cfg.dash_mem.tolist(),
            cfg.dash_mem_out.tolist(),
            [[int(d)] for d in cfg.dash_syn],
            [[int(d)] for d in cfg.dash_syn_out],
            "neurofl",
        )

    def run(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """counts: (batch, inputs, T) events -> hidden (batch, hidden, T) and output (batch, classes, T)
        events, each sample from reset states."""
        hid, out = [], []
        for sample in np.asarray(counts, dtype=np.int64):
            self.layer.reset_all()
            o = self.layer.evolve(sample.T.tolist())
            hid.append(np.asarray(self.layer.rec_recurrent_spikes, dtype=np.int64).T)
            out.append(np.asarray(o, dtype=np.int64).T)
        return np.stack(hid), np.stack(out)


@dataclass(frozen=True)
class XyloParity:
    """neurofl's torch Xylo network against xylosim on the same input events.

    ``spike_agreement`` is the share of (sample, neuron, time bin) cells, hidden and output neurons
    together, whose event counts are equal; ``hidden_agreement`` and ``output_agreement`` split it.
    """

    samples: int
    time_steps: int
    compared_bins: int
    mismatched_bins: int
    spike_agreement: float
    hidden_agreement: float
    output_agreement: float
    classification_agreement: float
    torch_accuracy: float
    xylosim_accuracy: float
    torch_seconds: float
    xylosim_seconds: float
    xylosim_version: str
    fits: bool
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


def verify_xylo(net: torch.nn.Module, test: Dataset, samples: int, seed: int) -> XyloParity:
    """Run ``samples`` test samples through ``net`` and xylosim; compare bin by bin.

    The input events are drawn once (rate code, ``seed``) and fed to both. Raises UserError when
    xylosim is missing or cannot run the profile.
    """
    from importlib import metadata

    from neurofl.models.chips.xylo_net import fit_problems

    check_xylosim_profile(net.profile)
    sim = XylosimNetwork(xylo_config(net))
    n = min(samples, len(test.y))
    x = torch.from_numpy(test.x[:n])
    y = test.y[:n]
    with torch.no_grad():
        counts = net.input_spikes(x, torch.Generator().manual_seed(seed))
        t0 = time.perf_counter()
        h_t, o_t = (a.numpy().astype(np.int64) for a in net.run(counts))
        t_torch = time.perf_counter() - t0
    t0 = time.perf_counter()
    h_x, o_x = sim.run(counts.numpy().astype(np.int64))
    t_sim = time.perf_counter() - t0
    same_h, same_o = h_t == h_x, o_t == o_x
    compared = same_h.size + same_o.size
    mismatched = int((~same_h).sum() + (~same_o).sum())
    pred_t, pred_x = o_t.sum(-1).argmax(-1), o_x.sum(-1).argmax(-1)
    problems, unchecked = fit_problems(net.arch, net.profile)
    return XyloParity(
        samples=n,
        time_steps=int(counts.shape[-1]),
        compared_bins=compared,
        mismatched_bins=mismatched,
        spike_agreement=1.0 - mismatched / compared,
        hidden_agreement=float(same_h.mean()),
        output_agreement=float(same_o.mean()),
        classification_agreement=float((pred_t == pred_x).mean()),
        torch_accuracy=float((pred_t == y).mean()),
        xylosim_accuracy=float((pred_x == y).mean()),
        torch_seconds=t_torch,
        xylosim_seconds=t_sim,
        xylosim_version=metadata.version("xylosim"),
        fits=not problems,
        problems=problems,
        unchecked=unchecked,
    )


def verify_checkpoint(
    path: Path, dataset: str, samples: int, profile_name: str | None, seed: int | None, data_dir: Path | None
) -> tuple[dict[str, Any], list[str]]:
    """``neurofl verify MODEL.pt``: a Xylo checkpoint's network in xylosim against neurofl's torch run.

    Parameters
    ----------
    path : a checkpoint written by ``neurofl train`` under a shift-decay (Xylo) profile
    dataset : its test split supplies the inputs (classes beyond the network's outputs are left out,
        as ``train`` left them out)
    samples : test samples to run
    profile_name : when given, the checkpoint's profile must equal it
    seed : split and rate-code seed (None: the checkpoint's)
    data_dir : folder of on-disk datasets

    Returns
    -------
    (the JSON result, the human-readable lines)

    Raises
    ------
    UserError
        xylosim missing (says how to install it), not a Xylo checkpoint, another profile, a dataset of
        another input shape, or a profile xylosim cannot run.
    """
    from neurofl.data import load_dataset, split_dataset
    from neurofl.models.checkpoint import header_seed, load_checkpoint
    from neurofl.profiles import load_profile

    ck = load_checkpoint(path, kind=None)
    if ck.kind != "snn" or ck.profile.neuron.decay != "shift":
        raise UserError(
            f"{path}: holds a '{ck.kind}' model under profile '{ck.profile.name}'; only Xylo (neuron.decay = "
            "'shift') checkpoints run in xylosim (export other SNNs to NetX and verify the .net file)"
        )
    import_xylosim()  # before any data is loaded: without the extra nothing else is worth doing
    if profile_name is not None and load_profile(profile_name) != ck.profile:
        raise UserError(f"{path} was built for profile '{ck.profile.name}', not the requested profile '{profile_name}'")
    seed = header_seed(ck.header, f"{path} header") if seed is None else seed
    test = split_dataset(load_dataset(dataset, data_dir), seed).test
    if tuple(test.input_shape) != tuple(ck.arch.input_shape):
        raise UserError(
            f"{path}: dataset '{dataset}' has inputs of shape {tuple(test.input_shape)}, the network expects "
            f"{tuple(ck.arch.input_shape)}"
        )
    test = test.subset(np.flatnonzero(test.y < ck.arch.classes))
    rep = verify_xylo(ck.model, test, samples, seed)
    result = {
        "file": str(path),
        "profile": ck.profile.name,
        "dataset": dataset,
        "classes": ck.arch.classes,
        "simulator": f"xylosim {rep.xylosim_version} (xylosim.v2.XyloLayer)",
        "parity": dataclasses.asdict(rep),
    }
    lines = [
        f"{path} ({ck.profile.name}) on {rep.samples} '{dataset}' test samples (classes 0..{ck.arch.classes - 1}), "
        f"{rep.time_steps} steps, xylosim {rep.xylosim_version}:",
        f"  spike agreement          {rep.spike_agreement:.4%} ({rep.mismatched_bins} of {rep.compared_bins} "
        "(sample, neuron, step) event counts differ)",
        f"  hidden / output          {rep.hidden_agreement:.4%} / {rep.output_agreement:.4%}",
        f"  classification agreement {rep.classification_agreement:.2%}",
        f"  accuracy                 torch {rep.torch_accuracy:.2%}  xylosim {rep.xylosim_accuracy:.2%}",
        f"  time                     torch {rep.torch_seconds:.2f} s  xylosim {rep.xylosim_seconds:.2f} s",
        f"  fits the chip            {'yes' if rep.fits else 'no: ' + '; '.join(rep.problems)}",
    ]
    lines += [f"  not checked: {u}" for u in rep.unchecked]
    return result, lines
