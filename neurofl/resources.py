"""Where shipped data files (profiles, attack recipes) live, installed or in a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from neurofl.errors import UserError

_PACKAGES = {"hardware_profiles": "neurofl.hardware_profiles", "attacks": "neurofl.attack_recipes"}


def shipped_dir(kind: str) -> Path:
    """Folder of shipped TOML files: ``hardware_profiles`` or ``attacks``."""
    try:
        return Path(str(resources.files(_PACKAGES[kind])))
    except ModuleNotFoundError:  # running from a checkout that is not installed
        return Path(__file__).resolve().parent.parent / kind


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
