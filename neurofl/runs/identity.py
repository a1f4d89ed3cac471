"""What identifies a run: the content of its inputs, never their names.

A profile or recipe is identified by the digest of its fully resolved table (every key, after
validation), a dataset by the digest of its arrays. Two files with one ``name`` but other numbers
are two identities; an edited file is a new identity. Names only label things for people, and
become path components only through :func:`path_component`.

>>> a = table_digest({"x": 1, "y": [1.0, 2.0]})
>>> a == table_digest({"y": [1.0, 2.0], "x": 1})  # key order does not matter
True
>>> path_component("../../etc/evil name")
'etc_evil_name'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from typing import Any

import numpy as np

SEED_MAX = 2**32 - 1  # numpy's and torch's generators both take seeds in [0, 2**32)


def _plain(obj: Any) -> Any:
    """JSON data with a canonical form: dataclasses as tables, tuples as lists, numpy as Python."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def canonical_json(obj: Any) -> str:
    """``obj`` as JSON with sorted keys and no whitespace (the text a digest is taken of)."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def table_digest(obj: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``obj`` (a table, dataclass or list)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def config_identity(config: Any) -> dict[str, str]:
    """A validated profile or recipe (a frozen dataclass with a ``name``): its name and digest."""
    return {"name": str(config.name), "sha256": table_digest(config)}


def arrays_digest(*arrays: np.ndarray) -> str:
    """SHA-256 (hex) over the dtype, shape and bytes of each array."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def dataset_identity(ds: Any) -> dict[str, Any]:
    """A :class:`neurofl.data.Dataset` by content: name, shape, classes and the digest of x and y."""
    return {
        "name": ds.name,
        "shape": list(ds.x.shape),
        "classes": int(ds.classes),
        "sha256": arrays_digest(ds.x, ds.y),
    }


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def path_component(text: str, limit: int = 48) -> str:
    """``text`` as one safe path component: letters, digits, ``.``, ``_``, ``-``; no leading dots
    (so never ``.`` or ``..``); at most ``limit`` characters; never empty."""
    safe = _UNSAFE.sub("_", str(text)).strip("._") or "unnamed"
    return safe[:limit]


def keyed(name: str, digest: str) -> str:
    """A path component for a named thing that is identified by content: ``<name>-<digest[:10]>``."""
    return f"{path_component(name)}-{digest[:10]}"
