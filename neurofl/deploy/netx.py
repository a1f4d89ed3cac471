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

from neurofl.deploy.bias_delay import (
    BIAS_RANGE,
    MAX_DELAY_SYNAPSES,
    MAX_NETX_DELAY,
    SAMPLE_START_KEY,
    SAMPLE_STEPS_KEY,
    bias_shape_ok,
    delay_shape_ok,
    refuse_graded_delays,
)
from neurofl.deploy.export import NETX_FORMAT, lava_loading
from neurofl.deploy.trace import arch_widths
from neurofl.errors import UserError
from neurofl.io import limits
from neurofl.io.h5check import check_tree, read_hdf5
from neurofl.io.safeio import regular_file
from neurofl.models import Architecture
from neurofl.models.checkpoint import MAX_WIDTH, arch_from_dict, check_accuracy, header_seed, profile_from_dict
from neurofl.profiles import HardwareProfile

_NEURON_KEYS = ("type", "iDecay", "vDecay", "vThMant")
# Everything NetX reads is checked against the file's metadata before any array is read: all
# datasets together may declare at most this many bytes (16M float32 weights), each stored
# uncompressed and in full (so what the file declares is what it holds: no decompression or
# fill-value amplification), and only the keys neurofl's exporter writes may appear.
MAX_DATASET_BYTES = (64 << 20) + (1 << 20)
MAX_HEADER_CHARS = 1 << 20
# Groups and datasets in one file: a layer holds about 20, and no network here comes near 200 layers.
MAX_NETX_OBJECTS = 4096
MAX_TIME_STEPS = limits.MAX_TIME_STEPS
# Lava Dense keeps weight mantissas in [-256, 255] (lava/proc/dense/models.py); decays are on the
# 12-bit grid (0..4096) and the bit-accurate LIF's threshold mantissa has 17 bits.
WEIGHT_RANGE = (-256, 255)
NEURON_RANGES = {"iDecay": (0, 4096), "vDecay": (0, 4096), "vThMant": (1, (1 << 17) - 1), "refDelay": (0, 1 << 16)}
# The datasets of each kind of group (what `neurofl export` and SLAYER's export_hdf5 write, plus a
# dense layer's neuron `bias` and synaptic `delay`, which the reference models: deploy/bias_delay.py);
# any other key (messageBits, weight_rec, ...) would change what NetX builds without the SLAYER
# reference seeing it, and is refused. A conv layer's bias and delay are refused by name (_supported).
INPUT_KEYS = {"type", "shape"}
DENSE_KEYS = {"type", "shape", "inFeatures", "outFeatures", "weight", "neuron", "bias", "delay"}
CONV_KEYS = {
    "type", "shape", "inChannels", "outChannels", "kernelSize", "stride", "padding", "dilation", "groups", "weight",
    "neuron",
}  # fmt: skip
# why a conv layer's bias or delay is refused (lava-dl 0.6.0's create_conv)
CONV_REFUSALS = {
    "bias": "NetX broadcasts a conv layer's bias over its (W, H, C) neurons, which neurofl's SLAYER reference "
    "does not model",
    "delay": "NetX ignores a conv layer's delay (create_conv builds a Conv synapse without delays), so Lava "
    "would not run what the file says",
}
FLATTEN_KEYS = {"type", "shape"}
# conv geometry neurofl builds (ConvArchitecture: kernel <= 31, no dilation, no groups)
MAX_KERNEL = 31
MAX_CHANNELS = 4096
NEURON_KEYS = {"type", "iDecay", "vDecay", "vThMant", "refDelay", "gradedSpike"}
# SLAYER writes these training-only parameters (surrogate gradient, weight exponent hint) beside
# LOIHI/CUBA neurons; NetX reads none of them, so they change nothing in Lava
IGNORED_NEURON_KEYS = {"scaleRho", "tauRho", "theta", "wgtExp"}
# layer types NetX names but cannot build (lava-dl 0.6.0 raises NotImplementedError), and those it builds
NETX_UNBUILT = {"pool", "convT", "unpool", "average", "concat"}
NETX_TYPES = {"input", "dense", "dense_rec", "dense_comp", "conv", "flatten"}
# dtypes accepted for numbers: integers and float32/float64 (float16 cannot hold every mantissa
# NetX computes with; complex and compound types are refused)
_NUMERIC = {"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8"}


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


