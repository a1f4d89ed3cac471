"""Test helpers for reports and profiles: what is compared across runs, and edited profile copies."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def without_timing(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` (evaluate's report.json content) with every wall-clock figure removed, in place:
    the rest must be equal between runs of the same configuration."""
    for row in report["results"]:
        row.pop("seconds")
        row.pop("phases")
        for pa in row["per_attack"].values():
            pa.pop("seconds", None)
    return report


def edited_loihi2(tmp_path: Path, **changes: Any) -> Any:
    """The shipped loihi2 profile with ``key = value`` lines replaced, written under ``tmp_path`` and
    loaded (e.g. ``edited_loihi2(tmp_path, cores=4)``)."""
    from neurofl.profiles import load_profile, shipped_profiles

    text = shipped_profiles()["loihi2"].read_text()
    for key, value in changes.items():
        text = "\n".join(f"{key} = {value}" if line.startswith(f"{key} =") else line for line in text.splitlines())
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return load_profile(path)
