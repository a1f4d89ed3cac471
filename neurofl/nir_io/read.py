"""Read a ``.nir`` file (HDF5, as ``nir.write`` lays it out) into a validated graph.

``nir.read`` loads every dataset of a file into memory as it finds it and trusts every value; this
reader checks the file's whole tree from HDF5 metadata first (hard links only, data stored in the
file uncompressed and in full, a bounded total of declared bytes), then reads only the node types
neurofl maps, each key with its expected kind and shape, and refuses anything else with one line
naming the file, the node and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from neurofl.errors import UserError
from neurofl.io.h5check import CORRUPT, check_tree, read_hdf5
from neurofl.io.safeio import regular_file
from neurofl.models.checkpoint import MAX_WIDTH

# A .nir file larger than this is refused before it is opened (variable-length strings live in
# the file's heap, so the file size bounds them).
MAX_FILE_BYTES = 256 << 20
# All datasets together may declare at most this many bytes (16M float32 weights, as NetX files).
MAX_DATASET_BYTES = (64 << 20) + (1 << 20)
MAX_NODES = 1024
MAX_EDGES = 4096
MAX_NAME_CHARS = 200
MAX_DEPTH = 8

# The keys of each node type neurofl reads: (required, optional). Other keys are refused, except
# a 'metadata' group, which is checked for size and otherwise ignored.
NODE_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "Input": (frozenset({"shape"}), frozenset()),
    "Output": (frozenset({"shape"}), frozenset()),
    "Linear": (frozenset({"weight"}), frozenset()),
    "Affine": (frozenset({"weight", "bias"}), frozenset()),
    "Conv2d": (frozenset({"weight", "bias", "stride", "padding", "dilation", "groups"}), frozenset({"input_shape"})),
    "Flatten": (frozenset({"start_dim", "end_dim"}), frozenset({"input_type"})),
    "SumPool2d": (frozenset({"kernel_size", "stride", "padding"}), frozenset()),
    "IF": (frozenset({"r", "v_threshold"}), frozenset()),
    "LIF": (frozenset({"tau", "r", "v_leak", "v_threshold"}), frozenset()),
    "CubaLIF": (frozenset({"tau_syn", "tau_mem", "r", "v_leak", "v_threshold"}), frozenset({"w_in"})),
}
# Keys holding integers (shapes, strides, dimensions); every other key holds real numbers.
INTEGER_KEYS = frozenset(
    {"shape", "stride", "padding", "dilation", "groups", "input_shape", "start_dim", "end_dim", "input_type",
     "kernel_size"}
)  # fmt: skip
_NUMERIC = {"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"}


@dataclass(frozen=True)
class NirNode:
    """One node: its name, NIR type and parameters (numpy arrays, all finite)."""

    name: str
    type: str
    params: dict[str, np.ndarray]


@dataclass(frozen=True)
class NirGraph:
    """A validated NIR graph: nodes by name and directed edges (source, target), acyclic, every
    edge between existing nodes, exactly one ``Input`` and one ``Output``."""

    path: Path
    version: str
    nodes: dict[str, NirNode]
    edges: tuple[tuple[str, str], ...]


def _text(value: object, where: str) -> str:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{where}: not UTF-8 text") from None
    if not isinstance(value, str):
        raise UserError(f"{where}: must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_NAME_CHARS or not value.isprintable():
        raise UserError(f"{where}: must be 1 to {MAX_NAME_CHARS} printable characters, got {value[:40]!r}"[:300])
    return value


def _string(g: h5py.Group, key: str, where: str) -> str:
    if key not in g or not isinstance(g[key], h5py.Dataset):
        raise UserError(f"{where}: no '{key}' string")
    ds = g[key]
    if ds.size != 1 or ds.ndim > 1 or ds.dtype.kind not in "SO" or (
        ds.dtype.kind == "O" and h5py.check_string_dtype(ds.dtype) is None
    ):
        raise UserError(f"{where}/{key}: must be one string, got {ds.dtype} of shape {ds.shape}")
    return _text(np.asarray(ds[()]).reshape(-1)[0], f"{where}/{key}")


def _numbers(ds: h5py.Dataset, where: str, integer: bool) -> np.ndarray:
    if ds.dtype.kind == "b" or ds.dtype.str.lstrip("<>|=") not in _NUMERIC:
        raise UserError(f"{where}: must be numbers, got dtype {ds.dtype}")
    v = np.asarray(ds[()])
    if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
        raise UserError(f"{where}: holds NaN or infinite values")
    if integer:
        if v.ndim > 1 or v.size > 8:
            raise UserError(f"{where}: must be at most 8 integers, got shape {v.shape}")
        if v.dtype.kind == "f" and not np.array_equal(v, np.round(v)):
            raise UserError(f"{where}: holds non-integer values")
        if v.size and (v.min() < -MAX_WIDTH or v.max() > MAX_WIDTH):
            raise UserError(f"{where}: values outside [-{MAX_WIDTH}, {MAX_WIDTH}]")
        return v.astype(np.int64)
    return v.astype(np.float64)


def _node(g: h5py.Group, name: str, where: str) -> NirNode:
    kind = _string(g, "type", where)
    if kind == "NIRGraph":
        raise UserError(f"{where}: a nested NIRGraph (a recurrent subgraph); neurofl's networks are feed-forward")
    if kind not in NODE_KEYS:
        raise UserError(f"{where}: node type '{kind}' is not supported (neurofl reads {', '.join(NODE_KEYS)})"[:300])
    required, optional = NODE_KEYS[kind]
    keys = set(g.keys()) - {"type", "metadata"}
    missing = sorted(required - keys)
    if missing:
        raise UserError(f"{where}: {kind} node lacks '{missing[0]}'")
    extra = sorted(keys - required - optional)
    if extra:
        raise UserError(f"{where}: {kind} node has an unexpected key '{extra[0]}'"[:300])
    if "metadata" in g and not isinstance(g["metadata"], h5py.Group):
        raise UserError(f"{where}/metadata: must be a group")
    params = {}
    for key in sorted(keys):
        if not isinstance(g[key], h5py.Dataset):
            raise UserError(f"{where}/{key}: must be a dataset, got a group")
        params[key] = _numbers(g[key], f"{where}/{key}", key in INTEGER_KEYS)
    return NirNode(name, kind, params)


def _edges(g: h5py.Group, nodes: dict[str, NirNode], where: str) -> tuple[tuple[str, str], ...]:
    if "edges" not in g or not isinstance(g["edges"], h5py.Dataset):
        raise UserError(f"{where}: no 'edges' dataset")
    ds = g["edges"]
    if ds.ndim != 2 or ds.shape[1] != 2 or ds.shape[0] > MAX_EDGES:
        raise UserError(f"{where}/edges: must be (n, 2) with n <= {MAX_EDGES}, got shape {ds.shape}")
    if ds.dtype.kind not in "SO" or (ds.dtype.kind == "O" and h5py.check_string_dtype(ds.dtype) is None):
        raise UserError(f"{where}/edges: must hold node names (strings), got dtype {ds.dtype}")
    edges = []
    for a, b in np.asarray(ds[()]).tolist():
        src, dst = _text(a, f"{where}/edges"), _text(b, f"{where}/edges")
        for n in (src, dst):
            if n not in nodes:
                raise UserError(f"{where}/edges: edge ({src!r}, {dst!r}) names a missing node {n!r}"[:300])
        edges.append((src, dst))
    if len(set(edges)) != len(edges):
        raise UserError(f"{where}/edges: a repeated edge")
    _refuse_cycles(nodes, edges, where)
    return tuple(edges)


def _refuse_cycles(nodes: dict[str, NirNode], edges: list[tuple[str, str]], where: str) -> None:
    """Kahn's algorithm: a node left over is on a cycle (a recurrent edge)."""
    indegree = dict.fromkeys(nodes, 0)
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        indegree[b] += 1
        succ[a].append(b)
    ready = [n for n, d in indegree.items() if d == 0]
    seen = 0
    while ready:
        n = ready.pop()
        seen += 1
        for m in succ[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
    if seen != len(nodes):
        on_cycle = sorted(n for n, d in indegree.items() if d > 0)
        raise UserError(f"{where}/edges: a cycle (recurrent edge) through node {on_cycle[0]!r}; refused"[:300])


def _read_graph(f: h5py.File, path: Path) -> NirGraph:
    check_tree(f, path, ".nir files", MAX_DATASET_BYTES, MAX_DEPTH, 8 * MAX_NODES + 64)
    version = _string(f, "version", str(path)) if "version" in f else "unknown"
    if "node" not in f or not isinstance(f["node"], h5py.Group):
        raise UserError(f"{path}: not a NIR file (no /node group)")
    root = f["node"]
    if _string(root, "type", f"{path}: /node") != "NIRGraph":
        raise UserError(f"{path}: /node must be a NIRGraph")
    if "nodes" not in root or not isinstance(root["nodes"], h5py.Group):
        raise UserError(f"{path}: /node has no 'nodes' group")
    names = list(root["nodes"].keys())
    if not names or len(names) > MAX_NODES:
        raise UserError(f"{path}: /node/nodes must hold 1 to {MAX_NODES} nodes, found {len(names)}")
    nodes = {}
    for name in names:
        where = f"{path}: node {_text(name, f'{path}: node name')!r}"
        if not isinstance(root["nodes"][name], h5py.Group):
            raise UserError(f"{where}: must be a group")
        nodes[name] = _node(root["nodes"][name], name, where)
    edges = _edges(root, nodes, f"{path}: /node")
    for kind in ("Input", "Output"):
        found = [n for n in nodes.values() if n.type == kind]
        if len(found) != 1:
            raise UserError(f"{path}: the graph needs exactly one {kind} node, found {len(found)}")
    return NirGraph(path, version, nodes, edges)


def read_nir(path: Path | str) -> NirGraph:
    """Open ``path`` and return its validated NIR graph.

    Raises
    ------
    UserError
        Missing or special file, larger than :data:`MAX_FILE_BYTES`, not HDF5 or truncated, links
        that leave the file, datasets claiming more than :data:`MAX_DATASET_BYTES`, a node type
        neurofl does not read, a missing or unexpected key, wrong dtypes or shapes, NaN or
        infinite values, edges naming missing nodes, a cycle, or not exactly one Input and Output.
    """
    path = Path(path)
    st = regular_file(path, "NIR file")
    if st.st_size > MAX_FILE_BYTES:
        raise UserError(f"{path}: {st.st_size} bytes, more than the {MAX_FILE_BYTES} accepted for a NIR file")
    return read_hdf5(path, "NIR", lambda f: _read_graph(f, path), (*CORRUPT, TypeError, IndexError))