def _only_keys(g: h5py.Group, allowed: set[str], where: str) -> None:
    extra = sorted(set(g.keys()) - allowed)
    if extra:
        hold = ", ".join(sorted(allowed))
        raise UserError(f"{where}: unexpected entry '{extra[0]}' (neurofl's NetX files hold {hold})"[:300])


def _dataset(g: h5py.Group, key: str, where: str) -> h5py.Dataset:
    if key not in g or not isinstance(g[key], h5py.Dataset):
        raise UserError(f"{where}: no '{key}' dataset")
    return g[key]


def _string(g: h5py.Group, key: str, where: str) -> str:
    """One printable ASCII string (fixed-length or variable-length), as NetX reads it (the first
    element). A NUL inside the text, or any control character, is refused."""
    ds = _dataset(g, key, where)
    if ds.size != 1 or ds.dtype.kind not in "SO":
        raise UserError(f"{where}/{key}: must be one string, got {ds.dtype} of shape {ds.shape}")
    v = ds[()]
    raw: bytes | None
    if isinstance(v, np.ndarray):
        raw = v.reshape(-1)[:1].tobytes()  # fixed-length: the padded bytes, NULs included
        v = v.reshape(-1)[0]
        raw = raw.rstrip(b"\x00") if ds.dtype.kind == "S" else v
    else:
        raw = v if isinstance(v, bytes) else None
    if not isinstance(v, bytes) or not isinstance(raw, bytes):
        raise UserError(f"{where}/{key}: must be a byte string, got {type(v).__name__}")
    if not raw or any(c < 0x20 or c > 0x7E for c in raw):
        raise UserError(f"{where}/{key}: not a printable ASCII string ({raw[:40]!r})"[:300])
    return raw.decode("ascii")


def _numbers(ds: h5py.Dataset, where: str, lo: float, hi: float) -> np.ndarray:
    """A numeric dataset of integer values in [lo, hi] (as NetX casts them to int)."""
    if ds.dtype.kind == "b" or ds.dtype.str.lstrip("<>|=") not in _NUMERIC:
        raise UserError(f"{where}: must be integers or float32/float64 numbers, got dtype {ds.dtype}")
    v = np.asarray(ds[()])
    if v.dtype.kind == "f":
        if not np.all(np.isfinite(v)):
            raise UserError(f"{where}: holds NaN or infinite values")
        if not np.array_equal(v, np.round(v)):
            raise UserError(f"{where}: holds non-integer values")
    if v.size and (v.min() < lo or v.max() > hi):
        raise UserError(f"{where}: values in [{v.min():g}, {v.max():g}], expected integers in [{lo}, {hi}]")
    return v


def _scalar(g: h5py.Group, key: str, where: str, lo: float, hi: float) -> int:
    ds = _dataset(g, key, where)
    if ds.size != 1 or ds.ndim > 1:
        raise UserError(f"{where}/{key}: must be a scalar, got shape {ds.shape}")
    return int(_numbers(ds, f"{where}/{key}", lo, hi).reshape(-1)[0])


def _pair(g: h5py.Group, key: str, where: str, lo: int, hi: int) -> tuple[int, int]:
    """A scalar or 2-vector of integers in [lo, hi] (NetX's conv ``stride``, ``padding``, ...), as (H, W)."""
    ds = _dataset(g, key, where)
    if ds.ndim > 1 or ds.size not in (1, 2):
        raise UserError(f"{where}/{key}: must be one integer or two, got shape {ds.shape}")
    v = _numbers(ds, f"{where}/{key}", lo, hi).reshape(-1).astype(np.int64)
    return (int(v[0]), int(v[-1]))


