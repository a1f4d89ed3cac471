"""Read and validate a NetX file written by :func:`neurofl.deploy.export.export_netx`, and build its
Lava network with ``lava.lib.dl.netx.hdf5.Network``."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from neurofl.checkpoint import arch_from_dict, profile_from_dict
from neurofl.deploy.export import NETX_FORMAT
from neurofl.errors import UserError
from neurofl.models import Architecture
from neurofl.profiles import HardwareProfile

_NEURON_KEYS = ("type", "iDecay", "vDecay", "vThMant")


@dataclass(frozen=True)
class NetxFile:
    """A validated NetX file and the neurofl header stored beside its layers.

    widths : (inputs, layer 1 neurons, ..., outputs)
    input_frac_bits : fractional bits of graded input payloads (0 for binary spikes)
    """

    path: Path
    header: dict[str, Any]
    profile: HardwareProfile
    arch: Architecture
    widths: tuple[int, ...]
    input_encoding: str
    input_frac_bits: int
    time_steps: int

    @property
    def graded_input(self) -> bool:
        return self.input_encoding == "direct"


def _layer_type(g: h5py.Group, where: str) -> str:
    if "type" not in g:
        raise UserError(f"{where}: no 'type' dataset")
    v = g["type"][()]
    v = v[0] if getattr(v, "shape", ()) else v
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def read_netx(path: Path) -> NetxFile:
    """Open ``path`` and check it is a neurofl-exported NetX network.

    Raises
    ------
    UserError
        Missing file, not HDF5 (or truncated), missing ``/layer`` groups, a layer type other than
        ``input``/``dense``, wrong weight shapes, missing neuron parameters or neurofl header.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise UserError(f"{path}: not a readable HDF5 file (truncated or another format)") from None
    with f:
        if "layer" not in f or not isinstance(f["layer"], h5py.Group) or len(f["layer"]) == 0:
            raise UserError(f"{path}: not a NetX network (no /layer groups)")
        layers = f["layer"]
        keys = sorted(layers.keys(), key=lambda k: int(k) if k.isdigit() else -1)
        if keys != [str(i) for i in range(len(keys))]:
            raise UserError(f"{path}: /layer groups must be named 0..{len(keys) - 1}, found {sorted(layers.keys())}")
        if _layer_type(layers["0"], f"{path}: /layer/0") != "input":
            raise UserError(f"{path}: /layer/0 must be the input layer")
        widths: list[int] = []
        try:
            widths.append(int(np.prod(layers["0"]["shape"][()])))
            for k in keys[1:]:
                where = f"{path}: /layer/{k}"
                g = layers[k]
                t = _layer_type(g, where)
                if t != "dense":
                    raise UserError(f"{where}: layer type '{t}' is not supported (neurofl exports dense layers)")
                w = g["weight"][()] if "weight" in g else None
                if w is None or w.ndim != 2:
                    raise UserError(f"{where}: needs a 2-D 'weight' dataset")
                if w.shape[1] != widths[-1]:
                    raise UserError(
                        f"{where}: weight has {w.shape[1]} inputs, the previous layer has {widths[-1]} neurons"
                    )
                missing = [n for n in _NEURON_KEYS if f"neuron/{n}" not in g]
                if missing:
                    raise UserError(f"{where}: missing neuron parameter 'neuron/{missing[0]}'")
                widths.append(int(w.shape[0]))
            if "neurofl" not in f or "header" not in f["neurofl"].attrs:
                raise UserError(f"{path}: no /neurofl header (export the model with `neurofl export`)")
            header = json.loads(f["neurofl"].attrs["header"])
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path}: malformed NetX file ({type(e).__name__}: {e})") from None
    if header.get("format") != NETX_FORMAT:
        raise UserError(f"{path}: unsupported header format {header.get('format')!r} (expected {NETX_FORMAT})")
    try:
        arch = arch_from_dict(header["architecture"])
        profile = profile_from_dict(header["profile"], f"{path} header")
        nf = NetxFile(
            path,
            header,
            profile,
            arch,
            tuple(widths),
            str(header["input_encoding"]),
            int(header["input_frac_bits"]),
            int(header["time_steps"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: malformed /neurofl header ({type(e).__name__}: {e})") from None
    if tuple(arch.widths) != nf.widths:
        raise UserError(f"{path}: layer widths {nf.widths} disagree with the header's architecture {arch.widths}")
    return nf


def build_network(nf: NetxFile, reset_interval: int | None = None) -> Any:
    """The NetX ``Network`` process for ``nf``, loaded unchanged from the file.

    For graded input (``direct`` encoding) payloads carry ``input_frac_bits`` fractional bits, so the
    first Dense synapse's weight exponent is lowered by that many bits (a register on the chip,
    not stored in NetX files).
    """
    from lava.lib.dl.netx.hdf5 import Network

    bits = nf.profile.spikes.payload_bits if nf.graded_input else 0
    try:
        # NetX prints weight-fitting notes on stdout; keep stdout clean for --json
        with contextlib.redirect_stdout(io.StringIO()):
            # reset_offset=1: the input RingBuffer and the first Dense buffer delay the input by 2 steps
            net = Network(str(nf.path), input_message_bits=bits, reset_interval=reset_interval, reset_offset=1)
    except Exception as e:  # noqa: BLE001 - NetX raises bare exceptions for bad files
        raise UserError(f"{nf.path}: NetX could not build the network ({type(e).__name__}: {e})") from None
    if nf.input_frac_bits:
        syn = net.layers[0].synapse
        syn.proc_params.overwrite("weight_exp", int(syn.proc_params["weight_exp"]) - nf.input_frac_bits)
    return net
