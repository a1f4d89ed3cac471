"""The compiled CPU scan (:mod:`neurofl.models.cuba_kernel`, the default) equals the NumPy scan
(the reference, held equal to SLAYER by test_cuba.py) value for value: every decay pair, both
dtypes, thresholds with and without reset, both resets, scales that are not powers of two, states
past 2**24 (SLAYER's float32 comparison), non-finite inputs, odd neuron counts around the block
size and non-contiguous inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurofl.models.cuba import FusedCubaNeuron, cuba_states, scan_backend
from neurofl.models.cuba_kernel import BLOCK, cuba_scan
from neurofl_testing.scans import DECAYS, THRESHOLD, W_SCALE, scan_input


def _assert_equal_to_numpy(x: torch.Tensor, *args: object) -> tuple[torch.Tensor, torch.Tensor]:
    with scan_backend("numpy"):
        expected = cuba_states(x, *args)  # type: ignore[arg-type]
    got = cuba_states(x, *args)  # type: ignore[arg-type]  # "auto": the compiled scan on the CPU
    for a, b in zip(expected, got, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and b.is_contiguous()
        torch.testing.assert_close(b, a, rtol=0, atol=0, equal_nan=True)
    return got


@pytest.mark.parametrize("current_decay", DECAYS)
@pytest.mark.parametrize("voltage_decay", DECAYS)
def test_every_decay_pair_equals_numpy(current_decay: int, voltage_decay: int) -> None:
    for seed, (dtype, scale) in enumerate([(torch.float32, 0.3), (torch.float64, 3.0), (torch.float32, 8.0)]):
        x = scan_input((3, 20, 16), scale, dtype, seed)
        _, voltage = _assert_equal_to_numpy(x, current_decay, voltage_decay, W_SCALE, THRESHOLD)
        assert bool((voltage >= THRESHOLD).any()) or scale < 1  # the reset is exercised


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("threshold", [0.5, THRESHOLD, 40.0, 0.0, -1.0], ids=["low", "default", "high", "0", "neg"])
@pytest.mark.parametrize("w_scale", [W_SCALE, 64, 100])
def test_thresholds_resets_and_scales_equal_numpy(threshold: float, w_scale: int, reset: str) -> None:
    """Thresholds <= 0 mean no reset (SLAYER's convention); a w_scale that is not a power of two
    makes the float32 division ``state / w_scale`` round."""
    for seed, dtype in enumerate((torch.float32, torch.float64)):
        _assert_equal_to_numpy(scan_input((2, 7, 25), 4.0, dtype, seed), 1024, 123, w_scale, threshold, reset)


def test_states_past_2_24_compare_in_float32() -> None:
    """Inputs large enough for the voltage state to pass 2**24, where the NumPy scan switches to
    SLAYER's float32 comparison, and a threshold that float32 rounds."""
    x = scan_input((4, 9, 30), 3e3, torch.float64, 3).abs()
    threshold = 4097.0 + 1 / 3
    _, voltage = _assert_equal_to_numpy(x, 0, 0, W_SCALE, threshold)
    assert float(voltage.abs().max()) * W_SCALE >= 2**24


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the NumPy reference on NaN
@pytest.mark.parametrize("neurons", [1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5])
def test_block_edges_and_non_finite_inputs(neurons: int) -> None:
    x = scan_input((neurons, 12), 2.0, torch.float32, neurons)
    x[0, 3] = float("nan")
    x[-1, 0] = float("inf")
    x[neurons // 2, 5] = -float("inf")
    _assert_equal_to_numpy(x, 1024, 123, W_SCALE, THRESHOLD)
    _assert_equal_to_numpy(x[:0], 1024, 123, W_SCALE, THRESHOLD)


def test_non_contiguousscan_input() -> None:
    x = scan_input((5, 16, 6), 2.0, torch.float64, 9).transpose(0, 1)
    assert not x.is_contiguous()
    _assert_equal_to_numpy(x, 1024, 123, W_SCALE, THRESHOLD)


def test_neuron_spikes_and_gradients_equal_on_both_scans() -> None:
    neuron = FusedCubaNeuron(threshold=1.25, current_decay=0.25, voltage_decay=0.03)
    x = scan_input((6, 11, 16), 1.5, torch.float64, 4)
    outs = []
    for backend in ("numpy", "auto"):
        xi = x.clone().requires_grad_(True)
        with scan_backend(backend):  # type: ignore[arg-type]
            s = neuron.delayed_spikes(xi)
            (g,) = torch.autograd.grad((s * torch.linspace(0, 1, 16, dtype=torch.float64)).sum(), xi)
        outs.append((s.detach(), g))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert outs[0][0].sum() > 0


def test_cuba_scan_without_reset_is_two_integrators() -> None:
    """An independent reference: without a threshold the voltage is the running integral of the
    current, each a plain truncating leaky sum (integers, exact)."""
    x = np.array([[0.5, 0.25, 1.0, 0.0]], np.float64)
    c, v = cuba_scan(x, 64, 0.75, 0.5, None, "zero")
    sc, sv, cs, vs = 0.0, 0.0, [], []
    for t in range(4):
        sc = np.trunc(sc * 0.75) + np.trunc(x[0, t] * 64)
        cs.append(sc / 64)
        sv = np.trunc(sv * 0.5) + np.trunc(sc / 64 * 64)
        vs.append(sv / 64)
    assert c.tolist() == [cs] and v.tolist() == [vs]