def conv_output_map(
    g: h5py.Group, where: str, inputs: tuple[int, ...], out_c: int, kh: int, kw: int
) -> tuple[int, int, int]:
    """The (C, H, W) output map of a conv layer ``g`` (its ``stride`` and ``padding``, kernel
    ``kh`` x ``kw``, ``out_c`` channels) on an input map ``inputs`` (C, H, W), checked against the
    layer's own ``shape`` and :data:`MAX_WIDTH` before any array is read."""
    stride = _pair(g, "stride", where, 1, MAX_KERNEL)
    padding = _pair(g, "padding", where, 0, MAX_KERNEL)
    size = []
    for n, k, s, pad in zip(inputs[1:], (kh, kw), stride, padding, strict=True):
        m = (n + 2 * pad - k) // s + 1
        if m < 1:
            raise UserError(f"{where}: kernel {k}, stride {s}, padding {pad} leave no output of an input of {n}")
        size.append(m)
    out = (out_c, size[0], size[1])
    if out_c * size[0] * size[1] > MAX_WIDTH:
        raise UserError(f"{where}: output map {out} has more than {MAX_WIDTH} neurons")
    shape = _dataset(g, "shape", where)
    if shape.ndim != 1 or shape.size != 3 or tuple(_numbers(shape, f"{where}/shape", 1, MAX_WIDTH).tolist()) != out:
        raise UserError(f"{where}/shape: must be {list(out)}, the (C, H, W) its weight, stride and padding give")
    return out


def _conv_layer(g: h5py.Group, where: str, inputs: tuple[int, int, int]) -> tuple[int, int, int]:
    """Check one conv layer (SLAYER's ``cuba.Conv.export_hdf5``) against its input map (C, H, W);
    return its output map (C, H, W). Shapes are checked from the metadata before any array is read."""
    _only_keys(g, CONV_KEYS, where)
    w = _dataset(g, "weight", where)
    if w.ndim != 4:
        raise UserError(f"{where}: needs a 4-D 'weight' dataset (out, in, kH, kW), got shape {w.shape}")
    out_c, in_c, kh, kw = (int(d) for d in w.shape)
    if in_c != inputs[0]:
        raise UserError(f"{where}: weight has {in_c} input channels, the previous layer has {inputs[0]}")
    if not 1 <= out_c <= MAX_CHANNELS or not (1 <= kh <= MAX_KERNEL and 1 <= kw <= MAX_KERNEL):
        raise UserError(
            f"{where}: weight shape {w.shape}: expected 1..{MAX_CHANNELS} output channels, kernels of 1..{MAX_KERNEL}"
        )
    if _pair(g, "dilation", where, 1, MAX_KERNEL) != (1, 1):
        raise UserError(f"{where}/dilation: must be 1 (neurofl's conv SNNs have no dilation)")
    if _scalar(g, "groups", where, 1, MAX_CHANNELS) != 1:
        raise UserError(f"{where}/groups: must be 1 (neurofl's conv SNNs have no grouped convolutions)")
    out = conv_output_map(g, where, inputs, out_c, kh, kw)
    for key, expected in (("inChannels", in_c), ("outChannels", out_c)):
        if key in g and _scalar(g, key, where, 1, MAX_CHANNELS) != expected:
            raise UserError(f"{where}/{key}: must be {expected}, as the weight's shape {w.shape} says")
    if "kernelSize" in g and _pair(g, "kernelSize", where, 1, MAX_KERNEL) != (kh, kw):
        raise UserError(f"{where}/kernelSize: must be {[kh, kw]}, as the weight's shape {w.shape} says")
    if "neuron" not in g or not isinstance(g["neuron"], h5py.Group):
        raise UserError(f"{where}: a conv layer needs a 'neuron' group (NetX reads it unconditionally)")
    _numbers(w, f"{where}/weight", *WEIGHT_RANGE)
    _neuron_group(g["neuron"], where)
    return out


def _flatten_layer(g: h5py.Group, where: str, inputs: tuple[int, ...]) -> int:
    _only_keys(g, FLATTEN_KEYS, where)
    shape = _dataset(g, "shape", where)
    flat = [int(np.prod(inputs)), 1, 1]  # SLAYER's Flatten writes (C*H*W, 1, 1); NetX does not read it
    if shape.ndim != 1 or shape.size != 3 or _numbers(shape, f"{where}/shape", 1, MAX_WIDTH).tolist() != flat:
        raise UserError(f"{where}/shape: must be {flat}, the C*H*W of the previous layer")
    return int(np.prod(inputs))


