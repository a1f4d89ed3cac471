"""No number without a source (issue 13): every section of a shipped profile cites its source, every
numeric key has a value or an explicit "unknown", and "unknown" is accepted only where the schema
allows it (an unpublished limit), never as a silent default."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from neurofl.config import read_toml
from neurofl.errors import UserError
from neurofl.profiles import UNKNOWN, UNKNOWN_ALLOWED, HardwareProfile, load_profile, shipped_profiles

# Numeric keys a profile may leave out: their default is the only value its other keys allow
# (single-event payloads carry one input and one output event per step).
FORCED_DEFAULTS = {("spikes", "input_max_per_step"), ("spikes", "output_max_per_step")}


def _numeric(tp: typing.Any) -> bool:
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return any(a in (int, float) for a in args)


@pytest.mark.parametrize("name", sorted(shipped_profiles()))
def test_every_section_cites_a_source_and_every_number_is_given(name):
    table = read_toml(shipped_profiles()[name])
    p = load_profile(name)
    hints = typing.get_type_hints(HardwareProfile)
    for f in dataclasses.fields(HardwareProfile):
        section = getattr(p, f.name)
        if not dataclasses.is_dataclass(section):
            continue
        raw = table[f.name]
        assert raw.get("source", "").strip(), f"{name}: [{f.name}] has no source"
        section_hints = typing.get_type_hints(type(section))
        for g in dataclasses.fields(section):
            if not _numeric(section_hints[g.name]):
                continue
            if g.name not in raw:
                assert (f.name, g.name) in FORCED_DEFAULTS, f"{name}: '{f.name}.{g.name}' has no value"
                assert p.spikes.payload != "count", f"{name}: a count payload must give '{f.name}.{g.name}'"
                continue
            value = raw[g.name]
            if value == UNKNOWN:
                assert g.name in UNKNOWN_ALLOWED and getattr(section, g.name) is None
            else:
                assert isinstance(value, (int, float)) and not isinstance(value, bool), (name, f.name, g.name)
    assert hints  # the schema was read


def test_xylo_sources_name_their_urls():
    for name in ("xylo-audio2", "xylo-imu"):
        p = load_profile(name)
        assert "https://rockpool.ai/devices/xylo-overview.html" in p.chip.source
        assert "xylosim" in p.neuron.source and "xylosim" in p.spikes.source


def _with_chip_value(tmp_path, key: str, value: str):
    text = shipped_profiles()["xylo-audio2"].read_text()
    lines = [f'{key} = "{value}"' if line.startswith(f"{key} = ") else line for line in text.splitlines()]
    path = tmp_path / "edited.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_unknown_is_refused_where_a_number_is_required(tmp_path):
    with pytest.raises(UserError, match="key 'chip.hidden_neurons': must be an integer"):
        load_profile(_with_chip_value(tmp_path, "hidden_neurons", UNKNOWN))
    assert load_profile(_with_chip_value(tmp_path, "max_fan_out", UNKNOWN)).chip.max_fan_out is None


def test_a_missing_number_is_refused(tmp_path):
    text = shipped_profiles()["xylo-audio2"].read_text()
    path = tmp_path / "missing.toml"
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("max_fan_in")) + "\n")
    with pytest.raises(UserError, match="missing key 'chip.max_fan_in'"):
        load_profile(path)
