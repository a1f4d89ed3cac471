"""Profiles validate, the quantizers behave like SLAYER's, and bad profiles exit 2 naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lava.lib.dl import slayer

from neurofl.cli import main
from neurofl.profiles import UpdateFormat, load_profile, quantize_update, shipped_profiles

LOIHI2 = (Path(__file__).resolve().parents[2] / "hardware_profiles" / "loihi2.toml").read_text()


def test_every_shipped_profile_validates_and_has_sources():
    assert {"float32", "loihi1", "loihi2"} <= set(shipped_profiles())
    for name in shipped_profiles():
        p = load_profile(name)
        assert p.name == name
        for section in (p.weights, p.neuron, p.spikes, p.simulation, p.update):
            assert section.source.strip()


def test_profile_by_path_equals_shipped_name():
    assert load_profile(shipped_profiles()["loihi1"]) == load_profile("loihi1")


def test_weight_quantizer_equals_slayer_quantize_8bit():
    neuron = slayer.neuron.cuba.Neuron(threshold=1.0, current_decay=0.1, voltage_decay=0.1)
    w = torch.linspace(-5, 5, 2001)
    p = load_profile("loihi2")
    assert torch.equal(p.quantize_weight(w), neuron.quantize_8bit(w))
    assert torch.equal(p.quantize_weight(w, descale=True), neuron.quantize_8bit(w, descale=True))
    ints = p.quantize_weight(w, descale=True)
    assert ints.min() == -256 and ints.max() == 254 and (ints % 2 == 0).all()


def test_weight_quantizer_is_straight_through():
    w = torch.randn(50, requires_grad=True)
    load_profile("loihi2").quantize_weight(w).sum().backward()
    assert torch.equal(w.grad, torch.ones(50))


def test_update_quantizer_grid_and_error_bound():
    g = torch.randn(4, 30, 20, generator=torch.Generator().manual_seed(0))
    fmt = UpdateFormat("int", 8, "nearest", "test")
    q = quantize_update(g, fmt)
    scale = g.abs().amax(dim=(1, 2), keepdim=True) / 127
    ints = q / scale
    assert torch.allclose(ints, ints.round(), atol=1e-4)
    assert ints.abs().max() <= 127 + 1e-4
    assert ((q - g).abs() <= scale / 2 + 1e-7).all()
    assert torch.equal(quantize_update(g, UpdateFormat("float", 32, "nearest", "")), g)


def test_stochastic_rounding_is_unbiased():
    g = torch.full((1, 20000), 0.3)
    g[0, 0] = 1.0  # sets the scale to 1/127
    fmt = UpdateFormat("int", 8, "stochastic", "test")
    q = quantize_update(g, fmt, torch.Generator().manual_seed(0))
    assert abs(q[0, 1:].mean().item() - 0.3) < 1e-3
    assert len(torch.unique(q[0, 1:])) == 2


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda t: t.replace("bits = 8\nscale = 64", "bits = 8\nscale = 64\nbogus = 1", 1), "weights.bogus"),
        (lambda t: t.replace("time_steps = 16", 'time_steps = "16"'), "simulation.time_steps"),
        (lambda t: t.replace("time_steps = 16", "time_steps = 0"), "simulation.time_steps"),
        (lambda t: t.replace("bits = 8\nscale = 64", "bits = 0\nscale = 64", 1), "weights.bits"),
        (lambda t: t.replace('rounding = "nearest"', 'rounding = "up"'), "update.rounding"),
        (lambda t: t.replace("decay_bits = 12\n", ""), "neuron.decay_bits"),
        (
            lambda t: t.replace("energy_per_synop_pj = 23.6", "energy_per_synop_pj = -1.0"),
            "resources.energy_per_synop_pj",
        ),
        (
            lambda t: t.replace("energy_per_synop_pj = 23.6", "energy_per_synop_pj = nan"),
            "resources.energy_per_synop_pj",
        ),
        (lambda t: t.replace('payload = "graded"', 'payload = "binary"'), "spikes.input_encoding"),
        (lambda t: t + "\n[weights\n", "invalid TOML"),
    ],
)
def test_malformed_profile_exits_2_naming_the_key(tmp_path, capsys, edit, key):
    bad = tmp_path / "bad.toml"
    text = edit(LOIHI2)
    assert text != LOIHI2
    bad.write_text(text)
    with pytest.raises(SystemExit) as e:
        main(["profiles", "show", str(bad)])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert key in err and str(bad) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_profile_file_and_unknown_name_exit_2(tmp_path, capsys):
    for arg in [str(tmp_path / "none.toml"), "loihi9"]:
        with pytest.raises(SystemExit) as e:
            main(["profiles", "show", arg])
        assert e.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