def _dense_layer(g: h5py.Group, where: str, inputs: int) -> int:
    """Check one dense layer's datasets; return its neuron count."""
    w = _dataset(g, "weight", where)
    if w.ndim != 2:
        raise UserError(f"{where}: needs a 2-D 'weight' dataset, got shape {w.shape}")
    if w.shape[1] != inputs:
        raise UserError(f"{where}: weight has {w.shape[1]} inputs, the previous layer has {inputs} neurons")
    if not 1 <= w.shape[0] <= MAX_WIDTH:
        raise UserError(f"{where}: weight has {w.shape[0]} outputs, expected 1..{MAX_WIDTH}")
    _only_keys(g, DENSE_KEYS, where)
    _numbers(w, f"{where}/weight", *WEIGHT_RANGE)
    outputs = int(w.shape[0])
    # NetX sizes the layer's neurons by 'shape' and trusts it: it must say what the weight says
    shape = _dataset(g, "shape", where)
    if shape.size != 1 or shape.ndim > 1 or _scalar(g, "shape", where, 1, MAX_WIDTH) != outputs:
        raise UserError(f"{where}/shape: must be [{outputs}], the weight's output count")
    for key, expected in (("inFeatures", inputs), ("outFeatures", outputs)):
        if key in g and _scalar(g, key, where, 1, MAX_WIDTH) != expected:
            raise UserError(f"{where}/{key}: must be {expected}, as the weight's shape {w.shape} says")
    _bias_delay(g, where, outputs, inputs)
    if "neuron" not in g:
        if "bias" in g:
            raise UserError(f"{where}/bias: a layer without a 'neuron' group has no neuron to bias")
        return outputs  # valid in NetX: a non-spiking integrator; reference_model refuses it against a header
    if not isinstance(g["neuron"], h5py.Group):
        raise UserError(f"{where}: 'neuron' must be a group of neuron parameters")
    _neuron_group(g["neuron"], where)
    return outputs


def _bias_delay(g: h5py.Group, where: str, outputs: int, inputs: int) -> None:
    """Check a dense layer's optional neuron ``bias`` and synaptic ``delay`` (shapes from the
    metadata first, then values), as NetX reads them: a bias is a scalar or one 13-bit integer per
    neuron; a delay a scalar, one per output, one per input or one per synapse, whole steps in
    0..62 (NetX clamps larger ones), on a layer small enough for Lava's DelayDense."""
    if "bias" in g:
        ds = _dataset(g, "bias", where)
        if not bias_shape_ok(tuple(ds.shape), outputs):
            raise UserError(f"{where}/bias: shape {ds.shape}, expected a scalar or ({outputs},), one per neuron")
        _numbers(ds, f"{where}/bias", *BIAS_RANGE)
    if "delay" in g:
        ds = _dataset(g, "delay", where)
        if not delay_shape_ok(tuple(ds.shape), outputs, inputs):
            raise UserError(
                f"{where}/delay: shape {ds.shape}, expected a scalar, ({outputs},), ({inputs},) or "
                f"({outputs}, {inputs})"
            )
        if outputs * inputs > MAX_DELAY_SYNAPSES:
            raise UserError(
                f"{where}/delay: a delayed layer of {outputs} x {inputs} synapses is more than Lava's DelayDense "
                f"can simulate here ({MAX_DELAY_SYNAPSES} synapses)"
            )
        _numbers(ds, f"{where}/delay", 0, MAX_NETX_DELAY)


