"""Gradient informativeness (neurofl/leakage/informativeness.py): known answers from algebra, then the
digits ANN and SNN of the project."""

from __future__ import annotations

import dataclasses
import doctest
import json

import numpy as np
import pytest
import torch

import neurofl.leakage.informativeness as inf
from neurofl.data.base import split_dataset
from neurofl.data.registry import load_dataset
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.leakage.victims import draw_victims, shared_updates
from neurofl.models import architecture_for, build_model
from neurofl.profiles import load_profile, quantize_update


def outer_sum(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sum_i g_i x_i^T: g (B, out), x (B, in) -> (out, in)."""
    return np.einsum("bo,bi->oi", g, x)


def test_docstring_example():
    assert doctest.testmod(inf, raise_on_error=False).failed == 0


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_update_from_b_independent_inputs_has_rank_b_and_zero_angles(batch):
    rng = np.random.default_rng(batch)
    x, g = rng.normal(size=(batch, 20)), rng.normal(size=(batch, 12))
    m = inf.span_measures(outer_sum(g, x), x)
    assert m["rank"] == batch and m["input_rank"] == batch
    assert m["cos2"] == pytest.approx(1.0, abs=1e-10)
    assert m["energy"] == pytest.approx(1.0, abs=1e-10)
    assert m["in_span"] == pytest.approx(1.0, abs=1e-10)
    assert 1.0 <= m["erank"] <= batch + 1e-9
    _, qu = inf.row_space(outer_sum(g, x))
    _, qx = inf.row_space(x)
    np.testing.assert_allclose(inf.principal_cosines(qu, qx), np.ones(batch), atol=1e-10)


def test_rank_saturates_at_the_input_dimension():
    rng = np.random.default_rng(0)
    x, g = rng.normal(size=(10, 6)), rng.normal(size=(10, 12))  # B = 10 > in = 6
    m = inf.span_measures(outer_sum(g, x), x)
    assert m["rank"] == 6 and m["input_rank"] == 6 and m["cos2"] == pytest.approx(1.0)


def test_rank_saturates_at_the_output_dimension_and_cos2_counts_missing_directions():
    rng = np.random.default_rng(1)
    x, g = rng.normal(size=(10, 20)), rng.normal(size=(10, 4))  # out = 4 < B = 10 < in
    m = inf.span_measures(outer_sum(g, x), x)
    assert m["rank"] == 4 and m["input_rank"] == 10
    assert m["cos2"] == pytest.approx(4 / 10)  # 4 angles of 0, 6 input directions out of reach
    assert m["in_span"] == pytest.approx(1.0)  # the update still lies inside the inputs' span


def test_effective_rank_known_values():
    assert inf.effective_rank(np.array([1.0, 1.0, 1.0, 1.0])) == pytest.approx(4.0)
    assert inf.effective_rank(np.array([5.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert inf.effective_rank(np.zeros(3)) == 0.0
    p = np.array([0.75, 0.25])
    assert inf.effective_rank(np.array([3.0, 1.0])) == pytest.approx(np.exp(-(p * np.log(p)).sum()))


def test_inputs_orthogonal_to_a_subspace_are_at_90_degrees():
    rng = np.random.default_rng(2)
    eye = np.eye(10)
    x = rng.normal(size=(4, 7)) @ eye[3:]  # inputs in span(e4..e10)
    u = outer_sum(rng.normal(size=(4, 5)), x)
    _, qu = inf.row_space(u)
    cos = inf.principal_cosines(qu, eye[:3].T)  # against span(e1, e2, e3)
    np.testing.assert_allclose(np.degrees(np.arccos(cos)), 90.0, atol=1e-6)
    m = inf.span_measures(u, eye[:3] * np.array([[1.0], [2.0], [3.0]]))
    assert m["cos2"] == pytest.approx(0.0, abs=1e-12)
    assert m["energy"] == pytest.approx(0.0, abs=1e-12)
    assert m["in_span"] == pytest.approx(0.0, abs=1e-12)


def test_a_45_degree_angle():
    u = np.outer([1.0, -2.0], [1.0, 0.0, 0.0])  # row space span(e1)
    m = inf.span_measures(u, np.array([[1.0, 1.0, 0.0]]))  # input span(e1 + e2)
    assert m["cos2"] == pytest.approx(0.5) and m["energy"] == pytest.approx(0.5)
    assert m["in_span"] == pytest.approx(0.5)


def test_step_shares_equal_the_constructed_ones():
    norms = np.array([3.0, 1.0, 0.0, 2.0])
    terms = np.zeros((4, 4, 5))
    for t, n in enumerate(norms):  # disjoint supports: orthogonal terms of known norms
        terms[t, t, t] = n
    share, contribution = inf.step_shares(terms)
    np.testing.assert_allclose(share, norms / norms.sum())
    np.testing.assert_allclose(contribution, norms**2 / (norms**2).sum())
    assert sum(share) == pytest.approx(1.0) and sum(contribution) == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    share, contribution = inf.step_shares(rng.normal(size=(6, 3, 4)))  # not orthogonal: still sum to 1
    assert sum(share) == pytest.approx(1.0) and sum(contribution) == pytest.approx(1.0)
    assert min(share) >= 0


def test_per_step_updates_rebuild_the_constructed_terms():
    torch.manual_seed(0)
    n, batch, d, o, t = 6, 3, 5, 4, 7
    a, g = torch.randn(n, d, t), torch.randn(n, o, t)  # SLAYER Dense layout: (n, features, T)
    layer = torch.nn.Linear(d, o, bias=False)
    terms = inf.per_step_updates(inf.layer_vectors(layer, a), inf.output_vectors(g), batch)
    assert terms.shape == (n // batch, t, o, d)
    for v in range(n // batch):
        for s in range(t):
            want = sum(torch.outer(g[i, :, s], a[i, :, s]) for i in range(v * batch, (v + 1) * batch)) / batch
            torch.testing.assert_close(terms[v, s], want.double())


def test_conv_patches_give_the_conv_weight_gradient():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False)
    x = torch.randn(2, 2, 7, 7)
    out = conv(x)
    w = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * w).sum(), conv.weight)
    terms = inf.per_step_updates(inf.layer_vectors(conv, x), inf.output_vectors(w), batch=2)
    torch.testing.assert_close(terms.sum(1)[0].float() * 2, grad.flatten(1), rtol=1e-5, atol=1e-5)


def test_the_rounding_error_tolerance_keeps_the_rank_of_a_quantized_update():
    fmt = load_profile("loihi2").update  # int8, nearest
    rng = np.random.default_rng(4)
    u = outer_sum(rng.normal(size=(2, 64)), rng.normal(size=(2, 40)))  # rank 2
    q = quantize_update(torch.from_numpy(u)[None], fmt)[0].numpy()
    noise = inf.singular_values(q - u)[0]
    s = inf.singular_values(q)
    assert s[2] <= noise < s[1]  # Weyl: |s_k(q) - s_k(u)| <= ||q - u||_2, and s_2(u) = 0
    assert inf.span_measures(q, np.eye(40), noise=noise)["rank"] == 2
    assert inf.span_measures(q, np.eye(40))["rank"] > 2  # without it the rounding error counts


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    return ds, split_dataset(ds, 0)


@pytest.mark.parametrize("batch", [1, 4, 16])
def test_the_digits_ann_first_layer_update_has_rank_b_and_carries_the_input_span(digits, batch):
    ds, splits = digits
    victims = draw_victims(splits.clients, 2, batch, 2, 0)
    profile = load_profile("float32")
    model = build_model("ann", architecture_for(ds.input_shape, ds.classes), profile, seed=0)
    r = inf.first_layer_informativeness(model, victims.x, victims.y, profile, batch, seed=0)
    json.dumps(r, allow_nan=False)
    assert r["rank"] == batch and r["rank_uploaded"] == batch and r["input_rank_static"] == batch
    for key in ("cos2_static", "energy_static", "in_span_static", "cos2_steps", "energy_steps", "in_span_steps"):
        assert r[key] == pytest.approx(1.0, abs=1e-6), key
    assert r["step_share"] == [1.0] and r["time_steps"] == 1
    assert r["layer1.rank"] == min(batch, ds.classes - 1)  # softmax gradients sum to 0 over classes


@pytest.mark.parametrize("profile_name", ["float32", "loihi2"])
def test_the_digits_snn_measures_are_computed_and_bounded(digits, profile_name):
    ds, splits = digits
    batch = 4
    victims = draw_victims(splits.clients, 2, batch, 2, 0)
    profile = load_profile(profile_name)
    model = build_model("snn", architecture_for(ds.input_shape, ds.classes), profile, seed=0)
    r = inf.first_layer_informativeness(model, victims.x, victims.y, profile, batch, seed=0)
    json.dumps(r, allow_nan=False)
    steps = profile.simulation.time_steps
    assert r["time_steps"] == steps and len(r["step_share"]) == steps == len(r["step_contribution"])
    assert sum(r["step_share"]) == pytest.approx(1.0) and sum(r["step_contribution"]) == pytest.approx(1.0)
    shares = [k for k in r if k.rsplit(".", 1)[-1].startswith(("cos2", "energy", "in_span"))]
    assert any(k.startswith("layer1.") for k in shares)
    for key in shares:
        assert -1e-9 <= r[key] <= 1 + 1e-9, key
    assert 1 <= r["rank"] <= batch and 1 <= r["erank"] <= r["rank"]


@pytest.mark.parametrize("encoding", ["direct", "rate"])
def test_the_per_step_terms_sum_to_the_update_victims_computes(digits, encoding):
    ds, splits = digits
    batch = 4
    victims = draw_victims(splits.clients, 2, batch, 2, 0)
    f32 = load_profile("float32")
    profile = dataclasses.replace(f32, spikes=dataclasses.replace(f32.spikes, input_encoding=encoding))
    model = build_model("snn", architecture_for(ds.input_shape, ds.classes), profile, seed=0)
    seed = 5
    uploaded = shared_updates(model, victims, profile, seed=seed)  # float upload: the exact gradient
    enc = torch.Generator().manual_seed(seed + 1000)  # the clients' encoding draw (victims.shared_updates)
    direct = per_sample_gradients(model, victims.x, victims.y, group=batch, generator=enc)
    signals = inf.layer_signals(model, victims.x, victims.y, torch.Generator().manual_seed(seed + 1000))
    for name, module, a, g in signals:
        terms = inf.per_step_updates(inf.layer_vectors(module, a), inf.output_vectors(g), batch)
        total = terms.sum(1).float().reshape(uploaded[name].shape)
        torch.testing.assert_close(total, uploaded[name], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(total, direct[name], rtol=1e-4, atol=1e-6)

    r = inf.first_layer_informativeness(model, victims.x, victims.y, profile, batch, seed=seed)
    # the exact update rebuilt from the steps is the one uploaded: same encoding draw as the victims'
    assert r["erank"] == pytest.approx(r["erank_uploaded"], rel=1e-5)
    assert r["rank"] == r["rank_uploaded"] and r["cos2_steps"] == pytest.approx(r["cos2_steps_uploaded"])
    again = inf.first_layer_informativeness(model, victims.x, victims.y, profile, batch, seed, uploaded=uploaded)
    assert again == r
