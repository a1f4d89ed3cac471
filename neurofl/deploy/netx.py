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

from neurofl.checkpoint import MAX_PARAMETERS, MAX_WIDTH, arch_from_dict, profile_from_dict
from neurofl.deploy.export import NETX_FORMAT
from neurofl.errors import UserError
from neurofl.models import Architecture
from neurofl.profiles import HardwareProfile

_NEURON_KEYS = ("type", "iDecay", "vDecay", "vThMant")
# Everything NetX reads is checked against the file's metadata before any array is read: all
# datasets together may declare at most this many bytes (a 50M-weight float32 model is 200 MB).
MAX_DATASET_BYTES = 4 * MAX_PARAMETERS + (1 << 20)
MAX_HEADER_CHARS = 1 << 20
MAX_TIME_STEPS = 1 << 16
# Lava Dense keeps weight mantissas in [-256, 255] (lava/proc/dense/models.py); decays are on the
# 12-bit grid (0..4096) and the bit-accurate LIF's threshold mantissa has 17 bits.
WEIGHT_RANGE = (-256, 255)
NEURON_RANGES = {"iDecay": (0, 4096), "vDecay": (0, 4096), "vThMant": (1, (1 << 17) - 1), "refDelay": (0, 1 << 16)}
MAX_DELAY_VALUE = 1 << 16


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


def _check_tree(f: h5py.File, path: Path) -> None:
    """Hard links only (an external or soft link would read another file), and a bounded total
    size declared by the datasets' metadata -- nothing is read yet."""
    total = 0
    stack: list[tuple[str, h5py.Group]] = [("", f)]
    while stack:
        name, g = stack.pop()
        for key in g.keys():
            link = g.get(key, getlink=True)
            where = f"{name}/{key}"
            if not isinstance(link, h5py.HardLink):
                raise UserError(f"{path}: {where} is a {type(link).__name__}; NetX files hold hard links only")
            obj = g[key]
            if isinstance(obj, h5py.Group):
                stack.append((where, obj))
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual or obj.external:
                    raise UserError(f"{path}: {where} stores its data outside the file")
                size = 1
                for d in obj.shape or ():
                    size *= int(d)
                total += size * obj.dtype.itemsize
                if total > MAX_DATASET_BYTES:
                    raise UserError(
                        f"{path}: {where} {tuple(obj.shape)} makes the datasets claim more than "
                        f"{MAX_DATASET_BYTES} bytes; refused before reading"
                    )


def _dataset(g: h5py.Group, key: str, where: str) -> h5py.Dataset:
    if key not in g or not isinstance(g[key], h5py.Dataset):
        raise UserError(f"{where}: no '{key}' dataset")
    return g[key]


def _string(g: h5py.Group, key: str, where: str) -> str:
    ds = _dataset(g, key, where)
    if ds.size != 1 or ds.dtype.kind not in "SOU":
        raise UserError(f"{where}/{key}: must be one string, got {ds.dtype} of shape {ds.shape}")
    v = ds[()]
    v = v.reshape(-1)[0] if isinstance(v, np.ndarray) else v
    if isinstance(v, bytes):
        try:
            return v.decode("ascii")
        except UnicodeDecodeError:
            raise UserError(f"{where}/{key}: not an ASCII string") from None
    if not isinstance(v, str):
        raise UserError(f"{where}/{key}: must be a string, got {type(v).__name__}")
    return v


