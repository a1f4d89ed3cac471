"""Where shipped data files (profiles, attack recipes) live, installed or in a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

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
