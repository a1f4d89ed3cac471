"""The strong attacks: each meets what theory or the literature says it can on the ANN, runs batched
and chunk-invariant, and says why where it does not apply."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from neurofl.attacks.labels import recover_labels, solve_labels
from neurofl.attacks.recipe import load_recipe
from neurofl.attacks.registry import prepare, run_recipe, why_not
from neurofl.attacks.target import Target
from neurofl.data import load_dataset, split_dataset
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.leakage.scoring import judge_for, label_accuracy, sample_scores
from neurofl.leakage.victims import draw_victims, shared_updates
from neurofl.models import architecture_for, build_model
from neurofl.profiles import load_profile


def _case(dataset: str, kind: str, profile: str, victims: int, batch: int, seed: int = 0):
    ds = load_dataset(dataset)
    splits = split_dataset(ds, seed)
    v = draw_victims(splits.clients, victims, batch, 8, seed)
    prof = load_profile(profile)
    model = build_model(kind, architecture_for(ds.input_shape, ds.classes), prof, seed=seed)
    update = shared_updates(model, v, prof, seed)
    target = Target(model, update, batch, tuple(ds.input_shape), ds.classes, kind, ds.kind == "events", prof,
                    splits.auxiliary)  # fmt: skip
    return ds, splits, v, target


def _asr(ds, splits, v, inv, batch) -> float:
    judge = judge_for(ds, splits, 0)
    s = sample_scores(judge, inv.images.numpy(), inv.loss.numpy(), v.x.numpy(), v.y.numpy(), v.index, batch)
    return float(s.hit.mean())


def _labels(t: Target) -> torch.Tensor:
    return recover_labels(t.model, t.gradients(), t.batch, t.input_shape, 0)


def test_cocktail_party_recovers_three_quarters_of_an_ann_batch_of_8(tmp_path):
    """Issue requirement: Cocktail Party on the digits MLP at batch 8 recovers >= 75% (measured 0.97
    on 16 victims with the shipped recipe; here 4 victims, refined by the shipped disaggregation's
    alternating least squares without its derivative-free search: 0.94, as with the search)."""
    ds, splits, v, t = _case("digits", "ann", "float32", 4, 8)
    shipped = (Path(__file__).parents[2] / "attacks" / "disaggregation.toml").read_text()
    assert "search_generations = 160" in shipped
    refine = tmp_path / "disaggregation_als.toml"
    refine.write_text(shipped.replace("search_generations = 160", "search_generations = 0"))
    recipe = dataclasses.replace(load_recipe("cocktail_party"), refine=str(refine))
    inv = run_recipe(t, recipe, _labels(t), 1)
    asr = _asr(ds, splits, v, inv, 8)
    labels = label_accuracy(inv.labels.numpy(), v.y.numpy(), 8)
    print(f"cocktail_party ann@float32 batch 8: ASR {asr:.3f}, labels {labels:.3f}")
    assert asr >= 0.75


def test_learned_inversion_recovers_the_ann_at_batch_1(tmp_path):
    """Issue requirement: learned inversion on the digits MLP at batch 1 reaches ASR >= 0.8
    (measured 0.94 with the shipped recipe); it is trained only on the auxiliary split."""
    ds, splits, v, t = _case("digits", "ann", "float32", 16, 1)
    recipe = dataclasses.replace(load_recipe("learned_inversion"), training_updates=2048, epochs=12)
    prepare(t, recipe, 0, tmp_path / "inv.pt")
    inv = run_recipe(t, recipe, None, 1, cache=tmp_path / "inv.pt")
    asr = _asr(ds, splits, v, inv, 1)
    print(f"learned_inversion ann@float32 batch 1: ASR {asr:.3f}")
    assert asr >= 0.8
    # the inverter is cached: a second run (a resumed one) reads it and gives the same reconstructions
    again = run_recipe(t, recipe, None, 1, cache=tmp_path / "inv.pt")
    torch.testing.assert_close(again.images, inv.images)


def test_disaggregation_is_exact_on_the_float_ann_at_batch_4():
    """Theory: for a float ANN the victims' inputs are a fixed point of the alternating least squares,
    and labels solved from the update are exact once the inputs are (measured: 100 dB at batch 4)."""
    ds, splits, v, t = _case("digits", "ann", "float32", 4, 4)
    recipe = dataclasses.replace(load_recipe("disaggregation"), als_iterations=40, search_generations=0)
    inv = run_recipe(t, recipe, _labels(t), 1)
    judge = judge_for(ds, splits, 0)
    s = sample_scores(judge, inv.images.numpy(), inv.loss.numpy(), v.x.numpy(), v.y.numpy(), v.index, 4)
    assert np.nanmedian(s.psnr) > 40
    assert label_accuracy(inv.labels.numpy(), v.y.numpy(), 4) == 1.0


@pytest.mark.parametrize(
    "kind,profile,floor", [("ann", "float32", 1.0), ("snn", "float32", 1.0), ("snn", "loihi2", 0.9)]
)
def test_labels_solved_from_the_true_inputs(kind, profile, floor):
    """A gradient is linear in the one-hot label once the input is fixed, for the SNN too: given the
    inputs, least squares over the update finds the labels (float updates: all of them)."""
    _, _, v, t = _case("digits", kind, profile, 8, 8)
    found = solve_labels(t.model, v.x, t.gradients(), 8, t.classes, torch.Generator().manual_seed(1000))
    acc = label_accuracy(found.numpy(), v.y.numpy(), 8)
    print(f"labels from true inputs {kind}@{profile} batch 8: {acc:.3f}")
    assert acc >= floor


def test_detached_backward_succeeds_where_the_full_backward_fails_on_the_snn():
    """Measured (16 victims, 300 iterations, uniform start): IG 0.50 vs detached IG 0.94 on snn@loihi2."""
    ds, splits, v, t = _case("digits", "snn", "loihi2", 8, 1)
    labels = _labels(t)
    base = dataclasses.replace(load_recipe("detached_ig"), iterations=200, init="uniform")
    full = run_recipe(t, dataclasses.replace(base, backward="full"), labels, 1)
    det = run_recipe(t, base, labels, 1)
    a_full, a_det = _asr(ds, splits, v, full, 1), _asr(ds, splits, v, det, 1)
    print(f"snn@loihi2 batch 1, uniform start, 200 iterations: full backward {a_full:.3f}, detached {a_det:.3f}")
    assert a_det >= 0.75 and a_det > a_full


def test_detached_gradients_equal_the_analytic_first_layer_term(digits):
    """With dz detached, d<dW1(x), G>/dx is G^T dz (the layer's linear map): an independent reference."""
    x, y = digits[0][:3].clone().requires_grad_(True), digits[1][:3]
    model = build_model("ann", architecture_for((1, 8, 8), 10), load_profile("float32"), seed=0)
    g = torch.randn(3, 128, 64, generator=torch.Generator().manual_seed(0))
    grads = per_sample_gradients(model, x, y, create_graph=True, detach_backward=True)
    (dx,) = torch.autograd.grad((grads["layers.0.weight"] * g).sum(), x)
    dz = per_sample_gradients(model, x.detach(), y)["layers.0.weight"]  # dz x^T per sample
    # dz for each sample: any row-space vector; recover it from the weight gradient and x
    xd = x.detach().reshape(3, -1)
    dz_vec = torch.einsum("noi,ni->no", dz, xd) / (xd * xd).sum(1, keepdim=True)
    expected = torch.einsum("noi,no->ni", g, dz_vec)
    torch.testing.assert_close(dx.reshape(3, -1), expected, rtol=1e-4, atol=1e-6)


def test_rgap_recovers_the_conv_ann_input_and_refuses_the_snn():
    """R-GAP: closed-form recovery of a LeNet-style conv ANN's batch-1 input (faces 25x25: measured
    ~96 dB, re-identification 1.00); on the conv SNN it says why it cannot run."""
    ds, splits, v, t = _case("faces", "ann", "float32", 2, 1)
    recipe = load_recipe("rgap")
    assert why_not(t, recipe) is None
    inv = run_recipe(t, recipe, _labels(t), 1)
    judge = judge_for(ds, splits, 0)
    s = sample_scores(judge, inv.images.numpy(), inv.loss.numpy(), v.x.numpy(), v.y.numpy(), v.index, 1)
    assert s.psnr.min() > 40 and s.hit.all()
    _, _, _, snn = _case("faces", "snn", "loihi2", 2, 1)
    assert "spike" in why_not(snn, recipe)


def test_first_layer_attacks_say_why_on_a_conv_model():
    _, _, _, t = _case("faces", "snn", "loihi2", 2, 2)
    for name in ("cocktail_party", "disaggregation"):
        assert "convolutional" in why_not(t, load_recipe(name))
    assert why_not(t, load_recipe("learned_inversion")) is None


def test_cocktail_party_says_why_at_batch_one_and_runs_above():
    """At batch 1 a fully connected first layer's update is rank one: there is nothing to unmix."""
    _, _, _, one = _case("digits", "snn", "loihi2", 2, 1)
    assert "rank one" in why_not(one, load_recipe("cocktail_party"))
    assert why_not(one, load_recipe("disaggregation")) is None
    _, _, _, two = _case("digits", "snn", "loihi2", 2, 2)
    assert why_not(two, load_recipe("cocktail_party")) is None


def test_cocktail_party_says_why_when_the_batch_exceeds_the_update_rank():
    """A first-layer update of H neurons over D inputs has rank at most min(H, D): ICA cannot separate
    more inputs than that (a secure-aggregation sum of 16 clients' batches of 16 on 8x8 digits)."""
    _, _, _, t = _case("digits", "ann", "float32", 1, 2)
    rank = min(next(iter(t.update.values())).shape[1], t.input_size)
    assert rank == 64  # 8x8 digits, a wider first layer
    recipe = load_recipe("cocktail_party")
    assert why_not(dataclasses.replace(t, batch=rank), recipe) is None
    reason = why_not(dataclasses.replace(t, batch=rank + 1), recipe)
    assert f"at most {rank} inputs" in reason and str(rank + 1) in reason
    assert why_not(dataclasses.replace(t, batch=rank + 1), load_recipe("disaggregation")) is None


@pytest.mark.parametrize("name", ["disaggregation", "cocktail_party_ica"])
def test_new_attacks_are_chunk_invariant(name):
    """Victim v attacked with its neighbours (seed s) equals victim v attacked alone (seed s + v)."""
    _, _, _, t = _case("digits", "snn", "float32", 3, 2)
    recipe = load_recipe(name)
    if name == "disaggregation":
        recipe = dataclasses.replace(recipe, als_iterations=4, search_generations=3)
    labels = _labels(t)
    both = run_recipe(t, recipe, labels, 5)
    for v in range(3):
        alone = run_recipe(t.chunk(v, v + 1), recipe, labels[2 * v : 2 * v + 2], 5 + v)
        torch.testing.assert_close(both.images[2 * v : 2 * v + 2], alone.images, rtol=1e-4, atol=1e-5)


def test_keep_best_never_returns_worse_than_its_start():
    """keep_best includes the start: the returned iterate's gradient distance is at most the start's."""
    from neurofl.attacks.inverting import gradient_distance, invert
    from neurofl.leakage.gradients import flatten

    _, _, v, t = _case("digits", "snn", "loihi2", 4, 2)
    start = (v.x + 0.3 * torch.randn(v.x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    recipe = dataclasses.replace(load_recipe("inverting_gradients"), iterations=20, tv_weight=0.0)
    inv = invert(t.model, t.update, v.y, t.input_shape, recipe, 1, batch=2, start=start)

    def distance(x):
        with torch.enable_grad():
            g = per_sample_gradients(t.model, x.clone().requires_grad_(True), v.y,
                                     generator=torch.Generator().manual_seed(2), group=2)  # fmt: skip
        return gradient_distance(flatten({k: a.detach() for k, a in g.items()}), flatten(t.update), "cosine")

    assert (inv.loss <= distance(start) + 1e-6).all()