def _numbers(ds: h5py.Dataset, where: str, lo: float, hi: float) -> np.ndarray:
    """A numeric dataset of integer values in [lo, hi] (as NetX casts them to int)."""
    if ds.dtype.kind not in "iuf":
        raise UserError(f"{where}: must be numeric, got dtype {ds.dtype}")
    v = np.asarray(ds[()], dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise UserError(f"{where}: holds NaN or infinite values")
    if v.size and (v.min() < lo or v.max() > hi):
        raise UserError(f"{where}: values in [{v.min():g}, {v.max():g}], expected integers in [{lo}, {hi}]")
    if not np.array_equal(v, np.round(v)):
        raise UserError(f"{where}: holds non-integer values")
    return v


def _scalar(g: h5py.Group, key: str, where: str, lo: float, hi: float) -> int:
    ds = _dataset(g, key, where)
    if ds.size != 1:
        raise UserError(f"{where}/{key}: must be a scalar, got shape {ds.shape}")
    return int(_numbers(ds, f"{where}/{key}", lo, hi).reshape(-1)[0])


def _dense_layer(g: h5py.Group, where: str, inputs: int) -> int:
    """Check one dense layer's datasets; return its neuron count."""
    w = _dataset(g, "weight", where)
    if w.ndim != 2:
        raise UserError(f"{where}: needs a 2-D 'weight' dataset, got shape {w.shape}")
    if w.shape[1] != inputs:
        raise UserError(f"{where}: weight has {w.shape[1]} inputs, the previous layer has {inputs} neurons")
    if not 1 <= w.shape[0] <= MAX_WIDTH:
        raise UserError(f"{where}: weight has {w.shape[0]} outputs, expected 1..{MAX_WIDTH}")
    _numbers(w, f"{where}/weight", *WEIGHT_RANGE)
    if "neuron" not in g or not isinstance(g["neuron"], h5py.Group):
        raise UserError(f"{where}: missing neuron parameter group 'neuron'")
    n = g["neuron"]
    missing = [k for k in _NEURON_KEYS if k not in n]
    if missing:
        raise UserError(f"{where}: missing neuron parameter 'neuron/{missing[0]}'")
    neuron_type = _string(n, "type", f"{where}/neuron")
    if neuron_type not in ("CUBA", "LOIHI"):
        raise UserError(f"{where}/neuron/type: '{neuron_type}' is not a CUBA neuron (neurofl exports CUBA)"[:300])
    for key, (lo, hi) in NEURON_RANGES.items():
        if key in n or key in _NEURON_KEYS:
            _scalar(n, key, f"{where}/neuron", lo, hi)
    for key in ("bias", "delay"):
        if key in g:
            ds = _dataset(g, key, where)
            if ds.size not in (1, w.shape[0], w.shape[1], w.size):
                raise UserError(f"{where}/{key}: shape {ds.shape} does not fit weight {w.shape}")
            _numbers(ds, f"{where}/{key}", -MAX_DELAY_VALUE if key == "bias" else 0, MAX_DELAY_VALUE)
    return int(w.shape[0])


def _read_layers(f: h5py.File, path: Path) -> tuple[list[int], dict[str, Any]]:
    _check_tree(f, path)
    if "layer" not in f or not isinstance(f["layer"], h5py.Group) or len(f["layer"]) == 0:
        raise UserError(f"{path}: not a NetX network (no /layer groups)")
    layers = f["layer"]
    keys = sorted(layers.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if keys != [str(i) for i in range(len(keys))]:
        raise UserError(f"{path}: /layer groups must be named 0..{len(keys) - 1}, found {sorted(layers.keys())}"[:300])
    if any(not isinstance(layers[k], h5py.Group) for k in keys):
        raise UserError(f"{path}: every /layer entry must be a group")
    if _string(layers["0"], "type", f"{path}: /layer/0") != "input":
        raise UserError(f"{path}: /layer/0 must be the input layer")
    shape = _dataset(layers["0"], "shape", f"{path}: /layer/0")
    if not 1 <= shape.size <= 4 or shape.ndim > 1:
        raise UserError(f"{path}: /layer/0/shape must list 1 to 4 dimensions, got shape {shape.shape}")
    dims = _numbers(shape, f"{path}: /layer/0/shape", 1, MAX_WIDTH)
    widths = [int(np.prod(dims.astype(np.int64)))]
    if widths[0] > MAX_WIDTH:
        raise UserError(f"{path}: /layer/0/shape {dims.astype(int).tolist()} has more than {MAX_WIDTH} inputs")
    for k in keys[1:]:
        where = f"{path}: /layer/{k}"
        t = _string(layers[k], "type", where)
        if t != "dense":
            raise UserError(f"{where}: layer type '{t}' is not supported (neurofl exports dense layers)"[:300])
        widths.append(_dense_layer(layers[k], where, widths[-1]))
    if "neurofl" not in f or "header" not in f["neurofl"].attrs:
        raise UserError(f"{path}: no /neurofl header (export the model with `neurofl export`)")
    raw = f["neurofl"].attrs["header"]
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str) or len(raw) > MAX_HEADER_CHARS:
        raise UserError(f"{path}: /neurofl header must be a JSON string of at most {MAX_HEADER_CHARS} characters")
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise UserError(f"{path}: /neurofl header is not valid JSON ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise UserError(f"{path}: /neurofl header must be a JSON object")
    return widths, header


def read_netx(path: Path) -> NetxFile:
    """Open ``path`` and check it is a neurofl-exported NetX network.

    Every dataset's declared size is checked from the file's metadata before anything is read
    (at most :data:`MAX_DATASET_BYTES` in all), then every value NetX will use: weights are finite
    integers in Lava's mantissa range, neuron parameters scalars in their bit ranges.

    Raises
    ------
    UserError
        Missing file, not HDF5 (or truncated), missing ``/layer`` groups, a layer type other than
        ``input``/``dense``, wrong weight shapes or values, missing or out-of-range neuron
        parameters, a missing or malformed neurofl header.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except Exception:  # noqa: BLE001 - h5py raises OSError and others for non-HDF5 or truncated files
        raise UserError(f"{path}: not a readable HDF5 file (truncated or another format)") from None
    try:
        with f:
            widths, header = _read_layers(f, path)
    except UserError:
        raise
    except MemoryError:
        raise UserError(f"{path}: a dataset is too large to read") from None
    except Exception as e:  # noqa: BLE001 - corrupt HDF5 object headers surface as many error types
        raise UserError(f"{path}: malformed NetX file ({type(e).__name__}: {str(e)[:120]})") from None
    if header.get("format") != NETX_FORMAT:
        raise UserError(f"{path}: unsupported header format {header.get('format')!r} (expected {NETX_FORMAT})"[:300])
    for key in ("architecture", "profile", "input_encoding", "input_frac_bits", "time_steps"):
        if key not in header:
            raise UserError(f"{path}: /neurofl header lacks '{key}'")
    arch = arch_from_dict(header["architecture"], f"{path} header")
    profile = profile_from_dict(header["profile"], f"{path} header")
    encoding = header["input_encoding"]
    if encoding not in ("direct", "rate"):
        raise UserError(f"{path}: header input_encoding must be 'direct' or 'rate', got {encoding!r}"[:300])
    frac, steps = header["input_frac_bits"], header["time_steps"]
    max_frac = profile.spikes.payload_bits if encoding == "direct" else 0
    if isinstance(frac, bool) or not isinstance(frac, int) or not 0 <= frac <= max_frac:
        raise UserError(f"{path}: header input_frac_bits must be an integer in 0..{max_frac}, got {frac!r}"[:300])
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_TIME_STEPS:
        raise UserError(f"{path}: header time_steps must be an integer in 1..{MAX_TIME_STEPS}, got {steps!r}"[:300])
    nf = NetxFile(path, header, profile, arch, tuple(widths), encoding, frac, steps)
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
