"""Every key of a hardware profile takes effect or is refused (issue 13).

Each case copies a shipped profile into ``tmp_path``, changes one key (plus the keys a cross-field
rule ties to it) and shows either that a model output, quantized weight, upload, export check or
resource estimate changes on a tiny fixed input, or that loading refuses the edit with one line
naming the file and the key. :func:`test_every_schema_key_has_a_case` fails when a key is added
to the schema without a case here (and without a row in docs/profiles.md).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from neurofl.cli import main
from neurofl.config import read_toml
from neurofl.deploy.export import check_fits, lava_loading
from neurofl.deploy.resources import estimate_resources
from neurofl.errors import UserError
from neurofl.models import Architecture
from neurofl.models.chips.xylo_net import fit_problems, pool_factor
from neurofl.models.factory import build_model
from neurofl.pipelines.evaluate import with_encoding
from neurofl.profiles import HardwareProfile, load_profile, quantize_update, shipped_profiles
from neurofl.runs.identity import config_identity

DOCS = Path(__file__).resolve().parents[2] / "docs" / "profiles.md"
ARCH = Architecture((16, 16), 3, hidden=(5,))
X = torch.linspace(0.0, 1.0, 3 * 256).reshape(3, 16, 16)
W = torch.linspace(-5.0, 5.0, 401)
G = torch.linspace(-1.0, 1.0, 2 * 50).reshape(2, 50) ** 3
# Xylo-type (shift-decay) probes: 8x8 images (pooled to the chip's input channels), 5 hidden, 3 classes.
ARCH8 = Architecture((1, 8, 8), 3, hidden=(5,))
X8 = torch.linspace(0.0, 1.0, 3 * 64).reshape(3, 1, 8, 8)
XYLO_CHIP = {k: v for k, v in read_toml(shipped_profiles()["xylo-audio2"])["chip"].items()}


# ---------------------------------------------------------------- copying and editing a profile


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string (non-ASCII as \uXXXX escapes)
    return repr(v)


def _write_toml(table: dict[str, Any], path: Path) -> Path:
    lines = [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for section, values in table.items():
        if isinstance(values, dict):
            lines += ["", f"[{section}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def copied(tmp_path: Path, base: str, edits: dict[str, Any]) -> Path:
    """A copy of shipped profile ``base`` under ``tmp_path`` with ``edits`` ({dotted key: value};
    ``None`` removes a section) applied."""
    table = read_toml(shipped_profiles()[base])
    for key, value in edits.items():
        *sections, leaf = key.split(".")
        t = table
        for s in sections:
            t = t[s]
        if value is None:
            del t[leaf]
        else:
            t[leaf] = value
    return _write_toml(table, tmp_path / f"edited-{base}.toml")


# ---------------------------------------------------------------- what a key can change


def model_spikes(p: HardwareProfile) -> torch.Tensor:
    """Output spike trains of a freshly built SNN on the fixed input (a fixed rate-code seed)."""
    model = build_model("snn", ARCH, p, seed=0)
    with torch.no_grad():
        return model.spikes(X, torch.Generator().manual_seed(0))


def first_current(p: HardwareProfile) -> torch.Tensor:
    """The first block's synaptic current (after the profile's hooks) on the fixed direct input."""
    model = build_model("snn", ARCH, p, seed=0)
    with torch.no_grad():
        return model.blocks[0].synapse(model.input_spikes(X, torch.Generator().manual_seed(0)))


def quantized(p: HardwareProfile) -> torch.Tensor:
    """The quantizer on a fixed weight vector (a 20 x 20 matrix for crossbar weights, which need rows)."""
    return p.quantize_weight(W[:400].reshape(20, 20) if p.weights.axon_types else W)


def crossbar(p: HardwareProfile) -> torch.Tensor:
    """The quantizer on a fixed (post, pre) matrix."""
    return p.quantize_weight(W[:400].reshape(20, 20))


def upload(p: HardwareProfile) -> torch.Tensor:
    return quantize_update(G, p.update, torch.Generator().manual_seed(0))


def export_check(p: HardwareProfile) -> str:
    """The export fit check's verdict: 'fits' or the refusal's message."""
    try:
        check_fits(build_model("snn", ARCH, p, seed=0), X)
    except UserError as e:
        return str(e)
    return "fits"


def resources(p: HardwareProfile) -> dict[str, Any]:
    return estimate_resources(build_model("snn", ARCH, p, seed=0), p, X).as_dict()


def digest(p: HardwareProfile) -> str:
    return config_identity(p)["sha256"]


def encoding_direct(p: HardwareProfile) -> str:
    """Whether ``evaluate --encoding direct`` accepts the profile."""
    try:
        return with_encoding(p, "direct").spikes.input_encoding
    except UserError as e:
        return str(e)


def lava_settings(p: HardwareProfile) -> dict[str, int]:
    return lava_loading(p)


def snn8_spikes(p: HardwareProfile) -> torch.Tensor:
    """Output spike (event) trains of a fresh SNN on 8x8 inputs: SLAYER under a multiplier-decay
    profile, the Xylo network under a shift-decay profile."""
    model = build_model("snn", ARCH8, p, seed=0)
    with torch.no_grad():
        return model.spikes(X8, torch.Generator().manual_seed(0)).float()


def xylo_built(p: HardwareProfile) -> str:
    """Whether the Xylo network's neuron parameters fit the profile's registers."""
    try:
        build_model("snn", ARCH8, p, seed=0)
    except UserError as e:
        return str(e)
    return "built"


def xylo_hot(p: HardwareProfile) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden and output events of a Xylo network driven hard: every input channel at the profile's
    event cap for 6 steps, then silent; all-excitatory maximal weights and high thresholds, so states
    saturate (16 bits), hidden neurons emit several events per step and the states decay afterwards."""
    model = build_model("snn", ARCH8, p, seed=0)
    with torch.no_grad():
        model.synapse_in.weight.fill_(p.weight_range[1])
        model.synapse_out.weight.fill_(p.weight_range[1])
        model.threshold.fill_(700)
        model.threshold_out.fill_(300)
        counts = torch.zeros(1, model.inputs, 12, dtype=torch.float64)
        counts[..., :6] = 255
        return model.run(counts)


