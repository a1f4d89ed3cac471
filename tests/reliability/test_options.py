"""One numeric option type: every float option of every command, and every number of a profile,
refuses NaN, +-inf and values a float cannot hold, with one line naming the option or key."""

from __future__ import annotations

import importlib
from pathlib import Path

import click
import pytest

from neurofl.cli import COMMANDS, run
from neurofl.commands.common import FiniteFloat
from neurofl.errors import UserError
from neurofl.profiles import load_profile, shipped_profiles

NOT_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e999", "1" + "0" * 400]


def _commands() -> dict[str, click.Command]:
    out = {}
    for name, target in COMMANDS.items():
        module, attr = target.split(":")
        cmd = getattr(importlib.import_module(module), attr)
        if isinstance(cmd, click.Group):
            out.update({f"{name} {sub}": c for sub, c in cmd.commands.items()})
        else:
            out[name] = cmd
    return out


def _float_options() -> list[tuple[str, str]]:
    return [
        (name, p.opts[0])
        for name, cmd in _commands().items()
        for p in cmd.params
        if isinstance(p.type, (FiniteFloat, click.types.FloatParamType))
    ]


def test_every_float_option_is_a_finite_float():
    floats = _float_options()
    assert len(floats) >= 13  # attack, evaluate, fl (10), export, import
    wrong = [(n, o) for n, cmd in _commands().items() for p in cmd.params for o in p.opts[:1]
             if isinstance(p.type, click.types.FloatParamType) and not isinstance(p.type, FiniteFloat)]  # fmt: skip
    assert not wrong, f"float options without FiniteFloat: {wrong}"


@pytest.mark.parametrize(("command", "option"), _float_options())
def test_float_options_refuse_values_that_are_not_finite(command, option):
    cmd = _commands()[command]
    param = next(p for p in cmd.params if p.opts[0] == option)
    for text in NOT_FINITE:
        with pytest.raises(click.BadParameter) as e:
            param.type.convert(text, param, None)
        assert "\n" not in e.value.format_message()


def test_attack_local_lr_nan_is_refused_before_anything_runs():
    cmd = _commands()["attack"]
    for value, needle in (("nan", "not a finite number"), ("2000", "not in the range")):
        with pytest.raises(click.BadParameter) as e:
            cmd.make_context("attack", ["--local-lr", value])
        assert "--local-lr" in e.value.format_message() and needle in e.value.format_message()
    assert cmd.make_context("attack", ["--local-lr", "1e3"]).params["local_lr"] == 1e3


def test_the_cli_prints_one_line_and_exits_2(capsys):
    assert run(["attack", "--local-lr", "nan"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--local-lr" in err[0] and "finite" in err[0], err


def test_finite_float_bounds():
    t = FiniteFloat(min=0, min_open=True, max=1)
    assert t.convert("1", None, None) == 1.0 and t.convert(" 0.5 ", None, None) == 0.5
    for bad in ("0", "-1", "1.0001", "x", ""):
        with pytest.raises(click.BadParameter):
            t.convert(bad, None, None)
    assert FiniteFloat().convert("-1e308", None, None) == -1e308


def _edited(tmp_path: Path, name: str, key: str, value: str) -> Path:
    text = shipped_profiles()[name].read_text()
    lines = [f"{key} = {value}" if line.split("=")[0].strip() == key else line for line in text.splitlines()]
    assert lines != text.splitlines(), key
    out = tmp_path / f"{name}-edited.toml"
    out.write_text("\n".join(lines) + "\n")
    return out


@pytest.mark.parametrize(
    ("profile", "key", "value", "needle"),
    [
        ("speck", "hidden_neurons", "1" + "0" * 400, "chip.hidden_neurons"),
        ("speck", "hidden_neurons", "1" + "0" * 30, "chip.hidden_neurons"),
        ("speck", "hidden_neurons", "1e30", "chip.hidden_neurons"),
        ("truenorth", "input_channels", str(2**53 + 1), "chip.input_channels"),
        ("loihi2", "energy_per_synop_pj", "1e308", "resources.energy_per_synop_pj"),
        ("loihi2", "energy_per_neuron_update_pj", "nan", "resources.energy_per_neuron_update_pj"),
        ("loihi2", "energy_per_neuron_update_pj", "inf", "resources.energy_per_neuron_update_pj"),
    ],
)
def test_profile_numbers_out_of_a_float_are_refused(tmp_path, profile, key, value, needle):
    path = _edited(tmp_path, profile, key, value)
    with pytest.raises(UserError) as e:
        load_profile(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and needle in msg and len(msg) < 300, msg


def test_shipped_profiles_still_load():
    for name in shipped_profiles():
        load_profile(name)
