"""No number without a source (issue 13): every section of a shipped profile cites its source, every
numeric key has a value or an explicit "unknown", and "unknown" is accepted only where the schema
allows it (an unpublished limit), never as a silent default."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from neurofl.config import read_toml
from neurofl.errors import UserError
from neurofl.profiles import (
    PER_CORE_LIMITS,
    UNKNOWN,
    UNKNOWN_ALLOWED,
    HardwareProfile,
    load_profile,
    shipped_profiles,
)

# Numeric keys a profile may leave out, and when: single-event payloads carry one input and one
# output event per step (the only value allowed); weights without axon types are one weight per synapse.
FORCED_DEFAULTS = {
    ("spikes", "input_max_per_step"): lambda p: p.spikes.payload != "count",
    ("spikes", "output_max_per_step"): lambda p: p.spikes.payload != "count",
    ("weights", "axon_types"): lambda p: p.weights.axon_types == 0,
    # a chip network's [resources] gives energies only (its fit is checked against [chip])
    **{("resources", k): (lambda p: p.chip is not None) for k in PER_CORE_LIMITS},
}


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
                assert FORCED_DEFAULTS[(f.name, g.name)](p), f"{name}: must give '{f.name}.{g.name}'"
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


def _with_chip_value(tmp_path, key: str, value: str, base: str = "xylo-audio2"):
    text = shipped_profiles()[base].read_text()
    lines = [f'{key} = "{value}"' if line.startswith(f"{key} = ") else line for line in text.splitlines()]
    path = tmp_path / "edited.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_unknown_is_refused_where_a_number_is_required(tmp_path):
    for key in ("state_bits", "bits", "time_steps", "payload_bits"):  # chip arithmetic must be known
        with pytest.raises(UserError, match=f"key '[a-z]+.{key}'"):
            load_profile(_with_chip_value(tmp_path, key, UNKNOWN))
    assert load_profile(_with_chip_value(tmp_path, "max_fan_out", UNKNOWN)).chip.max_fan_out is None
    assert load_profile(_with_chip_value(tmp_path, "hidden_neurons", UNKNOWN)).chip.hidden_neurons is None


NEW_CHIPS = ("speck", "akd1000", "spinnaker2", "truenorth")


@pytest.mark.parametrize("name", NEW_CHIPS)
def test_new_chip_sources_cite_urls_or_papers(name):
    """Each section of the four added chips names a URL or a paper (no bare numbers)."""
    p = load_profile(name)
    for section in (p.weights, p.neuron, p.spikes, p.chip):
        assert "https://" in section.source or "et al." in section.source, (name, section.source)


def test_unpublished_limits_are_unknown_not_invented():
    assert load_profile("spinnaker2").chip.hidden_neurons is None  # software-defined neurons
    assert load_profile("speck").chip.max_fan_in is None
    assert load_profile("truenorth").chip.max_fan_out == 1 and load_profile("truenorth").chip.max_fan_in == 256


def test_a_missing_number_is_refused(tmp_path):
    text = shipped_profiles()["xylo-audio2"].read_text()
    path = tmp_path / "missing.toml"
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("max_fan_in")) + "\n")
    with pytest.raises(UserError, match="missing key 'chip.max_fan_in'"):
        load_profile(path)
