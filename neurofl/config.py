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


# A settings file is a few KB; larger ones are refused before reading, and tables or arrays may
# nest at most this deep (the parser recurses; neurofl's files nest 2 levels).
MAX_TOML_BYTES = 1 << 20
MAX_TOML_NESTING = 16
# Largest integer any settings key takes (a float holds every integer up to it exactly); a larger
# one (a 400-digit number, 10**30 in a chip limit) is refused, whatever the key's own range.
MAX_INTEGER = 1 << 53


def _nesting(value: Any, depth: int = 0) -> int:
    """Deepest nesting of tables and arrays in parsed TOML (iterative: any depth is safe)."""
    deepest, todo = depth, [(value, depth)]
    while todo:
        v, d = todo.pop()
        deepest = max(deepest, d)
        if isinstance(v, dict):
            todo.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            todo.extend((x, d + 1) for x in v)
    return deepest


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file (a regular file of at most :data:`MAX_TOML_BYTES`, nested at most
    :data:`MAX_TOML_NESTING` deep); any failure becomes a one-line :class:`UserError`."""
    from neurofl.io.safeio import read_regular

    path = Path(path)
    data = read_regular(path, MAX_TOML_BYTES, "TOML file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    try:
        table = tomli.loads(text)
    except tomli.TOMLDecodeError as e:
        raise UserError(f"{path}: invalid TOML: {' '.join(str(e).split())[:200]}") from None
    except ValueError as e:  # Python refuses integers of more than 4300 digits (int_max_str_digits)
        raise UserError(f"{path}: invalid TOML: {' '.join(str(e).split())[:120]}") from None
    except RecursionError:  # tomli recurses once per nesting level
        raise UserError(f"{path}: arrays or tables nested more than {MAX_TOML_NESTING} deep") from None
    if _nesting(table) > MAX_TOML_NESTING:
        raise UserError(f"{path}: arrays or tables nested more than {MAX_TOML_NESTING} deep")
    return table


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a hostile file's value may be megabytes)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_value(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise UserError(f"{where}: must be one of {', '.join(map(repr, allowed))}, got {_short(value)}")
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
            raise UserError(f"{where}: must be true or false, got {_short(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: must be an integer, got {_short(value)}")
        if abs(value) > MAX_INTEGER:
            raise UserError(f"{where}: must be an integer of magnitude at most 2**53, got {_short(value, 40)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: must be a number, got {_short(value)}")
        if isinstance(value, int) and abs(value) > 1 << 1000:  # no float holds it (math.isfinite raises)
            raise UserError(f"{where}: must be a finite number, got an integer of {len(str(abs(value)))} digits")
        if not math.isfinite(value):
            raise UserError(f"{where}: must be finite, got {_short(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{where}: must be a string, got {_short(value)}")
        return value
    raise TypeError(f"unsupported field type {_type_name(tp)}")  # a programming error, not input


def from_table(cls: type[T], table: Any, file: Path | str, prefix: str = "") -> T:  # T: a dataclass
    """Validate ``table`` (a parsed TOML table) into the frozen dataclass ``cls``.

    Nested dataclass fields are read from sub-tables. Errors name ``file`` and the dotted key.
    """
    where_table = prefix.rstrip(".") or "top level"
    if not isinstance(table, dict):
        raise UserError(f"{file}: [{where_table}] must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # T is a dataclass
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise UserError(f"{file}: unknown key '{prefix}{unknown[0]}' (allowed: {', '.join(fields)})")
    values: dict[str, Any] = {}
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
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            values[name] = from_table(tp, table[name], file, f"{key}.")
            continue
        value: Any = _check_value(table[name], tp, f"{file}: key '{key}'")
        meta = f.metadata
        if value is None:  # an optional key left unset ("unknown" in a profile); its type allowed it
            values[name] = value
            continue
        if "choices" in meta and value not in meta["choices"]:
            raise UserError(f"{file}: key '{key}' must be one of {sorted(meta['choices'])}, got {_short(value)}")
        if "min" in meta and value < meta["min"]:
            raise UserError(f"{file}: key '{key}' must be >= {meta['min']}, got {_short(value)}")
        if "max" in meta and value > meta["max"]:
            raise UserError(f"{file}: key '{key}' must be <= {meta['max']}, got {_short(value)}")
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