def xylo_inputs(p: HardwareProfile) -> torch.Tensor:
    """The rate-coded input event counts of the Xylo network on the fixed 8x8 input."""
    model = build_model("snn", ARCH8, p, seed=0)
    with torch.no_grad():
        return model.input_spikes(X8, torch.Generator().manual_seed(0))


def chip_hot(p: HardwareProfile) -> tuple[torch.Tensor, ...]:
    """Hidden and output events of a one-state chip network (Speck, Akida, TrueNorth, SpiNNaker2) in
    three runs: driven hard (every input at its cap for half the steps, maximal weights) with
    thresholds of 700 and 300 state units, so count payloads emit several events per step; driven hard
    for all steps with hidden thresholds of 32767, so 16-bit states saturate before they fire; and driven weakly
    (weights of one unit, hidden threshold 100) for all steps, so the decay decides when neurons fire."""
    model = build_model("snn", ARCH8, p, seed=0)
    steps = max(2, p.simulation.time_steps)
    out = []
    with torch.no_grad():
        for weight, threshold, drive in ((p.weight_range[1], 700, steps // 2), (p.weight_range[1], 32767, steps),
                                         (1 / p.weights.scale, 100, steps)):  # fmt: skip
            model.synapse_in.weight.fill_(weight)
            model.synapse_out.weight.fill_(weight)
            model.threshold.fill_(threshold)
            model.threshold_out.fill_(300)
            counts = torch.zeros(1, model.inputs, steps, dtype=torch.float64)
            counts[..., :drive] = 255
            out += list(model.run(counts))
    return tuple(out)


def chip_inputs(p: HardwareProfile) -> torch.Tensor:
    """The input event counts of a chip network on the fixed 8x8 input."""
    model = build_model("snn", ARCH8, p, seed=0)
    with torch.no_grad():
        return model.input_spikes(X8, torch.Generator().manual_seed(0))


def xylo_fit(p: HardwareProfile) -> tuple[int, list[str], list[str]]:
    """The Xylo fit check of the 8x8-5-3 network: pooling factor, problems, unchecked limits."""
    problems, unchecked = fit_problems(ARCH8, p)
    return pool_factor(ARCH8.input_shape, p.chip.input_channels), problems, unchecked


def xylosim_check(p: HardwareProfile) -> str:
    """The xylosim verification's verdict on the profile (xylosim hard-wires Xylo's numbers)."""
    from neurofl.deploy.xylo import check_xylosim_profile

    try:
        check_xylosim_profile(p)
    except UserError as e:
        return str(e)
    return "runs in xylosim"


def _differ(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return a.shape != b.shape or not torch.equal(a, b)
    if isinstance(a, tuple):
        return any(_differ(x, y) for x, y in zip(a, b, strict=True))
    return a != b


# ---------------------------------------------------------------- the table: one case per key

Probe = Callable[[HardwareProfile], Any]


@dataclasses.dataclass(frozen=True)
class Changes:
    """Editing ``edits`` into a copy of ``base`` changes what every probe returns."""

    base: str
    edits: dict[str, Any]
    probes: tuple[Probe, ...]


@dataclasses.dataclass(frozen=True)
class Refused:
    """Editing ``edits`` into a copy of ``base`` is refused at load, naming ``key``."""

    base: str
    edits: dict[str, Any]
    key: str


# loihi1 made a Xylo-type chip: the keys a shift decay requires alongside it.
TO_SHIFT = {
    "neuron.decay_bits": 4,
    "neuron.threshold_scale": 1,
    "neuron.state_bits": 16,
    "neuron.saturate": True,
    "neuron.reset": "subtract",
    "resources": None,
    "chip": XYLO_CHIP,
}

# The first edit of each case is the key under test; further edits satisfy cross-field rules.
CASES: dict[str, tuple[Changes | Refused, ...]] = {
    "name": (Changes("loihi2", {"name": "my-loihi2"}, (digest,)), Refused("loihi2", {"name": " "}, "name")),
    "description": (
        Changes("loihi2", {"description": "edited"}, (digest,)),
        Refused("loihi2", {"description": ""}, "description"),
    ),
    "weights.quantized": (
        Changes("loihi2", {"weights.quantized": False, "weights.bits": 32}, (quantized, model_spikes, export_check)),
        Refused("loihi2", {"weights.quantized": False}, "weights.bits"),
        Refused("xylo-audio2", {"weights.quantized": False, "weights.bits": 32}, "weights.quantized"),
        Refused("spinnaker2", {"weights.quantized": False, "weights.bits": 32}, "weights.quantized"),
    ),
    "weights.bits": (
        Changes("loihi2", {"weights.bits": 6}, (quantized, model_spikes, export_check, resources)),
        Changes("xylo-audio2", {"weights.bits": 4}, (quantized, xylo_hot)),
        Changes("akd1000", {"weights.bits": 2}, (quantized, chip_hot)),
        Changes("truenorth", {"weights.bits": 6}, (crossbar, snn8_spikes)),
        Refused("float32", {"weights.bits": 16}, "weights.bits"),
        Refused("loihi2", {"weights.bits": 9}, "weights.bits"),  # Lava's 8-bit mantissas
        Refused("truenorth", {"weights.bits": 17}, "weights.bits"),
    ),
    "weights.axon_types": (
        Changes("truenorth", {"weights.axon_types": 2}, (crossbar, snn8_spikes)),
        Changes("truenorth", {"weights.axon_types": 0}, (crossbar, snn8_spikes, xylo_fit)),
        Changes("speck", {"weights.axon_types": 4}, (quantized, snn8_spikes, xylo_fit)),
        Refused("truenorth", {"weights.axon_types": 3}, "weights.axon_types"),
        Refused("loihi2", {"weights.axon_types": 4}, "weights.axon_types"),
        Refused("xylo-audio2", {"weights.axon_types": 4}, "weights.axon_types"),
    ),
    "weights.scale": (
        Changes("loihi2", {"weights.scale": 128}, (quantized, first_current, model_spikes, export_check)),
        Changes("xylo-audio2", {"weights.scale": 16}, (quantized, snn8_spikes)),
        Changes("speck", {"weights.scale": 16}, (quantized,)),  # chip thresholds scale with it
    ),
    "weights.source": (Refused("loihi2", {"weights.source": ""}, "weights.source"),),
    "neuron.decay_bits": (
        Refused("loihi2", {"neuron.decay_bits": 10}, "neuron.decay_bits"),
        Changes("xylo-audio2", {"neuron.decay_bits": 1}, (xylo_built,)),  # dash_mem = 2 needs 2 bits
        Refused("xylo-audio2", {"neuron.decay_bits": 9}, "neuron.decay_bits"),
        Refused("xylo-audio2", {"neuron.decay_bits": 0}, "neuron.decay_bits"),
        Refused("speck", {"neuron.decay_bits": 4}, "neuron.decay_bits"),  # no decay: 0 bits
        Refused("truenorth", {"neuron.decay_bits": 1}, "neuron.decay_bits"),  # a signed leak needs 2
        Refused("spinnaker2", {"neuron.decay_bits": 16}, "neuron.decay_bits"),  # float32 alpha
    ),
    "neuron.threshold_scale": (
        Refused("loihi2", {"neuron.threshold_scale": 128}, "neuron.threshold_scale"),
        Refused("xylo-audio2", {"neuron.threshold_scale": 64}, "neuron.threshold_scale"),
        Refused("truenorth", {"neuron.threshold_scale": 64}, "neuron.threshold_scale"),
    ),
    "neuron.state_bits": (
        Changes("loihi2", {"neuron.state_bits": 12}, (export_check,)),
        Changes("loihi2", {"neuron.state_bits": 32}, (export_check,)),
        Changes("xylo-audio2", {"neuron.state_bits": 12}, (xylo_hot, xylosim_check)),
        Refused("xylo-audio2", {"neuron.state_bits": 6}, "neuron.state_bits"),  # < weights.bits
        Changes("speck", {"neuron.state_bits": 12}, (chip_hot,)),
        Refused("truenorth", {"neuron.state_bits": 8}, "neuron.state_bits"),  # < 9 weight bits
        Refused("spinnaker2", {"neuron.state_bits": 16}, "neuron.state_bits"),  # float32 states
    ),
    "neuron.decay": (
        Changes("loihi1", {"neuron.decay": "shift", **TO_SHIFT}, (snn8_spikes, quantized)),
        Refused("loihi1", {"neuron.decay": "shift"}, "neuron.decay_bits"),
        Changes("xylo-audio2", {"neuron.decay": "none", "neuron.decay_bits": 0}, (snn8_spikes,)),
        Changes("speck", {"neuron.decay": "linear", "neuron.decay_bits": 9}, (chip_hot,)),
        Changes("spinnaker2", {"neuron.decay": "linear", "neuron.decay_bits": 9, "neuron.state_bits": 20}, (chip_hot,)),
        Refused("speck", {"neuron.decay": "exponential"}, "neuron.decay_bits"),
    ),
    "neuron.saturate": (
        Changes("xylo-audio2", {"neuron.saturate": False}, (xylo_hot, xylosim_check)),
        Refused("loihi2", {"neuron.saturate": True}, "neuron.saturate"),
        Changes("speck", {"neuron.saturate": False}, (chip_hot,)),
        Refused("spinnaker2", {"neuron.saturate": True}, "neuron.saturate"),
    ),
    "neuron.reset": (
        Changes("xylo-audio2", {"neuron.reset": "zero"}, (xylo_hot, xylosim_check)),
        Refused("loihi2", {"neuron.reset": "subtract"}, "neuron.reset"),
        Changes("speck", {"neuron.reset": "zero"}, (chip_hot,)),
        Changes("truenorth", {"neuron.reset": "subtract"}, (chip_hot,)),
    ),
    "neuron.source": (Refused("loihi2", {"neuron.source": " "}, "neuron.source"),),
    "spikes.payload": (
        Changes("loihi1", {"spikes.payload": "graded", "spikes.payload_bits": 24}, (encoding_direct,)),
        Refused("loihi2", {"spikes.payload": "binary"}, "spikes.payload"),
        Changes(
            "xylo-audio2",
            {"spikes.payload": "binary", "spikes.payload_bits": 1, "spikes.input_max_per_step": 1},
            (xylo_hot, xylo_inputs, xylosim_check),
        ),
        # several events per step on a binary-spike chip
        Refused("xylo-audio2", {"spikes.payload": "binary", "spikes.payload_bits": 1}, "spikes.input_max_per_step"),
        Refused("loihi1", {"spikes.payload": "count", "spikes.payload_bits": 5}, "spikes.payload"),
        Refused("xylo-audio2", {"spikes.payload": "graded", "spikes.payload_bits": 24}, "spikes.input_max_per_step"),
        Changes(
            "speck",
            {"spikes.payload": "binary", "spikes.payload_bits": 1, "spikes.output_max_per_step": 1},
            (chip_hot,),
        ),
        Refused("speck", {"spikes.payload": "binary", "spikes.payload_bits": 1}, "spikes.output_max_per_step"),
        Refused("truenorth", {"spikes.payload": "graded", "spikes.payload_bits": 24}, "spikes.payload"),
    ),
    "spikes.payload_bits": (
        Changes("loihi2", {"spikes.payload_bits": 16}, (lava_settings,)),
        Refused("loihi2", {"spikes.payload_bits": 4}, "spikes.payload_bits"),
        Refused("loihi1", {"spikes.payload_bits": 8}, "spikes.payload_bits"),
        Changes("xylo-audio2", {"spikes.payload_bits": 2}, (xylo_hot, xylosim_check)),
        Refused("xylo-audio2", {"spikes.payload_bits": 9}, "spikes.payload_bits"),
        Changes("akd1000", {"spikes.payload_bits": 2, "spikes.output_max_per_step": 3}, (chip_hot,)),
        Refused("akd1000", {"spikes.payload_bits": 2}, "spikes.output_max_per_step"),
    ),
    "spikes.input_max_per_step": (
        Changes("xylo-audio2", {"spikes.input_max_per_step": 3}, (xylo_inputs, xylo_hot, xylosim_check)),
        Refused("loihi1", {"spikes.input_max_per_step": 15}, "spikes.input_max_per_step"),
        Changes("akd1000", {"spikes.input_max_per_step": 15}, (chip_inputs, chip_hot)),
    ),
    "spikes.output_max_per_step": (
        Changes("xylo-audio2", {"spikes.output_max_per_step": 7}, (xylo_hot, xylosim_check)),
        Refused("loihi2", {"spikes.output_max_per_step": 2}, "spikes.output_max_per_step"),
        Refused("xylo-audio2", {"spikes.output_max_per_step": 40}, "spikes.output_max_per_step"),
        Changes("speck", {"spikes.output_max_per_step": 1}, (chip_hot,)),
        Refused("truenorth", {"spikes.output_max_per_step": 3}, "spikes.output_max_per_step"),  # binary chip
    ),
    "spikes.input_encoding": (
        Changes("loihi2", {"spikes.input_encoding": "rate"}, (model_spikes, lava_settings)),
        Refused("loihi1", {"spikes.input_encoding": "direct"}, "spikes.input_encoding"),
        Changes("akd1000", {"spikes.input_encoding": "rate"}, (chip_inputs,)),
        Changes("xylo-audio2", {"spikes.input_encoding": "direct"}, (xylo_inputs,)),
        Refused("truenorth", {"spikes.input_encoding": "direct"}, "spikes.input_encoding"),
    ),
    "spikes.source": (Refused("loihi2", {"spikes.source": ""}, "spikes.source"),),
    "simulation.time_steps": (
        Changes("loihi2", {"simulation.time_steps": 4}, (model_spikes, resources)),
        Changes("akd1000", {"simulation.time_steps": 4}, (snn8_spikes,)),
    ),
    "simulation.source": (Refused("loihi2", {"simulation.source": ""}, "simulation.source"),),
    "update.format": (
        Changes("loihi2", {"update.format": "float", "update.bits": 32}, (upload,)),
        Refused("loihi2", {"update.format": "float"}, "update.bits"),
    ),
    "update.bits": (
        Changes("loihi2", {"update.bits": 4}, (upload,)),
        Refused("float32", {"update.bits": 8}, "update.bits"),
    ),
    "update.rounding": (
        Changes("loihi2", {"update.rounding": "stochastic"}, (upload,)),
        Refused("float32", {"update.rounding": "stochastic"}, "update.rounding"),
    ),
    "update.source": (Refused("loihi2", {"update.source": ""}, "update.source"),),
    "resources": (Changes("loihi2", {"resources": None}, (export_check, resources)),),
    "resources.cores": (Changes("loihi2", {"resources.cores": 1}, (resources, export_check)),),
    "resources.neurons_per_core": (Changes("loihi2", {"resources.neurons_per_core": 1}, (resources,)),),
    "resources.input_axons_per_core": (
        Changes("loihi2", {"resources.input_axons_per_core": 100}, (resources, export_check)),
    ),
    "resources.output_axons_per_core": (
        Changes("loihi2", {"resources.output_axons_per_core": 1}, (resources, export_check)),
    ),
    "resources.synapse_memory_kib_per_core": (
        Changes("loihi2", {"resources.synapse_memory_kib_per_core": 1}, (resources,)),
    ),
    "resources.energy_per_synop_pj": (Changes("loihi2", {"resources.energy_per_synop_pj": 1.0}, (resources,)),),
    "resources.energy_per_neuron_update_pj": (
        Changes("loihi2", {"resources.energy_per_neuron_update_pj": 1.0}, (resources,)),
    ),
    "resources.source": (Refused("loihi2", {"resources.source": ""}, "resources.source"),),
    "chip": (
        Refused("xylo-audio2", {"chip": None}, "chip"),
        Refused("loihi2", {"chip": XYLO_CHIP}, "chip"),
    ),
    "chip.input_channels": (
        Changes("xylo-audio2", {"chip.input_channels": 4}, (xylo_fit, snn8_spikes)),
        Changes("xylo-audio2", {"chip.input_channels": "unknown"}, (xylo_fit, snn8_spikes)),  # not pooled
        Changes("speck", {"chip.input_channels": 16}, (xylo_fit, snn8_spikes)),
    ),
    "chip.hidden_neurons": (
        Changes("xylo-audio2", {"chip.hidden_neurons": 4}, (xylo_fit,)),
        Changes("truenorth", {"chip.hidden_neurons": "unknown"}, (xylo_fit,)),
    ),
    "chip.output_neurons": (
        Changes("xylo-audio2", {"chip.output_neurons": 2}, (xylo_fit,)),
        Changes("speck", {"chip.output_neurons": 2}, (xylo_fit,)),
    ),
    # the Xylo network uses one synaptic state per neuron, the chip networks none
    "chip.synaptic_states": (
        Changes("xylo-audio2", {"chip.synaptic_states": 0}, (xylo_fit,)),
        Changes("spinnaker2", {"chip.synaptic_states": 0}, (xylo_fit,)),  # "unknown" -> checked
        Refused("speck", {"chip.synaptic_states": -1}, "chip.synaptic_states"),
    ),
    "chip.max_fan_in": (
        Changes("xylo-audio2", {"chip.max_fan_in": 4}, (xylo_fit,)),
        Changes("xylo-audio2", {"chip.max_fan_in": 64}, (xylo_fit,)),  # "unknown" -> checked
        Refused("xylo-audio2", {"chip.max_fan_in": 0}, "chip.max_fan_in"),
    ),
    "chip.max_fan_out": (
        Changes("xylo-audio2", {"chip.max_fan_out": 2}, (xylo_fit,)),
        Changes("truenorth", {"chip.max_fan_out": 64}, (xylo_fit,)),  # 2 axons x 3 classes > 1
        Changes("xylo-audio2", {"chip.max_fan_out": "unknown"}, (xylo_fit,)),
    ),
    "chip.input_projection": (Changes("xylo-audio2", {"chip.input_projection": 4}, (xylo_fit,)),),
    "chip.output_projection": (Changes("xylo-audio2", {"chip.output_projection": 4}, (xylo_fit,)),),
    "chip.source": (Refused("xylo-audio2", {"chip.source": " "}, "chip.source"),),
}


def schema_keys(cls: type = HardwareProfile, prefix: str = "") -> set[str]:
    """Every dotted key of the profile schema: leaf fields, and sections that may be left out."""
    keys = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        optional = False
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(tp) if a is not type(None)]
            optional, tp = len(inner) < len(typing.get_args(tp)), inner[0]
        if dataclasses.is_dataclass(tp):
            keys |= schema_keys(tp, f"{prefix}{f.name}.")
            if optional or f.default is not dataclasses.MISSING:
                keys.add(f"{prefix}{f.name}")
        else:
            keys.add(f"{prefix}{f.name}")
    return keys


def test_every_schema_key_has_a_case():
    keys = schema_keys()
    assert keys == set(CASES), f"keys without a case: {sorted(keys - set(CASES))}; stale: {sorted(set(CASES) - keys)}"


def test_every_schema_key_has_a_row_in_docs():
    text = DOCS.read_text()
    missing = [k for k in sorted(schema_keys()) if f"| `{k}` |" not in text]
    assert not missing, f"docs/profiles.md has no row for {missing}"


@pytest.mark.parametrize(
    "key, case",
    [(k, c) for k, cases in CASES.items() for c in cases if isinstance(c, Changes)],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_changing_the_key_changes_the_arithmetic(tmp_path, key, case):
    assert next(iter(case.edits)) == key
    base = load_profile(case.base)
    edited = load_profile(copied(tmp_path, case.base, case.edits))
    for probe in case.probes:
        assert _differ(probe(base), probe(edited)), f"{key}: {probe.__name__} did not change"


@pytest.mark.parametrize(
    "key, case",
    [(k, c) for k, cases in CASES.items() for c in cases if isinstance(c, Refused)],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_an_edit_the_code_cannot_honour_is_refused(tmp_path, capsys, key, case):
    assert next(iter(case.edits)) == key
    path = copied(tmp_path, case.base, case.edits)
    with pytest.raises(UserError, match=f"key '{case.key}'"):
        load_profile(path)
    with pytest.raises(SystemExit) as e:
        main(["profiles", "show", str(path)])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert f"'{case.key}'" in err and str(path) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_the_copies_round_trip(tmp_path):
    """The helper that writes the copies is faithful: an unedited copy loads equal to the shipped one."""
    for name in shipped_profiles():
        assert load_profile(copied(tmp_path, name, {})) == load_profile(name)


def test_state_bits_and_weights_scale_in_the_export_messages(tmp_path):
    """The export's state check uses the profile's register width and says so."""
    assert export_check(load_profile("loihi2")) == "fits"
    assert "12-bit range" in export_check(load_profile(copied(tmp_path, "loihi2", {"neuron.state_bits": 12})))
    assert "neuron.state_bits = 32" in export_check(load_profile(copied(tmp_path, "loihi2", {"neuron.state_bits": 32})))
    assert "weights.scale = 128" in export_check(load_profile(copied(tmp_path, "loihi2", {"weights.scale": 128})))


def test_graded_input_floor_follows_weights_scale(tmp_path):
    """The first layer's current is floored to whole weight units of the profile (1/scale)."""
    for scale in (64, 128):
        p = load_profile(copied(tmp_path, "loihi2", {"weights.scale": scale}))
        z = first_current(p)
        assert torch.equal(z, torch.floor(z * scale) / scale)
        assert not torch.equal(z * scale / 2, torch.floor(z * scale / 2))  # not on a coarser grid


@pytest.mark.parametrize("name", ["loihi2", "xylo-audio2", "truenorth"])
def test_profiles_show_prints_every_key(capsys, name):
    main(["profiles", "show", name])
    out = capsys.readouterr().out
    p = load_profile(name)
    assert out.splitlines()[0] == f"{p.name}: {p.description}"
    for key in schema_keys() - {"name", "description", "resources", "chip"}:
        section, leaf = key.split(".")
        if getattr(p, section) is not None:  # loihi2 has no [chip], xylo-audio2 no [resources]
            value = getattr(getattr(p, section), leaf)
            assert f"  {leaf} = {'unknown' if value is None else value}" in out  # None: TOML "unknown"
