"""Data files shipped inside the package: ``profiles/*.toml`` (hardware profiles),
``recipes/*.toml`` (attack recipes and suites) and ``configs/*.toml`` (federated schedules for
``neurofl fl --config``). The checkout's top-level ``hardware_profiles/``, ``attacks/`` and
``configs/`` are symbolic links to these three folders. """


from __future__ import annotations

from importlib import resources
from pathlib import Path

from neurofl.errors import UserError

# kind (the name the callers use; also the checkout's top-level link) -> folder inside neurofl/shipped
_FOLDERS = {"hardware_profiles": "profiles", "attacks": "recipes", "fl_configs": "configs"}


def shipped_dir(kind: str) -> Path:
    """Folder of shipped TOML files: ``hardware_profiles``, ``attacks`` or ``fl_configs``."""
    return Path(str(resources.files("neurofl.shipped").joinpath(_FOLDERS[kind])))


def shipped_tomls(kind: str) -> dict[str, Path]:
    """Name -> path of each shipped TOML file of ``kind``."""
    return {p.stem: p for p in sorted(shipped_dir(kind).glob("*.toml"))}


def resolve_toml(kind: str, name_or_path: str | Path, what: str) -> Path:
    """A shipped file of ``kind`` by name, or a user's TOML by path (``what`` names it in errors)."""
    shipped = shipped_tomls(kind)
    text = str(name_or_path)
    if text in shipped:
        return shipped[text]
    if text.endswith(".toml") or "/" in text or Path(text).exists():
        return Path(text)
    raise UserError(f"unknown {what} '{text}' (shipped: {', '.join(shipped)}; or give a path to a .toml file)")
