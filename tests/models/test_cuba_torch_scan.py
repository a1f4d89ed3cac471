"""The fused CUBA neuron's torch scan (the path CUDA tensors take) equals its NumPy scan (the CPU
path, held equal to SLAYER by test_cuba.py): forced onto CPU tensors with ``scan_backend("torch")``,
states and spikes value for value over seeds, dtypes, dense and conv shapes, both integrators'
decays (edge values included), thresholds with and without reset and SLAYER's float32 comparison
above 2**24; input gradients of first and second order to 1e-5. Where CUDA exists, the CUDA path
is compared with the CPU."""

from __future__ import annotations

import pytest
import torch
from lava.lib.dl.slayer.neuron import cuba as slayer_cuba

from neurofl.models import NeuronParams
from neurofl.models import cuba as fused_cuba
from neurofl.models.cuba import FusedCubaNeuron, cuba_states, integrate, scan_backend
from neurofl_testing.scans import DECAYS, THRESHOLD, W_SCALE, scan_input


def _both(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on the NumPy scan (the CPU default), then forced onto the torch scan."""
    with scan_backend("numpy"):
        a = fn(*args, **kwargs)
    with scan_backend("torch"):
        b = fn(*args, **kwargs)
    return a, b


def _assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape and b.is_contiguous()
    assert torch.equal(a, b), f"{int((a != b).sum())} of {a.numel()} bins differ"


@pytest.mark.parametrize("current_decay", DECAYS)
@pytest.mark.parametrize("voltage_decay", DECAYS)
def test_states_equal_numpy_for_every_decay_pair(current_decay: int, voltage_decay: int) -> None:
    for seed, (dtype, scale) in enumerate([(torch.float32, 0.3), (torch.float64, 3.0), (torch.float32, 8.0)]):
        x = scan_input((3, 20, 16), scale, dtype, seed)
        numpy_states, torch_states = _both(cuba_states, x, current_decay, voltage_decay, W_SCALE, THRESHOLD)
        for a, b in zip(numpy_states, torch_states, strict=True):
            _assert_same(a, b)
        assert bool((numpy_states[1] >= THRESHOLD).any()) or scale < 1  # the reset is exercised


@pytest.mark.parametrize("threshold", [0.5, THRESHOLD, 40.0, 0.0, -1.0], ids=["low", "default", "high", "0", "neg"])
@pytest.mark.parametrize("w_scale", [W_SCALE, 64, 100])
def test_integrate_equals_numpy_for_thresholds_and_scales(threshold: float, w_scale: int) -> None:
    """Thresholds <= 0 mean no reset (SLAYER's convention); a w_scale that is not a power of two
    makes the float32 division ``state / w_scale`` round."""
    for seed, dtype in enumerate((torch.float32, torch.float64)):
        x = scan_input((5, 7, 24), 4.0, dtype, 20 + seed).abs()
        for decay in (0, 300, 4096):
            _assert_same(*_both(integrate, x, decay, w_scale, threshold))
        for a, b in zip(*_both(cuba_states, x, 1024, 123, w_scale, threshold), strict=True):
            _assert_same(a, b)


def test_huge_states_take_the_float32_comparison_on_the_torch_path_too() -> None:
    """Above 2**24 SLAYER compares the int64 state with the threshold in float32 (both rounded):
    the torch scan always compares in float32, the NumPy scan switches to it; both agree with SLAYER."""
    params = {**NeuronParams().as_slayer(), "threshold": 5000.0, "voltage_decay": 0.0, "current_decay": 0.0}
    ref, fused = slayer_cuba.Neuron(**params), FusedCubaNeuron(**params)
    x = scan_input((3, 50, 30), 2000.0, torch.float32, 7).abs()
    _, v = ref.dynamics(x)
    assert float(v.abs().max()) * ref.s_scale > 2**24
    with scan_backend("torch"):
        for a, b in zip(ref.dynamics(x), fused.dynamics(x), strict=True):
            _assert_same(a, b)
        assert torch.equal(ref(x), fused(x))
    # the voltage's own reset at a threshold that float32 rounds (5000.01 * 4096 is not a float32)
    x = scan_input((2, 40, 30), 3000.0, torch.float64, 8).abs()
    for decay in (0, 77):
        _assert_same(*_both(integrate, x, decay, W_SCALE, 5000.01))


PARAMS = [
    NeuronParams().as_slayer(),
    {**NeuronParams().as_slayer(), "threshold": 0.5, "current_decay": 0.9, "voltage_decay": 0.5},
    {**NeuronParams().as_slayer(), "threshold": 40.0, "current_decay": 0.0, "voltage_decay": 0.0},
    {**NeuronParams().as_slayer(), "current_decay": 1.0, "voltage_decay": 1.0},
]
SHAPES = {"dense": (6, 40, 16), "conv": (3, 4, 6, 5, 16)}


@pytest.mark.parametrize("params", PARAMS, ids=["default", "leaky", "no-leak", "full-leak"])
@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_neuron_spikes_and_states_equal_numpy_and_slayer(params: dict, shape: str) -> None:
    """The whole neuron (dynamics, spikes, delayed spikes) on dense (N, C, T) and conv
    (N, C, H, W, T) inputs: the torch path equals the NumPy path and SLAYER's own neuron."""
    for seed, (dtype, scale) in enumerate([(torch.float32, 1.0), (torch.float64, 5.0), (torch.float32, 0.3)]):
        x = scan_input(SHAPES[shape], scale, dtype, 30 + seed)
        numpy_neuron, torch_neuron = FusedCubaNeuron(**params), FusedCubaNeuron(**params)
        with scan_backend("numpy"):
            expected = (*numpy_neuron.dynamics(x), numpy_neuron(x), numpy_neuron.delayed_spikes(x))
        with scan_backend("torch"):
            got = (*torch_neuron.dynamics(x), torch_neuron(x), torch_neuron.delayed_spikes(x))
        for a, b in zip(expected, got, strict=True):
            _assert_same(a, b)
        assert torch.equal(slayer_cuba.Neuron(**params)(x), got[2])
        if scale >= 1:
            assert got[2].sum() > 0


@pytest.mark.parametrize("params", PARAMS[:2], ids=["default", "leaky"])
@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_input_gradients_first_and_second_order_compose(params: dict, shape: str) -> None:
    """The backward is the same torch code on both paths; it must compose with the torch forward
    (first- and second-order input gradients, as the attacks take them)."""
    x0 = scan_input(SHAPES[shape], 1.0, torch.float64, 3)
    weights = scan_input(SHAPES[shape], 1.0, torch.float64, 4)
    out = []
    for backend in ("numpy", "torch"):
        neuron = FusedCubaNeuron(**params)
        with scan_backend(backend):
            x = x0.clone().requires_grad_(True)
            loss = (neuron.delayed_spikes(x) * weights).sum()
            (g,) = torch.autograd.grad(loss, x, create_graph=True)
            (gg,) = torch.autograd.grad((g**2).sum(), x)
            out.append((g.detach(), gg))
    (g_np, gg_np), (g_t, gg_t) = out
    assert g_np.abs().max() > 0 and gg_np.abs().max() > 0
    torch.testing.assert_close(g_t, g_np, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(gg_t, gg_np, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_whole_models_equal_on_both_scans(arch: str) -> None:
    """Whole SNNs (the blocks' fused path, ``run_block``): output spikes bin for bin and the
    per-sample weight gradients the attacks match, torch scan against NumPy scan."""
    from neurofl.leakage.gradients import per_sample_gradients
    from neurofl.models import Architecture, build_model
    from neurofl.models.conv import ConvArchitecture
    from neurofl.profiles import load_profile

    a = Architecture((1, 8, 8), 10) if arch == "mlp" else ConvArchitecture((1, 16, 16), 4, channels=4, strides=(2, 1))
    model = build_model("snn", a, load_profile("loihi2"), seed=0)
    x = torch.rand((5, *a.input_shape), generator=torch.Generator().manual_seed(0))
    y = torch.arange(5) % a.classes
    out = []
    for backend in ("numpy", "torch"):
        with scan_backend(backend):
            spikes = model.spikes(x, torch.Generator().manual_seed(1))
            grads = per_sample_gradients(model, x, y, generator=torch.Generator().manual_seed(1))
        out.append((spikes, grads))
    (s_np, g_np), (s_t, g_t) = out
    assert s_np.sum() > 0 and torch.equal(s_np, s_t)
    for k in g_np:
        torch.testing.assert_close(g_t[k], g_np[k], rtol=1e-5, atol=1e-5 * float(g_np[k].abs().max()))


def test_other_dtypes_and_auto_backend_take_the_torch_scan(monkeypatch) -> None:
    """float16 CPU tensors have no NumPy path: auto runs them through the torch scan (equal to
    SLAYER's own loop on the same dtype); float32 CPU tensors run NumPy unless forced."""
    x = scan_input((2, 10, 12), 2.0, torch.float16, 40)
    ref = slayer_cuba.Neuron(**PARAMS[0])
    for a, b in zip(ref.dynamics(x), cuba_states(x, 1024, 123, W_SCALE, THRESHOLD), strict=True):
        _assert_same(a, b)
    calls = []
    scripted = fused_cuba._scripted_scan()

    def counted(*args):
        calls.append(args)
        return scripted(*args)

    monkeypatch.setattr(fused_cuba, "_scripted_scan", lambda: counted)
    x32 = x.to(torch.float32)
    cuba_states(x32, 1024, 123, W_SCALE, THRESHOLD)
    assert calls == []
    with scan_backend("torch"):
        cuba_states(x32, 1024, 123, W_SCALE, THRESHOLD)
    assert len(calls) == 2  # current and voltage
    with scan_backend("torch"):
        cuba_states(x32, 0, 4096, W_SCALE, THRESHOLD)  # cumsum, then the drive itself: no loop
    assert len(calls) == 2


def test_scan_backend_is_scoped_and_checked() -> None:
    x = scan_input((1, 3, 5), 1.0, torch.float32, 50)
    with scan_backend("torch"):
        with pytest.raises(RuntimeError), scan_backend("numpy"):
            raise RuntimeError
        assert fused_cuba._SCAN_BACKEND.get() == "torch"  # restored after an exception
    assert fused_cuba._SCAN_BACKEND.get() == "auto"
    with pytest.raises(ValueError, match="scan backend"), scan_backend("cuda"):  # type: ignore[arg-type]
        pass
    for backend in ("numpy", "torch"):  # an empty batch
        with scan_backend(backend):
            assert all(s.shape == (0, 3, 5) for s in cuba_states(x[:0], 10, 20, W_SCALE, THRESHOLD))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_equals_cpu(shape: str, dtype: torch.dtype) -> None:
    """On CUDA (torch scan on the device) against the CPU (NumPy scan): states and spikes within
    float tolerance (the scan's integer arithmetic and the divisions are correctly rounded on both,
    so they are expected equal), input gradients of first and second order to 1e-5."""
    params = PARAMS[0]
    cpu, gpu = FusedCubaNeuron(**params), FusedCubaNeuron(**params).cuda()
    x = scan_input(SHAPES[shape], 2.0, dtype, 60)
    xc = x.cuda()
    assert fused_cuba._use_numpy(x) and not fused_cuba._use_numpy(xc)
    for a, b in zip((*cpu.dynamics(x), cpu(x)), (*gpu.dynamics(xc), gpu(xc)), strict=True):
        assert b.device.type == "cuda" and a.dtype == b.dtype
        torch.testing.assert_close(b.cpu(), a, rtol=1e-6, atol=2.0 / W_SCALE)
    s_cpu, s_gpu = cpu(x), gpu(xc).cpu()
    assert s_cpu.sum() > 0 and float((s_cpu != s_gpu).float().mean()) <= 1e-3
    x64 = x.to(torch.float64)
    weights = scan_input(SHAPES[shape], 1.0, torch.float64, 61)
    out = []
    for neuron, dev in ((cpu, "cpu"), (gpu, "cuda")):
        xi = x64.to(dev).requires_grad_(True)
        (g,) = torch.autograd.grad((neuron.delayed_spikes(xi) * weights.to(dev)).sum(), xi, create_graph=True)
        (gg,) = torch.autograd.grad((g**2).sum(), xi)
        out.append((g.detach().cpu(), gg.cpu()))
    torch.testing.assert_close(out[1][0], out[0][0], rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(out[1][1], out[0][1], rtol=1e-5, atol=1e-9)
