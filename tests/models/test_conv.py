import pytest
import torch
import torch.nn.functional as F

from neurofl.leakage.gradients import per_sample_gradients
from neurofl.models import build_model
from neurofl.models.conv import ConvArchitecture, ConvSNN
from neurofl.profiles import load_profile

SHAPES = [(1, 8, 8), (2, 12, 12, 6)]


def _input(shape, n, gen):
    if len(shape) == 4:  # binary event frames
        return (torch.rand(n, *shape, generator=gen) < 0.3).float()
    return torch.rand(n, *shape, generator=gen)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind,profile", [("ann", "float32"), ("snn", "float32"), ("snn", "loihi2")])
def test_per_sample_conv_gradients_equal_autograd(shape, kind, profile):
    gen = torch.Generator().manual_seed(0)
    model = build_model(kind, ConvArchitecture(shape, classes=4), load_profile(profile), seed=0)
    x, y = _input(shape, 3, gen), torch.tensor([0, 1, 3])
    grads = per_sample_gradients(model, x, y)
    assert list(grads) == [n for n, _ in model.weight_layers()]
    nonzero = 0
    for i in range(3):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1], reduction="sum").backward()
        for name, p in model.named_parameters():
            if name not in grads:  # neuron constants (decays, thresholds) are not trained
                assert not p.requires_grad
                continue
            torch.testing.assert_close(grads[name][i], p.grad, rtol=1e-4, atol=1e-6 * p.grad.abs().max().item())
            nonzero += int(p.grad.abs().max() > 0)
    assert nonzero >= 3 * 2  # at least two layers carry a gradient for every sample


def test_grouped_gradients_are_the_batch_mean():
    model = build_model("ann", ConvArchitecture((1, 8, 8), classes=3), load_profile("float32"), seed=1)
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    per = per_sample_gradients(model, x, y)
    grouped = per_sample_gradients(model, x, y, group=2)
    for name in per:
        torch.testing.assert_close(grouped[name], per[name].reshape(2, 2, *per[name].shape[1:]).mean(1))


def test_seed_reproduces_weights_and_output_shapes():
    arch = ConvArchitecture((1, 25, 25), classes=2)
    a = build_model("snn", arch, load_profile("loihi2"), seed=3)
    b = build_model("snn", arch, load_profile("loihi2"), seed=3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert arch.feature_maps() == [(12, 13, 13), (12, 7, 7), (12, 7, 7)]
    assert a(torch.rand(2, 1, 25, 25)).shape == (2, 2)
    assert build_model("ann", arch, load_profile("float32"), 3)(torch.rand(2, 1, 25, 25)).shape == (2, 2)


def test_netx_imports_the_exported_conv_snn(tmp_path):
    import h5py
    from lava.lib.dl import netx

    profile = load_profile("loihi2")
    model = ConvSNN(ConvArchitecture((2, 12, 12, 6), classes=4, strides=(2, 2)), profile)
    path = tmp_path / "conv.net"
    model.export_hdf5(path)
    net = netx.hdf5.Network(net_config=str(path))
    shapes = [tuple(layer.shape) for layer in net.layers]
    assert shapes == [(6, 6, 12), (3, 3, 12), (4,)]  # NetX orders conv shapes (x, y, f)
    with h5py.File(path) as f:
        w = f["layer/1/weight"][()]
    # exported weights are the profile's 8-bit mantissas: even integers in [-256, 254]
    q = profile.quantize_weight(model.blocks[0].synapse.weight, descale=True).detach()
    assert w.min() >= -256 and w.max() <= 254 and (w % 2 == 0).all()
    assert abs(w).sum() == pytest.approx(q.abs().sum().item())