def _neuron_group(n: h5py.Group, where: str) -> None:
    """Check a layer's CUBA neuron parameters (types and bit ranges)."""
    missing = [k for k in _NEURON_KEYS if k not in n]
    if missing:
        raise UserError(f"{where}: missing neuron parameter 'neuron/{missing[0]}'")
    _only_keys(n, NEURON_KEYS | IGNORED_NEURON_KEYS, f"{where}/neuron")

    neuron_type = _string(n, "type", f"{where}/neuron")
    if neuron_type not in ("CUBA", "LOIHI"):
        raise UserError(f"{where}/neuron/type: '{neuron_type}' is not a CUBA neuron (neurofl exports CUBA)"[:300])
    for key, (lo, hi) in NEURON_RANGES.items():
        if key in n or key in _NEURON_KEYS:
            _scalar(n, key, f"{where}/neuron", lo, hi)
    if "gradedSpike" in n:
        graded = _dataset(n, "gradedSpike", f"{where}/neuron")
        value = np.asarray(graded[()]).reshape(-1)
        if graded.size != 1 or graded.dtype.kind not in "biu" or int(value[0]) not in (0, 1):
            raise UserError(f"{where}/neuron/gradedSpike: must be one boolean")


def _supported(layers: h5py.Group, keys: list[str], path: Path) -> None:
    """Refuse, with the truest reason first, a network neurofl cannot reproduce: a layer NetX itself
    cannot build, a neuron that is not CUBA LIF, an input layer with its own neuron, a layer other
    than input, conv, flatten, dense in that order, then a conv layer's bias or delay (NetX broadcasts
    the one in its own layout and ignores the other)."""
    types = [_string(layers[k], "type", f"{path}: /layer/{k}") for k in keys]
    for k, t in zip(keys, types, strict=True):
        if t in NETX_UNBUILT:
            raise UserError(
                f"{path}: /layer/{k}: layer type '{t}' is not implemented by NetX "
                "(lava-dl raises NotImplementedError), so Lava cannot load this network"
            )
        if t not in NETX_TYPES:
            raise UserError(f"{path}: /layer/{k}: unknown layer type '{t}' (NetX builds {sorted(NETX_TYPES)})"[:300])
    for k in keys:
        n = layers[k].get("neuron")
        if isinstance(n, h5py.Group) and "type" in n:
            kind = _string(n, "type", f"{path}: /layer/{k}/neuron")
            if kind not in ("CUBA", "LOIHI"):
                raise UserError(
                    f"{path}: /layer/{k}/neuron/type: '{kind}' is not a CUBA LIF neuron (SDNN is sigma-delta, RF "
                    "resonate-and-fire); neurofl verify models CUBA neurons only"[:300]
                )
    if types[0] != "input":
        raise UserError(f"{path}: /layer/0 must be the input layer")
    if "neuron" in layers["0"]:
        raise UserError(
            f"{path}: /layer/0 has its own input neuron, which NetX drives through the neuron's bias (the "
            "network's input port is left unconnected); neurofl verify feeds spikes to the first synapse"
        )
    # what neurofl builds: input, conv ... conv, flatten, dense ... dense (or input, dense ... dense)
    prev = "input"
    for k, t in zip(keys[1:], types[1:], strict=True):
        if t not in ("dense", "conv", "flatten"):
            raise UserError(
                f"{path}: /layer/{k}: layer type '{t}' is not supported (neurofl verifies dense, conv, flatten layers)"
            )
        if (
            (t == "conv" and prev not in ("input", "conv"))
            or (t == "flatten" and prev != "conv")
            or (t == "dense" and prev == "conv")
        ):
            raise UserError(
                f"{path}: /layer/{k}: a '{t}' layer after a '{prev}' layer (neurofl builds conv layers, a flatten, "
                "then dense layers)"
            )
        prev = t
    if prev != "dense":
        raise UserError(f"{path}: the last layer must be dense (the read-out), not '{prev}'")
    for k, t in zip(keys[1:], types[1:], strict=True):
        for key, why in CONV_REFUSALS.items():
            if t == "conv" and key in layers[k]:
                raise UserError(f"{path}: /layer/{k}/{key}: {why}; refused rather than reported as a Lava mismatch")


