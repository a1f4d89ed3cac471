"""Round trips through NIR with the real frameworks (snnTorch 0.9.4, Norse 1.1.0, nir 1.0.4).

Each framework runs its own simulation; spikes are compared bin by bin (one output neuron at one
step of one sample) with neurofl's SLAYER blocks on the same binary spike trains, neurofl shifted
back by one step per layer (its blocks' ``delay_shift``; see conftest.py). Networks are tiny and
seeded; weights are drawn on the chip's grid where the test claims exact equality, so that the
only remaining difference would be the simulators'.
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from neurofl.models import Architecture, build_model
from neurofl.nir_io.from_model import write_nir
from neurofl.nir_io.read import read_nir
from neurofl.nir_io.to_model import to_model
from neurofl.profiles import load_profile
from neurofl_testing.nir_nets import snntorch_synaptic_net

snn = pytest.importorskip("snntorch")
norse = pytest.importorskip("norse.torch")


def _grid_weights(shape: tuple[int, int], g: torch.Generator, denominator: float) -> torch.Tensor:
    """Multiples of 1/denominator, mostly small, a little positive on average (so layers spike sparsely)."""
    return torch.randint(-40, 48, shape, generator=g).float() / denominator


def _snntorch_net(g: torch.Generator, **neuron) -> torch.nn.Module:
    return snntorch_synaptic_net(lambda shape: _grid_weights(shape, g, 32), **neuron)


def _run_snntorch(net: torch.nn.Module, x: torch.Tensor, helpers) -> torch.Tensor:
    import snntorch.utils

    snntorch.utils.reset(net)
    return helpers.stepped_spikes(lambda xt, state: (net(xt)[0], None), x)


def _import(graph: nir.NIRGraph, tmp_path: Path, dt: float, profile: str = "loihi1"):
    path = tmp_path / "net.nir"
    nir.write(path, graph)
    return to_model(read_nir(path), load_profile(profile), dt)


def test_snntorch_synaptic_imports_with_identical_spikes(tmp_path, spikes_in, helpers):
    """snnTorch Synaptic with reset to zero at once (reset_mechanism='zero', reset_delay=False: the
    chip's reset), weights on the grid: every bin agrees."""
    from snntorch.export_nir import export_to_nir

    net = _snntorch_net(torch.Generator().manual_seed(1), reset_mechanism="zero", reset_delay=False)
    imported = _import(export_to_nir(net, torch.zeros(1, 64)), tmp_path, dt=1e-4)
    assert all("exact" in n and "scaled" not in n for n in imported.notes), imported.notes
    theirs = _run_snntorch(net, spikes_in, helpers)
    ours = helpers.neurofl_spikes(imported.model, spikes_in)
    bad, total = helpers.mismatches(ours, theirs, layers=2)
    rate = float(theirs.mean())
    assert 0.05 < rate < 0.8, f"degenerate test network (spike rate {rate:.2f})"
    assert bad == 0, f"{bad} of {total} bins differ"


def test_snntorch_default_reset_differs_by_the_measured_amount(tmp_path, spikes_in, helpers):
    """snnTorch's default neuron subtracts the threshold, one step late (reset_delay=True); NIR
    does not record the reset, neurofl (and snnTorch's own importer) reset to zero at once. The
    difference is real and measured here: 119 of 3,200 bins (3.7%) on this seeded network;
    tolerated up to 8% (it grows with the spike rate: each spike's leftover voltage is kept by
    snnTorch, dropped by the chip)."""
    from snntorch.export_nir import export_to_nir

    net = _snntorch_net(torch.Generator().manual_seed(1))  # snnTorch defaults: subtract, delayed
    imported = _import(export_to_nir(net, torch.zeros(1, 64)), tmp_path, dt=1e-4)
    theirs = _run_snntorch(net, spikes_in, helpers)
    bad, total = helpers.mismatches(helpers.neurofl_spikes(imported.model, spikes_in), theirs, layers=2)
    print(f"snnTorch default reset: {bad} of {total} bins differ")
    assert 0 < bad / total <= 0.08


def test_snntorch_float_weights_differ_by_grid_rounding(tmp_path, spikes_in, helpers):
    """Float weights (trained elsewhere) land on the 8-bit grid: each layer is scaled to use the
    range (spikes unchanged) and rounded (spikes change near threshold). Measured: 21 of 3,200
    bins (0.7%) on this seeded network; tolerated up to 3%."""
    from snntorch.export_nir import export_to_nir

    net = _snntorch_net(torch.Generator().manual_seed(1), reset_mechanism="zero", reset_delay=False)
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.weight.add_(torch.randn(m.weight.shape, generator=torch.Generator().manual_seed(6)) * 0.01)
    imported = _import(export_to_nir(net, torch.zeros(1, 64)), tmp_path, dt=1e-4)
    assert all("rounded" in n and "scaled" in n for n in imported.notes), imported.notes
    theirs = _run_snntorch(net, spikes_in, helpers)
    bad, total = helpers.mismatches(helpers.neurofl_spikes(imported.model, spikes_in), theirs, layers=2)
    print(f"snnTorch float weights on the loihi1 grid: {bad} of {total} bins differ")
    assert bad / total <= 0.03


def _norse_net(g: torch.Generator, cell) -> torch.nn.Module:
    net = norse.SequentialState(
        torch.nn.Linear(64, 16, bias=False), cell(), torch.nn.Linear(16, 10, bias=False), cell()
    )
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.weight.copy_(_grid_weights(tuple(m.weight.shape), g, 4))  # x 0.125 (the Euler gain) -> 1/32 grid
    return net


def test_norse_lifbox_imports_with_identical_spikes(tmp_path, spikes_in, helpers):
    """Norse LIFBoxCell (exported as NIR LIF) is forward Euler, as NIR says: every bin agrees.

    Norse 1.1.0 writes ``tau = dt / tau_inv`` (not ``1 / tau_inv``), so its files are read with
    dt = (its step)^2 = 1e-6 for its default 1e-3."""
    net = _norse_net(torch.Generator().manual_seed(2), lambda: norse.LIFBoxCell(norse.LIFBoxParameters(
        tau_mem_inv=torch.tensor(125.0))))  # fmt: skip
    imported = _import(norse.to_nir(net, torch.zeros(1, 64)), tmp_path, dt=1e-6)
    assert all("exact" in n for n in imported.notes), imported.notes
    assert imported.arch.neuron.voltage_decay == 0.125 and imported.arch.neuron.current_decay == 1.0
    theirs = helpers.stepped_spikes(net, spikes_in)
    bad, total = helpers.mismatches(helpers.neurofl_spikes(imported.model, spikes_in), theirs, layers=2)
    assert 0.05 < float(theirs.mean()) < 0.8
    assert bad == 0, f"{bad} of {total} bins differ"


def test_norse_lifcell_differs_as_documented(tmp_path, spikes_in, helpers):
    """Norse's LIFCell (exported as CubaLIF with w_in = 1) adds each input to its current as a
    jump of 1; the Euler step of the CubaLIF it writes adds w_in * dt / tau_syn (here 0.25). So the
    file, read as NIR defines it, is a different network: many bins differ (measured: 702 of
    3,200). The explanation is checked exactly: with w_in = tau_syn / dt (Norse's actual gain)
    every bin agrees."""
    net = _norse_net(torch.Generator().manual_seed(3), lambda: norse.LIFCell(norse.LIFParameters(
        tau_mem_inv=torch.tensor(125.0), tau_syn_inv=torch.tensor(250.0))))  # fmt: skip
    theirs = helpers.stepped_spikes(net, spikes_in)
    graph = norse.to_nir(net, torch.zeros(1, 64))
    as_written = _import(graph, tmp_path, dt=1e-6)
    bad, total = helpers.mismatches(helpers.neurofl_spikes(as_written.model, spikes_in), theirs, layers=2)
    print(f"Norse LIFCell as its NIR says: {bad} of {total} bins differ")
    assert bad > 0.05 * total
    for node in graph.nodes.values():
        if isinstance(node, nir.CubaLIF):  # Norse's actual input gain: w_in = tau_syn / dt
            node.w_in = np.ones_like(node.w_in) * (np.asarray(node.tau_syn) / 1e-6)
    compensated = _import(graph, tmp_path, dt=1e-6)
    bad, total = helpers.mismatches(helpers.neurofl_spikes(compensated.model, spikes_in), theirs, layers=2)
    assert bad == 0, f"{bad} of {total} bins differ"


@pytest.fixture(scope="module")
def digits_snn():
    """neurofl's digits topology (64-128-10) under loihi2, seeded initialization (it spikes)."""
    profile = load_profile("loihi2")
    return build_model("snn", Architecture((1, 8, 8), 10, (128,)), profile, seed=0).eval()


def test_neurofl_model_runs_in_snntorch_and_norse_with_identical_spikes(tmp_path, spikes_in, helpers, digits_snn):
    from snntorch.import_nir import import_from_nir

    path = tmp_path / "digits.nir"
    write_nir(digits_snn, path, dt=1e-4)
    ours = helpers.neurofl_spikes(digits_snn, spikes_in)
    assert 0.05 < float(ours.mean()) < 0.8
    in_snntorch = import_from_nir(nir.read(path))
    bad, total = helpers.mismatches(ours, helpers.stepped_spikes(in_snntorch, spikes_in), layers=2)
    assert bad == 0, f"snnTorch: {bad} of {total} bins differ"
    in_norse = norse.from_nir(nir.read(path), dt=1e-4)
    bad, total = helpers.mismatches(ours, helpers.stepped_spikes(in_norse, spikes_in), layers=2)
    assert bad == 0, f"Norse: {bad} of {total} bins differ"


def test_neurofl_to_nir_and_back_is_identical(tmp_path, spikes_in, helpers, digits_snn):
    path = tmp_path / "digits.nir"
    write_nir(digits_snn, path)
    back = to_model(read_nir(path), digits_snn.profile, 1e-4, (1, 8, 8))
    assert back.arch.widths == digits_snn.arch.widths
    assert all("scaled" not in n and "rounded" not in n and "decay" not in n for n in back.notes), back.notes
    for a, b in zip(digits_snn.blocks, back.model.blocks, strict=True):
        q = digits_snn.profile.quantize_weight
        assert torch.equal(q(a.synapse.weight), q(b.synapse.weight))
        assert torch.equal(torch.round(a.neuron.current_decay), torch.round(b.neuron.current_decay))
        assert torch.equal(torch.round(a.neuron.voltage_decay), torch.round(b.neuron.voltage_decay))
        assert a.neuron.threshold == b.neuron.threshold
    assert torch.equal(helpers.neurofl_spikes(digits_snn, spikes_in), helpers.neurofl_spikes(back.model, spikes_in))
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    assert torch.equal(digits_snn(x), back.model(x))  # the full model: encoding and the graded-input floor
