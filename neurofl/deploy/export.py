"""Export a trained :class:`~neurofl.models.snn.SpikingMLP` as a NetX HDF5 network.

NetX (``lava.lib.dl.netx.hdf5.Network``) reads ``/layer/{i}`` groups. lava-dl has no network-level
exporter, so this module writes:

* ``/layer/0``: ``type = input`` with only a ``shape`` (C, H, W; NetX reads it reversed). Without a
  ``neuron`` group NetX creates no input process, so the encoded input enters the first Dense block
  directly, as it does in the SLAYER model.
* ``/layer/{1..L}``: each ``slayer.block.cuba.Dense`` block, written by the block's own
  ``export_hdf5`` (weights descaled to integer mantissas by ``profile.quantize_weight``; neuron
  ``iDecay``, ``vDecay``, ``vThMant``).
* ``/neurofl``: metadata NetX ignores (a JSON ``header`` attribute: model, profile, input encoding,
  time steps, dataset, SLAYER accuracy) so that ``neurofl verify`` can feed the same inputs. Its
  ``lava`` entry holds everything Lava needs beyond the layers (:func:`lava_loading`): NetX computes
  each synapse's weight exponent from the weights and reads none from the file, so a graded input's
  fraction bits cannot be stored as a layer setting; the file records them and the loading script
  (``netx_models/run_in_lava.py``, shown in docs/deploy.md) applies them.

Before writing, :func:`check_fits` proves the model fits the profile's chip.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from neurofl.deploy.resources import ResourceReport, estimate_resources
from neurofl.deploy.trace import STATE_BITS_LAVA, state_ranges
from neurofl.errors import UserError
from neurofl.io.atomic import atomic_write_bytes
from neurofl.models.checkpoint import arch_to_dict, profile_to_dict, versions
from neurofl.models.snn import GRADED_INPUT_FRAC_BITS

NETX_FORMAT = "neurofl-netx/2"
# Graded input payloads carry 6 fractional bits (NetX's default spike_exp = 6); the SNNs put graded
# input on this grid themselves (neurofl.models.snn.on_payload_grid), so the file and the chip see one input.
INPUT_FRAC_BITS = GRADED_INPUT_FRAC_BITS
# Lava DelayDense / NetX clamp synaptic delays at 62 steps.
MAX_DELAY = 62
# Lava's bit-accurate LIF: 17-bit threshold mantissa.
VTH_BITS = 17


def lava_loading(profile: Any) -> dict[str, int]:
    """How Lava must load and feed a network of ``profile`` (stored as the header's ``lava`` entry).

    input_message_bits : ``lava.lib.dl.netx.hdf5.Network(..., input_message_bits=...)``; 0 for binary
        spikes, the profile's payload bits for graded input
    input_frac_bits : graded inputs ``x`` are sent as integer payloads ``x * 2**input_frac_bits``, and
        the first synapse's ``weight_exp`` is lowered by as many bits, so the first layer's current is
        ``floor(sum_j w_j x_j)`` as on the chip (0 for binary spikes: nothing to do)
    """
    graded = profile.spikes.input_encoding == "direct"
    return {
        "input_message_bits": profile.spikes.payload_bits if graded else 0,
        "input_frac_bits": INPUT_FRAC_BITS if graded else 0,
    }


@dataclass(frozen=True)
class FitReport:
    """What :func:`check_fits` measured (all integers in hardware units)."""

    weight_min: int
    weight_max: int
    max_delay: int
    max_abs_current: int
    max_abs_voltage: int
    state_limit: int
    resources: ResourceReport


def _descaled_weights(block: Any) -> np.ndarray:
    return (
        block.synapse.pre_hook_fx(block.synapse.weight, descale=True)
        .detach()
        .reshape(block.synapse.weight.shape[0], -1)  # (out, in) dense; (out, C_in * k * k) conv
        .numpy()
    )


def check_fits(model: Any, x_calib: torch.Tensor, seed: int = 0) -> FitReport:
    """Check that ``model`` runs on its profile's chip; raise :class:`UserError` naming the first violation.

    Checks: integer weight mantissas on the 8-bit grid (even, in [-256, 254]); synaptic delays
    <= 62; threshold mantissa < 2**17; current and voltage within 24-bit signed range on the
    calibration inputs ``x_calib`` (N, *input_shape); neurons, axons and synaptic memory within the
    profile's per-core limits and core count; graded input needs graded spikes.
    """
    from neurofl.deploy.trace import weighted
    from neurofl.models.conv import ConvSNN
    from neurofl.models.snn import SpikingMLP

    if not isinstance(model, (SpikingMLP, ConvSNN)):
        raise UserError(f"only SLAYER SNNs (SpikingMLP, ConvSNN) can be exported to NetX, not {type(model).__name__}")
    profile = model.profile
    name = profile.name
    if not profile.weights.quantized or profile.weights.bits != 8:
        raise UserError(
            f"profile '{name}': weights are not 8-bit quantized (weights.quantized = {profile.weights.quantized}, "
            f"bits = {profile.weights.bits}); Lava/Loihi Dense synapses need 8-bit weight mantissas"
        )
    if profile.resources is None:
        raise UserError(f"profile '{name}' has no [resources] section, so the per-core fit cannot be checked")
    wmin, wmax, dmax = 0, 0, 1
    for i, (_, block) in enumerate(weighted(model)):  # Flatten blocks have no synapse
        w = _descaled_weights(block)
        if not np.all(w == np.round(w)) or np.any(np.round(w).astype(np.int64) % 2):
            raise UserError(f"layer {i}: weights are not on the 8-bit grid (even integer mantissas)")
        if w.min() < -256 or w.max() > 254:
            raise UserError(f"layer {i}: weight mantissa range [{w.min():.0f}, {w.max():.0f}] exceeds [-256, 254]")
        wmin, wmax = min(wmin, int(w.min())), max(wmax, int(w.max()))
        if block.delay is not None:
            d = int(torch.floor(block.delay.delay).max())
            if d > MAX_DELAY:
                raise UserError(f"layer {i}: synaptic delay {d} exceeds Lava's maximum of {MAX_DELAY} steps")
            dmax = max(dmax, d + 1)
        vth = block.neuron.v_th_mant
        if not 0 < vth < (1 << VTH_BITS):
            raise UserError(
                f"layer {i}: threshold mantissa {vth} outside Lava's 17-bit range (1..{(1 << VTH_BITS) - 1})"
            )
    if profile.spikes.input_encoding == "direct" and profile.spikes.payload != "graded":
        raise UserError(f"profile '{name}': direct input encoding needs graded spikes")
    if profile.spikes.input_encoding == "regular":  # the file's header and runner know direct and rate only
        raise UserError(f"profile '{name}': the deterministic rate code (input_encoding = 'regular') is not exported")
    if profile.weights.scale != profile.neuron.threshold_scale:  # NetX: weights and vThMant in one unit
        raise UserError(
            f"profile '{name}': weights.scale = {profile.weights.scale} differs from neuron.threshold_scale = "
            f"{profile.neuron.threshold_scale}; NetX stores weight and threshold mantissas in the same units"
        )
    state_bits = profile.neuron.state_bits  # the profile's registers, at most Lava LIF's 24 bits
    if state_bits > STATE_BITS_LAVA:
        raise UserError(f"profile '{name}': neuron.state_bits = {state_bits} exceeds Lava LIF's {STATE_BITS_LAVA}")
    ranges = state_ranges(model, x_calib, seed)
    limit = (1 << (state_bits - 1)) - 1
    for i, (cur, volt) in enumerate(ranges):
        if cur > limit or volt > limit:
            raise UserError(
                f"layer {i}: states leave the {state_bits}-bit range on the calibration data (|current| up to {cur}, "
                f"|voltage| up to {volt}, limit {limit})"
            )
    res = estimate_resources(model, profile, x_calib, seed)
    if res.problems:
        raise UserError(f"profile '{name}': model does not fit the chip: {res.problems[0]}")
    return FitReport(
        wmin,
        wmax,
        dmax,
        max((c for c, _ in ranges), default=0),
        max((v for _, v in ranges), default=0),
        limit,
        res,
    )


def export_netx(model: Any, path: Path, x_calib: torch.Tensor, meta: dict[str, Any], seed: int = 0) -> FitReport:
    """Check the fit, then write ``model`` as a NetX HDF5 file at ``path`` (atomically).

    The file is built in memory and read back with the reader's own checks
    (:func:`neurofl.deploy.netx.read_layers`, :func:`neurofl.deploy.netx.check_netx`) before a byte
    reaches ``path``: what ``neurofl verify`` would refuse is refused here, and nothing is written.

    Parameters
    ----------
    model : a trained ``SpikingMLP`` or ``ConvSNN``
    path : output ``.net`` file
    x_calib : (N, *input_shape) calibration inputs in [0, 1] (for the 24-bit state check and spike counts)
    meta : extra header fields (dataset, accuracy, ...), stored under ``/neurofl``

    Returns
    -------
    The :class:`FitReport` of the checks that passed.

    Raises
    ------
    UserError
        The model does not fit its chip, or the file would not pass the reader (one line naming
        ``path`` and what is wrong).
    """
    why = model.arch.neuron.lava_incompatibility()
    if why is not None:
        raise UserError(f"{path}: cannot export this model to NetX: {why}")
    fit = check_fits(model, x_calib, seed)
    profile = model.profile
    header = {
        "format": NETX_FORMAT,
        "kind": "snn",
        "architecture": arch_to_dict(model.arch),
        "profile": profile_to_dict(profile),
        "input_encoding": profile.spikes.input_encoding,
        "input_frac_bits": lava_loading(profile)["input_frac_bits"],
        "lava": lava_loading(profile),
        "time_steps": model.time_steps,
        "versions": versions(),
        **meta,
    }

    from neurofl.deploy.netx import check_netx, read_layers

    buf = io.BytesIO()
    with torch.no_grad(), h5py.File(buf, "w") as f:
        layer = f.create_group("layer")
        g = layer.create_group("0")
        g.create_dataset("type", (1,), "S10", [b"input"])
        g.create_dataset("shape", data=np.array(model.arch.input_shape[:3]))  # (C, H, W); events: no T
        # SLAYER's own export_hdf5 per block: dense, conv (weights (out, in, kH, kW)), flatten
        for i, block in enumerate(model.blocks, start=1):
            block.export_hdf5(layer.create_group(str(i)))
        f.create_group("neurofl").attrs["header"] = json.dumps(header)
    with h5py.File(buf, "r") as f:  # the reader's checks, on the bytes about to be written
        check_netx(Path(path), *read_layers(f, Path(path)))
    atomic_write_bytes(Path(path), buf.getvalue())
    return fit