def read_layers(f: h5py.File, path: Path) -> tuple[list[int], dict[str, Any], bool]:
    """The layer checks of :func:`read_netx` on the open file ``f`` (named ``path`` in the messages):
    returns the layer widths, the parsed ``/neurofl`` header (checked by :func:`check_netx`), and
    whether ``/layer/1`` has a synaptic delay."""
    check_tree(f, path, "NetX files", MAX_DATASET_BYTES, 8, MAX_NETX_OBJECTS)
    if "layer" not in f or not isinstance(f["layer"], h5py.Group) or len(f["layer"]) == 0:
        raise UserError(f"{path}: not a NetX network (no /layer groups)")
    layers = f["layer"]
    keys = sorted(layers.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if keys != [str(i) for i in range(len(keys))]:
        raise UserError(f"{path}: /layer groups must be named 0..{len(keys) - 1}, found {sorted(layers.keys())}"[:300])
    if any(not isinstance(layers[k], h5py.Group) for k in keys):
        raise UserError(f"{path}: every /layer entry must be a group")
    _supported(layers, keys, path)
    _only_keys(layers["0"], INPUT_KEYS, f"{path}: /layer/0")
    shape = _dataset(layers["0"], "shape", f"{path}: /layer/0")
    if not 1 <= shape.size <= 4 or shape.ndim > 1:
        raise UserError(f"{path}: /layer/0/shape must list 1 to 4 dimensions, got shape {shape.shape}")
    dims = _numbers(shape, f"{path}: /layer/0/shape", 1, MAX_WIDTH)
    widths = [int(np.prod(dims.astype(np.int64)))]
    if widths[0] > MAX_WIDTH:
        raise UserError(f"{path}: /layer/0/shape {dims.astype(int).tolist()} has more than {MAX_WIDTH} inputs")
    fmap = tuple(int(d) for d in dims)
    for k in keys[1:]:
        g, where = layers[k], f"{path}: /layer/{k}"
        kind = _string(g, "type", where)
        if kind == "conv":
            if len(fmap) != 3:
                raise UserError(f"{where}: a conv layer needs a (C, H, W) input, got shape {list(fmap)}")
            fmap = _conv_layer(g, where, fmap)
            widths.append(int(np.prod(fmap)))
        elif kind == "flatten":
            _flatten_layer(g, where, fmap)
        else:
            widths.append(_dense_layer(g, where, widths[-1]))
    if "neurofl" not in f or not isinstance(f["neurofl"], h5py.Group) or "header" not in f["neurofl"].attrs:
        raise UserError(f"{path}: no /neurofl header (export the model with `neurofl export`)")
    attr = f["neurofl"].attrs.get_id("header")
    if attr.get_storage_size() > 4 * MAX_HEADER_CHARS or attr.dtype.kind not in "SO" or attr.shape not in ((), None):
        raise UserError(f"{path}: /neurofl header must be one JSON string of at most {MAX_HEADER_CHARS} characters")
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
    return widths, header, "delay" in layers["1"]


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
    regular_file(path, "NetX file")
    widths, header, first_delay = read_hdf5(path, "NetX", lambda f: read_layers(f, path))
    return check_netx(path, widths, header, first_delay)


def check_netx(path: Path, widths: list[int], header: dict[str, Any], first_delay: bool) -> NetxFile:
    """Validate a NetX header against its layers (:func:`read_layers`' results): the one check
    :func:`read_netx` runs after reading and :func:`neurofl.deploy.export.export_netx` runs on the
    file it is about to write, so ``export`` never writes what ``verify`` refuses.

    Checked: the format; the architecture, profile, input encoding, fraction bits, time steps,
    ``kind``, Lava loading settings and seed, and their agreement with each other and with the
    layer widths; the SLAYER accuracy (None or a number in [0, 1], as a checkpoint's accuracy); no
    synaptic delay into a graded first layer.

    Raises
    ------
    UserError
        One line naming ``path`` and the key at fault.
    """
    if header.get("format") != NETX_FORMAT:
        raise UserError(
            f"{path}: unsupported header format {header.get('format')!r} (expected {NETX_FORMAT}; "
            "re-export the model with `neurofl export`)"[:300]
        )
    for key in ("architecture", "profile", "input_encoding", "input_frac_bits", "time_steps", "lava"):
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
    # event frames bring their own time steps (a conv SNN's input_shape (C, H, W, T))
    events = hasattr(arch, "strides") and len(arch.input_shape) == 4
    want = arch.input_shape[3] if events else profile.simulation.time_steps
    if steps != want:
        what = "its event frames'" if events else "its profile's"
        raise UserError(f"{path}: header time_steps {steps} disagrees with {what} {want}")
    if encoding != profile.spikes.input_encoding:
        raise UserError(f"{path}: header input_encoding {encoding!r} disagrees with its profile's")
    if header.get("kind", "snn") != "snn":
        raise UserError(f"{path}: header kind must be 'snn', got {header.get('kind')!r}"[:300])
    if header["lava"] != lava_loading(profile) or frac != header["lava"]["input_frac_bits"]:
        raise UserError(
            f"{path}: header 'lava' loading settings {header['lava']!r} disagree with its profile's "
            f"{lava_loading(profile)!r}"[:300]
        )
    header_seed(header, f"{path} header")
    check_accuracy(header.get("slayer_accuracy"), str(path), "slayer_accuracy")
    if encoding == "direct" and first_delay:
        refuse_graded_delays(str(path), 1)
    nf = NetxFile(path, header, profile, arch, tuple(widths), encoding, frac, steps)
    want_widths = arch_widths(arch)
    if want_widths != nf.widths:
        raise UserError(f"{path}: layer widths {nf.widths} disagree with the header's architecture {want_widths}")
    return nf


def build_network(nf: NetxFile, reset_interval: int | None = None) -> Any:
    """The NetX ``Network`` process for ``nf``, loaded unchanged from the file, as the file's ``lava``
    header entry says (the same steps as ``netx_models/run_in_lava.py``, the script docs/deploy.md shows).

    For graded input (``direct`` encoding) payloads carry ``input_frac_bits`` fractional bits, so the
    first synapse's weight exponent is lowered by that many bits: NetX computes weight
    exponents from the weights and reads none from a file, so the file records the bits instead.
    A first conv synapse keeps its exponent in a Var that Lava 0.x's fixed-point Conv model ignores:
    run such networks with :func:`neurofl.deploy.lava_run.run_config` (its Conv model applies it).
    """
    from lava.lib.dl.netx.hdf5 import Network

    lava = nf.header["lava"]
    bits = int(lava["input_message_bits"])
    # The file passed read_netx, which checks everything NetX reads: an exception here is a bug
    # (in that check or in NetX), not bad input, and surfaces as an internal error.
    # NetX prints weight-fitting notes on stdout; keep stdout clean for --json
    with contextlib.redirect_stdout(io.StringIO()):
        # reset_offset=1: the input RingBuffer and the first Dense buffer delay the input by 2 steps
        net = Network(str(nf.path), input_message_bits=bits, reset_interval=reset_interval, reset_offset=1)
    if lava["input_frac_bits"]:
        from lava.proc.conv.process import Conv

        syn, frac = net.layers[0].synapse, int(lava["input_frac_bits"])
        if isinstance(syn, Conv):  # a Var, read by neurofl's WeightExpConvModel (Lava's own ignores it)
            syn.weight_exp.init = np.array([int(np.asarray(syn.weight_exp.init).reshape(-1)[0]) - frac])
        else:
            syn.proc_params.overwrite("weight_exp", int(syn.proc_params["weight_exp"]) - frac)
    if reset_interval:
        _mark_sample_boundaries(net, reset_interval)
    return net


def _mark_sample_boundaries(net: Any, steps: int) -> None:
    """Tell each DelayDense synapse (a dense layer with a ``delay``) the sample length ``steps`` and
    the step at which a sample's first spikes reach it, one before its neurons' NetX reset (read by
    :func:`neurofl.deploy.lava_run.run_config`'s DelayDense model, which clears spikes in flight there)."""
    from lava.proc.dense.process import DelayDense

    for layer in net.layers:
        syn, neuron = getattr(layer, "synapse", None), getattr(layer, "neuron", None)
        if isinstance(syn, DelayDense) and neuron is not None and "reset_offset" in neuron.proc_params._parameters:
            syn.proc_params.overwrite(SAMPLE_STEPS_KEY, steps)
            syn.proc_params.overwrite(SAMPLE_START_KEY, int(neuron.proc_params["reset_offset"]) - 1)
