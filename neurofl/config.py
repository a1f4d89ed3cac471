"""TOML files validated into frozen dataclasses.

Each dataclass field may carry ``metadata`` with ``min``, ``max`` (inclusive), ``choices`` or
``doc``. Unknown keys, missing keys, wrong types and out-of-range values raise :class:`UserError`
naming the file and the dotted key.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomli

from neurofl.errors import UserError

T = TypeVar("T")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; any failure becomes a one-line :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return tomli.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    except tomli.TOMLDecodeError as e:
        raise UserError(f"{path}: invalid TOML: {e}") from None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_value(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise UserError(f"{where}: must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _check_value(value, args[0], where)
    if origin is tuple:
        (inner, _) = typing.get_args(tp)
        if not isinstance(value, list):
            raise UserError(f"{where}: must be a list, got {type(value).__name__}")
        return tuple(_check_value(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where}: must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: must be a number, got {value!r}")
        if not math.isfinite(value):
            raise UserError(f"{where}: must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{where}: must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {_type_name(tp)}")  # a programming error, not input


def from_table(cls: type[T], table: Any, file: Path | str, prefix: str = "") -> T:
    """Validate ``table`` (a parsed TOML table) into the frozen dataclass ``cls``.

    Nested dataclass fields are read from sub-tables. Errors name ``file`` and the dotted key.
    """
    where_table = prefix.rstrip(".") or "top level"
    if not isinstance(table, dict):
        raise UserError(f"{file}: [{where_table}] must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise UserError(f"{file}: unknown key '{prefix}{unknown[0]}' (allowed: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in table:
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if not has_default:
                raise UserError(f"{file}: missing key '{key}'")
            continue
        tp = hints[name]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
                tp = inner[0]
        if dataclasses.is_dataclass(tp):
            values[name] = from_table(tp, table[name], file, f"{key}.")
            continue
        value = _check_value(table[name], tp, f"{file}: key '{key}'")
        meta = f.metadata
        if "choices" in meta and value not in meta["choices"]:
            raise UserError(f"{file}: key '{key}' must be one of {sorted(meta['choices'])}, got {value!r}")
        if "min" in meta and value < meta["min"]:
            raise UserError(f"{file}: key '{key}' must be >= {meta['min']}, got {value!r}")
        if "max" in meta and value > meta["max"]:
            raise UserError(f"{file}: key '{key}' must be <= {meta['max']}, got {value!r}")
        values[name] = value
    try:
        return cls(**values)
    except ValueError as e:  # cross-field checks in __post_init__
        raise UserError(f"{file}: {e}") from None


def bounded(lo: float | None = None, hi: float | None = None, **kw: Any) -> dict[str, Any]:
    """Field metadata for an inclusive range."""
    meta: dict[str, Any] = dict(kw)
    if lo is not None:
        meta["min"] = lo
    if hi is not None:
        meta["max"] = hi
    return meta
