"""Read a third-party NetX file (one without neurofl's ``/neurofl`` header, e.g. lava-dl's own test
networks) into the layer list :mod:`neurofl.deploy.third_party.reference` and :mod:`neurofl.deploy.foreign_run`
run, checking every size against the file's metadata before any array is read.

What NetX (lava-dl 0.6.0, ``netx/hdf5.py``) builds and this reader accepts:

- an ``input`` layer, either without a neuron (the network's input port takes spikes) or with its own
  CUBA neuron, which NetX leaves unconnected and drives through the neuron's bias (``bias_mant``);
  the layer's scalar ``weight`` and ``bias`` are the transform ``bias_mant = weight * x + bias``
  NetX records for the user (``Input.transform``);
- ``conv`` layers (4-D or SLAYER's 5-D weight, stride, padding, a per-channel ``bias``);
- one ``flatten`` between the last conv layer and the first dense layer;
- ``dense`` layers (2-D weight or NetX's flat one, a neuron ``bias``, synaptic ``delay``), the last
  possibly without a neuron: NetX's non-spiking integrator (:data:`INTEGRATOR`);
- sigma-delta (``SDNN``) networks, every neuron SDNN (:class:`SigmaDeltaNeuron`): a delta encoder
  as the input neuron (fed through its ``a_in``), ReLU sigma-delta neurons with a ``bias``, a
  ``sigma_output`` layer that sends its sum (:mod:`neurofl.deploy.third_party.sdnn`).

Anything else is refused with NetX's or the reference's true reason: layer types NetX cannot
build, recurrent and complex dense layers, resonate-and-fire neurons, SDNN layers mixed with CUBA
ones, graded spikes out of a CUBA neuron, an SDNN layer's delay or ``messageBits``, dilated or grouped
convolutions, a conv layer's delay (NetX ignores it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from neurofl.deploy import netx
from neurofl.deploy.bias_delay import BIAS_RANGE, netx_delays
from neurofl.errors import UserError
from neurofl.io.h5check import check_tree, read_hdf5
from neurofl.io.limits import MAX_TIME_STEPS
from neurofl.io.safeio import regular_file
from neurofl.models.checkpoint import MAX_WIDTH

INPUT_KEYS = {"type", "shape", "neuron", "weight", "bias"}
CONV_KEYS = netx.CONV_KEYS | {"bias", "delay"}
DENSE_KEYS = netx.DENSE_KEYS
# what NetX builds for a dense layer without a neuron group (Network.create_dense): iDecay 0 (no
# current decay), vDecay 4096 (the voltage is the current), threshold mantissa 1 << 17 (above any
# 24-bit voltage: it never spikes)
INTEGRATOR = {"iDecay": 0, "vDecay": 4096, "vThMant": 1 << 17}
# why NetX types that NetX does build are not verified
UNMODELLED_TYPES = {
    "dense_rec": "a recurrent dense layer is not modelled by neurofl's reference",
    "dense_comp": "a complex-valued dense layer is not modelled by neurofl's reference",
}
UNMODELLED_NEURONS = {
    "RF": "resonate-and-fire (RF) neurons are not modelled by neurofl's reference (CUBA LIF and SDNN only)",
}
# what an SDNN neuron group may hold: NetX reads type, vThMant and the presence of sigma_output;
# 'activation' it ignores (Lava's SigmaDelta is ReLU), so only 'relu' is accepted
SDNN_KEYS = {"type", "vThMant", "activation", "sigma_output"}
# NetX scales vThMant by 2**(spike_exp + state_exp) = 4096 into Lava's 24-bit signed vth
SDNN_VTH_RANGE = (0, (1 << 11) - 1)


@dataclass(frozen=True)
class Neuron:
    """A CUBA LIF neuron as NetX builds it: decays on the 12-bit grid, threshold mantissa."""

    i_decay: int
    v_decay: int
    vth: int


@dataclass(frozen=True)
class SigmaDeltaNeuron:
    """An SDNN neuron as NetX builds it (lava/proc/sdn): ``delta`` (the input layer's encoder),
    ``sigma-delta`` (ReLU activation of the summed input plus bias, delta-encoded) or ``sigma``
    (a ``sigma_output`` layer: sends its sum); ``vth`` the threshold mantissa (unused by sigma)."""

    kind: str
    vth: int


@dataclass(frozen=True)
class Layer:
    """One layer that NetX makes a block of.

    index : its ``/layer/<index>`` group
    kind : ``input``, ``conv`` or ``dense``
    shape : its neurons, (C, H, W) or (n,)
    neuron : None for NetX's non-spiking integrator (:data:`INTEGRATOR` parameters apply) or an
        input layer without a neuron
    weight : conv (out, in, kH, kW) or dense (out, in) mantissas (float64); input layer: None
    bias : per-neuron (n,) or per-channel (C,) bias mantissas, or None
    delay : dense (out, in) delays in steps, or None
    stride, padding : conv (H, W) geometry
    """

    index: int
    kind: str
    shape: tuple[int, ...]
    neuron: Neuron | SigmaDeltaNeuron | None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    delay: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    flatten_before: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class ForeignNet:
    """A validated third-party NetX network.

    layers : the blocks NetX builds, input layer first (a flatten marks the next dense layer)
    input_transform : (weight, bias) of ``bias_mant = weight * x + bias`` for an input neuron, else None
    time_steps : the file's ``/simulation/tSample`` (None if absent)
    """

    path: Path
    layers: tuple[Layer, ...]
    input_transform: tuple[int, int] | None
    time_steps: int | None

    @property
    def input_neuron(self) -> bool:
        return self.layers[0].neuron is not None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.layers[0].shape

    @property
    def sdnn(self) -> bool:
        """Whether the network's neurons are sigma-delta ones (the reader refuses a mix)."""
        return any(isinstance(layer.neuron, SigmaDeltaNeuron) for layer in self.layers)

    def describe(self) -> str:
        """Layer kinds in order, e.g. ``input(LIF) conv+bias conv+bias``."""
        out = []
        for layer in self.layers:
            s = "flatten " if layer.flatten_before else ""
            n = layer.neuron
            s += layer.kind + ("(LIF)" if layer.kind == "input" and isinstance(n, Neuron) else "")
            s += "+bias" if layer.bias is not None else ""
            s += "+delay" if layer.delay is not None else ""
            s += "(integrator)" if layer.kind != "input" and n is None else ""
            s += f"({n.kind})" if isinstance(n, SigmaDeltaNeuron) else ""
            out.append(s)
        return " ".join(out)


def is_foreign(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file without neurofl's ``/neurofl`` header group (a file that is
    not readable HDF5 returns False: :func:`neurofl.deploy.netx.read_netx` reports it).

    Raises UserError for a path that is not a regular file (h5py's open would block on a FIFO)."""
    from neurofl.io.safeio import regular_file

    regular_file(path, "NetX file")
    try:
        with h5py.File(path, "r") as f:
            return "neurofl" not in f
    except (OSError, RuntimeError, KeyError, ValueError):
        return False


def _only(g: h5py.Group, allowed: set[str], where: str, what: str) -> None:
    extra = sorted(set(g.keys()) - allowed)
    if extra:
        raise UserError(
            f"{where}: entry '{extra[0]}' is not modelled by neurofl's reference ({what} may hold "
            f"{', '.join(sorted(allowed))})"[:300]
        )


def _sdnn_neuron(n: h5py.Group, where: str, is_input: bool) -> SigmaDeltaNeuron:
    """NetX's ``get_neuron_params`` for SDNN: Delta for the input layer, Sigma when the group has a
    ``sigma_output`` entry (whatever its value), else SigmaDelta; 16-bit graded messages."""
    where = f"{where}/neuron"
    _only(n, SDNN_KEYS, where, "an SDNN neuron group")
    if "activation" in n and netx._string(n, "activation", where) != "relu":
        act = netx._string(n, "activation", where)
        raise UserError(
            f"{where}/activation: '{act}': NetX builds Lava's ReLU sigma-delta neuron whatever it says"[:300]
        )
    if "vThMant" not in n:
        raise UserError(f"{where}: missing neuron parameter 'neuron/vThMant'")
    vth = netx._scalar(n, "vThMant", where, *SDNN_VTH_RANGE)
    kind = "delta" if is_input else "sigma-delta"
    if "sigma_output" in n:
        ds = netx._dataset(n, "sigma_output", where)
        if ds.size != 1 or ds.dtype.kind not in "biu" or int(np.asarray(ds[()]).reshape(-1)[0]) != 1:
            raise UserError(f"{where}/sigma_output: must be one true boolean (NetX reads only its presence)")
        if is_input:
            raise UserError(f"{where}/sigma_output: NetX builds the input layer's delta encoder regardless")
        kind = "sigma"
    return SigmaDeltaNeuron(kind, vth)


def _neuron(g: h5py.Group, where: str, is_input: bool = False) -> Neuron | SigmaDeltaNeuron | None:
    if "neuron" not in g:
        return None
    n = g["neuron"]
    if not isinstance(n, h5py.Group):
        raise UserError(f"{where}: 'neuron' must be a group of neuron parameters")
    kind = netx._string(n, "type", f"{where}/neuron")
    for key, why in UNMODELLED_NEURONS.items():
        if key in kind:
            raise UserError(f"{where}/neuron/type: '{kind}': {why}"[:300])
    if kind == "SDNN":
        return _sdnn_neuron(n, where, is_input)
    if kind not in ("CUBA", "LOIHI"):
        raise UserError(f"{where}/neuron/type: unknown neuron type '{kind}' (NetX builds CUBA, LOIHI, SDNN, RF)"[:300])
    _only(n, netx.NEURON_KEYS | netx.IGNORED_NEURON_KEYS, f"{where}/neuron", "a CUBA neuron group")
    for key in ("iDecay", "vDecay", "vThMant"):
        if key not in n:
            raise UserError(f"{where}: missing neuron parameter 'neuron/{key}'")
    values = {k: netx._scalar(n, k, f"{where}/neuron", *netx.NEURON_RANGES[k]) for k in ("iDecay", "vDecay", "vThMant")}
    if "refDelay" in n:  # NetX's LIF has no refractory period; read only to check it is a number
        netx._scalar(n, "refDelay", f"{where}/neuron", *netx.NEURON_RANGES["refDelay"])
    if "gradedSpike" in n:
        ds = netx._dataset(n, "gradedSpike", f"{where}/neuron")
        if ds.size != 1 or ds.dtype.kind not in "biu" or int(np.asarray(ds[()]).reshape(-1)[0]) not in (0, 1):
            raise UserError(f"{where}/neuron/gradedSpike: must be one boolean")
        if int(np.asarray(ds[()]).reshape(-1)[0]):
            raise UserError(f"{where}/neuron/gradedSpike: graded spikes are not modelled by neurofl's reference")
    return Neuron(values["iDecay"], values["vDecay"], values["vThMant"])


def _input(g: h5py.Group, where: str) -> tuple[Layer, tuple[int, int] | None]:
    _only(g, INPUT_KEYS, where, "an input layer")
    shape = netx._dataset(g, "shape", where)
    if not 1 <= shape.size <= 3 or shape.ndim > 1:
        raise UserError(f"{where}/shape must list 1 to 3 dimensions, got shape {shape.shape}")
    dims = tuple(int(d) for d in netx._numbers(shape, f"{where}/shape", 1, MAX_WIDTH).reshape(-1))
    if len(dims) == 2:
        raise UserError(f"{where}/shape {list(dims)}: give (n,) or (C, H, W)")
    if int(np.prod(dims, dtype=np.int64)) > MAX_WIDTH:
        raise UserError(f"{where}/shape {list(dims)} has more than {MAX_WIDTH} inputs")
    neuron = _neuron(g, where, is_input=True)
    transform: tuple[int, int] | None = None
    if neuron is not None:  # NetX: int(weight), int(bias), defaults 64 and 0
        lo, hi = BIAS_RANGE
        weight, bias = (
            netx._scalar(g, k, where, lo, hi) if k in g else default for k, default in (("weight", 64), ("bias", 0))
        )
        transform = (weight, bias)
    elif "weight" in g or "bias" in g:
        raise UserError(f"{where}: an input 'weight' or 'bias' needs an input neuron (NetX reads them only then)")
    return Layer(0, "input", dims, neuron), transform


def _conv(g: h5py.Group, where: str, inputs: tuple[int, ...], index: int) -> Layer:
    if len(inputs) != 3:
        raise UserError(f"{where}: a conv layer needs a (C, H, W) input, got shape {list(inputs)}")
    for key, why in netx.CONV_REFUSALS.items():
        if key == "delay" and key in g:
            raise UserError(f"{where}/{key}: {why}; refused rather than reported as a Lava mismatch")
    _only(g, CONV_KEYS, where, "a conv layer")
    w = netx._dataset(g, "weight", where)
    if w.ndim == 5 and w.shape[4] == 1:  # SLAYER's (out, in, kH, kW, 1); NetX drops the last axis
        shape4 = tuple(int(d) for d in w.shape[:4])
    elif w.ndim == 4:
        shape4 = tuple(int(d) for d in w.shape)
    else:
        raise UserError(f"{where}: needs a 4-D (out, in, kH, kW) or 5-D (..., 1) 'weight', got shape {w.shape}")
    out_c, in_c, kh, kw = shape4
    if in_c != inputs[0]:
        raise UserError(f"{where}: weight has {in_c} input channels, the previous layer has {inputs[0]}")
    if not 1 <= out_c <= netx.MAX_CHANNELS or not (1 <= kh <= netx.MAX_KERNEL and 1 <= kw <= netx.MAX_KERNEL):
        raise UserError(
            f"{where}: weight shape {w.shape}: expected 1..{netx.MAX_CHANNELS} output channels, kernels of "
            f"1..{netx.MAX_KERNEL}"
        )
    if "dilation" in g and netx._pair(g, "dilation", where, 1, netx.MAX_KERNEL) != (1, 1):
        raise UserError(f"{where}/dilation: dilated convolutions are not modelled by neurofl's reference")
    if "groups" in g and netx._scalar(g, "groups", where, 1, netx.MAX_CHANNELS) != 1:
        raise UserError(f"{where}/groups: grouped convolutions are not modelled by neurofl's reference")
    out = netx.conv_output_map(g, where, inputs, out_c, kh, kw)
    stride = netx._pair(g, "stride", where, 1, netx.MAX_KERNEL)
    padding = netx._pair(g, "padding", where, 0, netx.MAX_KERNEL)
    for key, expected in (("inChannels", in_c), ("outChannels", out_c)):
        if key in g and netx._scalar(g, key, where, 1, netx.MAX_CHANNELS) != expected:
            raise UserError(f"{where}/{key}: must be {expected}, as the weight's shape {w.shape} says")
    if "kernelSize" in g and netx._pair(g, "kernelSize", where, 1, netx.MAX_KERNEL) != (kh, kw):
        raise UserError(f"{where}/kernelSize: must be {[kh, kw]}, as the weight's shape {w.shape} says")
    if "neuron" not in g:
        raise UserError(f"{where}: a conv layer needs a 'neuron' group (NetX reads it unconditionally)")
    bias = None
    if "bias" in g:  # NetX broadcasts a (C,) bias over the channel axis of its (W, H, C) neurons
        b = netx._dataset(g, "bias", where)
        if tuple(b.shape) != (out_c,):
            raise UserError(f"{where}/bias: shape {b.shape}, expected ({out_c},), one per output channel")
        bias = netx._numbers(b, f"{where}/bias", *BIAS_RANGE).astype(np.int64)
    neuron = _neuron(g, where)
    _no_sigma_bias(neuron, g, where)
    weight = netx._numbers(w, f"{where}/weight", *netx.WEIGHT_RANGE).astype(np.float64).reshape(shape4)
    return Layer(index, "conv", out, neuron, weight, bias, None, stride, padding)


def _dense(g: h5py.Group, where: str, inputs: int, index: int, flatten: bool) -> Layer:
    _only(g, DENSE_KEYS, where, "a dense layer")
    sd = netx._dataset(g, "shape", where)
    if sd.ndim > 1 or not 1 <= sd.size <= 3:
        raise UserError(f"{where}/shape: must list 1 to 3 dimensions, got shape {sd.shape}")
    outputs = int(np.prod(netx._numbers(sd, f"{where}/shape", 1, MAX_WIDTH).astype(np.int64)))
    if outputs > MAX_WIDTH:
        raise UserError(f"{where}/shape: more than {MAX_WIDTH} neurons")
    w = netx._dataset(g, "weight", where)
    # NetX reshapes a 1-D weight to (outputs, -1)
    if tuple(w.shape) not in ((outputs, inputs), (outputs * inputs,)):
        raise UserError(
            f"{where}: weight shape {w.shape}, expected ({outputs}, {inputs}) (or flat) for {outputs} neurons "
            f"after a layer of {inputs}"
        )
    for key, expected in (("inFeatures", inputs), ("outFeatures", outputs)):
        if key in g and netx._scalar(g, key, where, 1, MAX_WIDTH) != expected:
            raise UserError(f"{where}/{key}: must be {expected}, as the weight's shape {w.shape} says")
    netx._bias_delay(g, where, outputs, inputs)
    neuron = _neuron(g, where)
    if neuron is None and "bias" in g:
        raise UserError(f"{where}/bias: a layer without a 'neuron' group has no neuron to bias")
    if isinstance(neuron, SigmaDeltaNeuron) and "delay" in g:
        raise UserError(
            f"{where}/delay: synaptic delays into sigma-delta neurons are not modelled by neurofl's reference"
        )
    _no_sigma_bias(neuron, g, where)
    weight = netx._numbers(w, f"{where}/weight", *netx.WEIGHT_RANGE).astype(np.float64).reshape(outputs, inputs)
    bias = np.broadcast_to(np.asarray(g["bias"][()]).astype(np.int64), (outputs,)).copy() if "bias" in g else None
    delay = netx_delays(g["delay"][()], outputs, inputs) if "delay" in g else None
    return Layer(index, "dense", (outputs,), neuron, weight, bias, delay, flatten_before=flatten)


def _no_sigma_bias(neuron: Neuron | SigmaDeltaNeuron | None, g: h5py.Group, where: str) -> None:
    if isinstance(neuron, SigmaDeltaNeuron) and neuron.kind == "sigma" and "bias" in g:
        raise UserError(
            f"{where}/bias: Lava's Sigma process (a sigma_output layer) takes no bias; NetX cannot build it"
        )


def _one_neuron_model(layers: list[Layer], path: Path) -> None:
    """SDNN and CUBA neurons do not mix: a CUBA layer would read 16-bit graded messages as spikes, an
    SDNN layer after a CUBA one would get unary ones; the reference models neither."""
    weighted = [layer for layer in layers if layer.kind != "input" or layer.neuron is not None]
    sdnn = [isinstance(layer.neuron, SigmaDeltaNeuron) for layer in weighted]
    if any(sdnn) and not all(sdnn):
        odd = weighted[sdnn.index(False)]
        raise UserError(
            f"{path}: /layer/{odd.index}: a CUBA layer (or NetX's CUBA integrator) in a network of sigma-delta "
            "(SDNN) layers is not modelled by neurofl's reference"
        )


def _types(layers: h5py.Group, keys: list[str], path: Path) -> list[str]:
    """Each layer's type; the truest refusal first: a type NetX cannot build, one it builds that the
    reference does not model, an unknown one."""
    types = [netx._string(layers[k], "type", f"{path}: /layer/{k}") for k in keys]
    for k, t in zip(keys, types, strict=True):
        if t in netx.NETX_UNBUILT:
            raise UserError(
                f"{path}: /layer/{k}: layer type '{t}' is not implemented by NetX "
                "(lava-dl raises NotImplementedError), so Lava cannot load this network"
            )
        if t not in netx.NETX_TYPES:
            known = sorted(netx.NETX_TYPES)
            raise UserError(f"{path}: /layer/{k}: unknown layer type '{t}' (NetX builds {known})"[:300])
    for k in keys:  # a neuron type the reference does not model, before any shape detail
        n = layers[k].get("neuron")
        if isinstance(n, h5py.Group) and "type" in n:
            _neuron_kind_supported(n, f"{path}: /layer/{k}")
    for k, t in zip(keys, types, strict=True):
        if t in UNMODELLED_TYPES:
            raise UserError(f"{path}: /layer/{k}: {UNMODELLED_TYPES[t]}")
    if types[0] != "input":
        raise UserError(f"{path}: /layer/0 must be the input layer, not '{types[0]}'")
    return types


def _neuron_kind_supported(n: h5py.Group, where: str) -> None:
    kind = netx._string(n, "type", f"{where}/neuron")
    for key, why in UNMODELLED_NEURONS.items():
        if key in kind:
            raise UserError(f"{where}/neuron/type: '{kind}': {why}"[:300])


def _time_steps(f: h5py.File, path: Path) -> int | None:
    g = f.get("simulation")
    if not isinstance(g, h5py.Group) or "tSample" not in g:
        return None
    return netx._scalar(g, "tSample", f"{path}: /simulation", 1, MAX_TIME_STEPS)


def read_foreign(path: Path) -> ForeignNet:
    """Open and check a third-party NetX file.

    Raises
    ------
    UserError
        Not HDF5, a hostile tree (links, filters, sizes: :func:`neurofl.io.h5check.check_tree`), or any
        layer NetX would build otherwise than the reference models (module docstring), one line.
    """
    path = Path(path)
    regular_file(path, "NetX file")
    return read_hdf5(path, "NetX", lambda f: _read(f, path))


def _read(f: h5py.File, path: Path) -> ForeignNet:
    check_tree(f, path, "NetX files", netx.MAX_DATASET_BYTES, 8, netx.MAX_NETX_OBJECTS)
    if "layer" not in f or not isinstance(f["layer"], h5py.Group) or len(f["layer"]) == 0:
        raise UserError(f"{path}: not a NetX network (no /layer groups)")
    groups = f["layer"]
    keys = sorted(groups.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if keys != [str(i) for i in range(len(keys))]:
        raise UserError(f"{path}: /layer groups must be named 0..{len(keys) - 1}, found {sorted(groups.keys())}"[:300])
    if any(not isinstance(groups[k], h5py.Group) for k in keys):
        raise UserError(f"{path}: every /layer entry must be a group")
    types = _types(groups, keys, path)
    first, transform = _input(groups["0"], f"{path}: /layer/0")
    layers = [first]
    flatten, prev = False, "input"
    for k, t in zip(keys[1:], types[1:], strict=True):
        where, g, shape = f"{path}: /layer/{k}", groups[k], layers[-1].shape
        if t == "flatten":
            if prev not in ("input", "conv") or flatten:
                raise UserError(f"{where}: a flatten layer must follow the input or a conv layer (NetX flattens a map)")
            _only(g, {"type", "shape"}, where, "a flatten layer")
            flatten = True
        elif t == "conv":
            if prev not in ("input", "conv"):
                raise UserError(f"{where}: a conv layer after a '{prev}' layer (NetX needs a (W, H, C) input)")
            layers.append(_conv(g, where, shape, int(k)))
        else:  # dense
            if prev == "conv" and not flatten:
                raise UserError(f"{where}: a dense layer after a conv layer needs a flatten layer between them")
            if len(shape) != 1 and not flatten:
                raise UserError(f"{where}: a dense layer after the (C, H, W) input {list(shape)} needs a flatten")
            layers.append(_dense(g, where, int(np.prod(shape)), int(k), flatten))
            flatten = False
        prev = t
    if flatten:
        raise UserError(f"{path}: the network ends with a flatten layer")
    if len(layers) < 2:
        raise UserError(f"{path}: the network has no weighted layer after its input")
    _one_neuron_model(layers, path)
    return ForeignNet(path, tuple(layers), transform, _time_steps(f, path))
