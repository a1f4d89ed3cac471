"""Learned inversion on the first-layer readout (``readout = "residual"``): the inverter predicts a
correction to the input the first layer's update already holds, so it reconstructs samples rather
than a typical member of their class; a model without a readout gets the plain inverter."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch

from neurofl.attacks.learned import Features, Inverter, Readout, readout, uses_readout
from neurofl.attacks.recipe import load_attack, load_recipe
from neurofl.attacks.registry import prepare, run_recipe
from neurofl.attacks.target import Target
from neurofl.data import load_dataset, split_dataset
from neurofl.errors import UserError
from neurofl.leakage.scoring import judge_for, sample_scores
from neurofl.leakage.victims import draw_victims, shared_updates
from neurofl.models import architecture_for, build_model
from neurofl.profiles import load_profile
from neurofl.shipped import shipped_tomls


def _case(dataset: str, kind: str, profile: str, victims: int, batch: int, seed: int = 0, local_steps: int = 1):
    ds = load_dataset(dataset)
    splits = split_dataset(ds, seed)
    v = draw_victims(splits.clients, victims, batch, 8, seed)
    prof = load_profile(profile)
    model = build_model(kind, architecture_for(ds.input_shape, ds.classes), prof, seed=seed)
    update = shared_updates(model, v, prof, seed, local_steps, 0.1)
    target = Target(model, update, batch, tuple(ds.input_shape), ds.classes, kind, ds.kind == "events", prof,
                    splits.auxiliary, local_steps, 0.1)  # fmt: skip
    return ds, splits, v, target


def _recipe(**changes):
    base = dataclasses.replace(load_recipe("learned_inversion"), readout="residual", unmix="svd")
    return dataclasses.replace(base, **changes)


def _untrained(target: Target, recipe, path, seed: int = 0) -> Inverter:
    """Save an untrained inverter (its correction head is zero) where ``prepare`` would put one."""
    feats = Features(target, recipe, seed)
    torch.manual_seed(seed)
    net = Inverter(feats.dim, target.batch, target.input_size, target.classes, recipe.hidden, recipe.layers,
                   residual=uses_readout(target, recipe))  # fmt: skip
    buf = io.BytesIO()
    torch.save({"seed": seed, "net": net.state_dict()}, buf)
    path.write_bytes(buf.getvalue())
    return net


def _identified(ds, splits, v, images, loss, batch):
    judge = judge_for(ds, splits, 0)
    s = sample_scores(judge, images.numpy(), loss.numpy(), v.x.numpy(), v.y.numpy(), v.index, batch)
    return s.identified


def test_zero_correction_returns_the_readout_and_identifies_every_digit(tmp_path):
    """Noiseless toy case: a dense float ANN at batch 1. The first layer's weight gradient is
    ``dz x^T``, so the readout is the input up to its scale; an untrained residual inverter returns
    it exactly, and every reconstruction singles its digit out of the pool (IIP 1)."""
    ds, splits, v, t = _case("digits", "ann", "float32", 8, 1)
    recipe = _recipe(hidden=64)
    assert uses_readout(t, recipe)
    _untrained(t, recipe, tmp_path / "inv.pt")
    inv = run_recipe(t, recipe, None, 1, cache=tmp_path / "inv.pt")
    x0 = readout(t.update, 1, t.input_size).reshape(-1, *t.input_shape)
    assert torch.equal(inv.images, x0)
    truth = v.x.reshape(len(v.x), -1)
    cos = torch.nn.functional.cosine_similarity(x0.reshape(len(x0), -1), truth, dim=1)
    assert cos.min() > 0.999  # the readout is the sample (up to its scale)
    assert _identified(ds, splits, v, inv.images, inv.loss, 1).all()


def test_a_fedavg_delta_of_a_dense_layer_is_read_too(tmp_path):
    """FedAvg (2 local steps) at batch 1: the first layer's delta is a sum of ``dz_k x^T``, still the
    input up to its scale, so the zero-correction inverter identifies every sample."""
    ds, splits, v, t = _case("digits", "ann", "float32", 4, 1, local_steps=2)
    recipe = _recipe(hidden=64)
    _untrained(t, recipe, tmp_path / "inv.pt")
    inv = run_recipe(t, recipe, None, 1, cache=tmp_path / "inv.pt")
    assert _identified(ds, splits, v, inv.images, inv.loss, 1).all()


def test_a_trained_residual_inverter_still_identifies_the_digits(tmp_path):
    """Training the correction on simulated updates of the auxiliary data does not pull the
    reconstructions back to class prototypes (the plain inverter's failure: IIP 0 at batch 1)."""
    ds, splits, v, t = _case("digits", "ann", "float32", 8, 1)
    recipe = _recipe(hidden=128, training_updates=256, epochs=3, batch_size=64)
    prepare(t, recipe, 0, tmp_path / "inv.pt")
    inv = run_recipe(t, recipe, None, 1, cache=tmp_path / "inv.pt")
    assert torch.isfinite(inv.images).all() and inv.images.min() >= 0 and inv.images.max() <= 1
    assert _identified(ds, splits, v, inv.images, inv.loss, 1).all()
    again = run_recipe(t, recipe, None, 1, cache=tmp_path / "inv.pt")  # the cached inverter, reused
    torch.testing.assert_close(again.images, inv.images)


def test_the_snn_readout_at_batch_two_has_one_start_per_sample(tmp_path):
    """SNN (loihi2, direct input) at batch 2: the inverter gets one readout row per sample slot
    (the update's top right singular vectors) and runs end to end."""
    _, _, _, t = _case("digits", "snn", "loihi2", 4, 2)
    recipe = _recipe(hidden=64, training_updates=32, epochs=1, batch_size=16)
    assert uses_readout(t, recipe)
    x0 = Readout(t, recipe, 0)(t.update)
    assert x0.shape == (4, 2, t.input_size) and x0.min() >= 0 and x0.max() <= 1
    net = _untrained(t, recipe, tmp_path / "zero.pt")
    assert net.residual
    inv = run_recipe(t, recipe, None, 1, cache=tmp_path / "zero.pt")
    assert torch.equal(inv.images, x0.reshape(-1, *t.input_shape))
    prepare(t, recipe, 0, tmp_path / "inv.pt")
    inv = run_recipe(t, recipe, None, 1, cache=tmp_path / "inv.pt")
    assert inv.images.shape == (8, *t.input_shape) and inv.labels.shape == (8,)


def test_als_unmixing_separates_a_float_ann_batch(tmp_path):
    """``unmix = "als"``: at batch > 1 the starts are disaggregation's alternating least squares
    from the SVD readout; for a float ANN that separates the batch (the SVD rows are mixtures)."""
    ds, splits, v, t = _case("digits", "ann", "float32", 4, 2)
    svd, als = _recipe(hidden=64), _recipe(hidden=64, unmix="als")
    ids = {}
    for name, recipe in (("svd", svd), ("als", als)):
        _untrained(t, recipe, tmp_path / f"{name}.pt")
        inv = run_recipe(t, recipe, None, 1, cache=tmp_path / f"{name}.pt")
        ids[name] = _identified(ds, splits, v, inv.images, inv.loss, 2)
    assert ids["als"].all() and ids["als"].sum() > ids["svd"].sum()


def test_a_conv_first_layer_falls_back_to_the_plain_inverter(tmp_path):
    """No readout (a convolutional first layer): the recipe still runs, with the plain inverter."""
    _, _, _, t = _case("faces", "ann", "float32", 2, 1)
    recipe = _recipe(hidden=32, training_updates=16, epochs=1, batch_size=16)
    assert not uses_readout(t, recipe)
    prepare(t, recipe, 0, tmp_path / "inv.pt")
    inv = run_recipe(t, recipe, None, 1, cache=tmp_path / "inv.pt")
    assert inv.images.shape == (2, *t.input_shape) and torch.isfinite(inv.images).all()
    state = torch.load(tmp_path / "inv.pt", weights_only=True)
    assert state["net"]["trunk.0.weight"].shape[1] == Features(t, recipe, 0).dim  # no readout input


def test_the_default_keeps_the_plain_inverter():
    r = load_recipe("learned_inversion")
    plain = dataclasses.replace(r, readout="none")
    assert type(r)(name="x", attack="learned_inversion").readout == "none"
    net = Inverter(17, 1, 64, 10, 32, 2, residual=plain.readout == "residual")
    assert not net.residual and net.trunk[0].in_features == 17


def test_the_shipped_recipes_use_the_readout():
    for name in ("learned_inversion", "suite", "suite_study", "suite_full"):
        _, recipes = load_attack(name)
        li = [r for r in recipes if r.name == "learned_inversion"][0]
        assert li.readout == "residual" and li.unmix == "svd"


def _write(tmp_path, **changes) -> str:
    lines = [ln for ln in shipped_tomls("attacks")["learned_inversion"].read_text().splitlines()
             if ln.split("=")[0].strip() not in changes]  # fmt: skip
    lines += [f"{k} = {v}" for k, v in changes.items()]
    path = tmp_path / "r.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "changes,needle",
    [
        ({"readout": '"analytic"'}, "'readout'"),
        ({"readout": "true"}, "'readout'"),
        ({"unmix": '"ica"'}, "'unmix'"),
        ({"readout": '"none"', "unmix": '"als"'}, "'unmix'"),
        ({"precision": '"float16"'}, "'precision'"),
    ],
)
def test_bad_readout_keys_are_refused_in_one_line(tmp_path, changes, needle):
    with pytest.raises(UserError) as e:
        load_attack(_write(tmp_path, **changes))
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and "r.toml" in msg


def test_the_matched_loss_pairs_outputs_with_the_inputs_they_equal():
    """The best pairing of B outputs with a shuffled copy of them is the shuffle itself: the loss is
    the label term of the matching labels, where the order as given is far off."""
    from torch.nn.functional import cross_entropy

    from neurofl.attacks.learned import _matched_loss

    gen = torch.Generator().manual_seed(0)
    img, logit = torch.rand(5, 16, 300, generator=gen), torch.randn(5, 16, 10, generator=gen)
    y = torch.randint(0, 10, (5, 16), generator=gen)
    order = torch.stack([torch.randperm(16, generator=gen) for _ in range(5)])
    x_shuffled = torch.gather(img, 1, order[..., None].expand_as(img))
    y_shuffled = torch.gather(y, 1, order)
    labels_only = 0.01 * cross_entropy(logit.flatten(0, 1), y.flatten())
    torch.testing.assert_close(_matched_loss(img, logit, x_shuffled, y_shuffled), labels_only)
    assert torch.nn.functional.mse_loss(img, x_shuffled) > 0.1


def test_the_count_sketch_keeps_inner_products_in_expectation():
    """E[<Su, Sv>] = <u, v> for a count sketch S (Charikar et al. 2002): the mean over 400 seeds
    lies within four standard errors of the exact inner product."""
    from neurofl.attacks.learned import CountSketch

    gen = torch.Generator().manual_seed(5)
    u = torch.randn(1, 400, generator=gen, dtype=torch.float64)
    v = u + torch.randn(1, 400, generator=gen, dtype=torch.float64)  # correlated, so the inner product is far from 0
    dots = torch.stack([(CountSketch(400, 32, s)(u) * CountSketch(400, 32, s)(v)).sum() for s in range(400)])
    exact = (u * v).sum()
    assert abs(dots.mean() - exact) < 4 * dots.std() / 400**0.5
    assert exact > 8 * dots.std() / 400**0.5  # the test could tell a biased sketch from a fair one


def test_an_update_past_the_dense_limit_is_sketched_and_its_estimate_is_small():
    """A 1.6M-weight MLP over 12,800 inputs at batch 16: the features and the trunk's view of the 16
    readouts are count sketches: the whole estimate is below what a dense projection alone needs."""
    from neurofl.attacks.learned import CountSketch, _inverter
    from neurofl.attacks.recipe import DENSE_PROJECTION
    from neurofl.models.arch import Architecture
    from neurofl.runs import memory

    shape = (12800,)
    prof = load_profile("float32")
    model = build_model("ann", Architecture(shape, 10), prof, seed=0)
    gen = torch.Generator().manual_seed(0)
    update = {k: torch.randn(2, *p.shape, generator=gen) for k, p in model.named_parameters()}
    target = Target(model, update, 16, shape, 10, "ann", False, prof)
    recipe = dataclasses.replace(load_recipe("learned_inversion"), training_updates=2048, epochs=12)
    assert sum(p.numel() for p in model.parameters()) * recipe.projection_dim > DENSE_PROJECTION
    feats = Features(target, recipe, 0)
    assert isinstance(feats.proj, CountSketch) and feats(update).shape == (2, recipe.projection_dim + 1)
    net = _inverter(target, recipe, feats, 0)
    assert net.trunk[0].in_features == feats.dim + recipe.projection_dim
    dense_projection = sum(p.numel() for p in model.parameters()) * recipe.projection_dim * 4
    assert memory.estimate(target, recipe).bytes(4) < dense_projection


def test_bfloat16_trains_the_same_inverter_up_to_rounding(tmp_path):
    """``precision = "bfloat16"`` (the shipped recipe's) runs the inverter's products under autocast:
    the reconstructions are float32 in [0, 1], differ from float32 training's (autocast is on) but
    only by rounding's drift over a short training, and each precision is deterministic."""
    _, _, _, t = _case("digits", "ann", "float32", 4, 2)
    assert load_recipe("learned_inversion").precision == "bfloat16"
    out = {}
    for precision in ("float32", "bfloat16"):
        recipe = _recipe(readout="none", hidden=64, training_updates=64, epochs=2, batch_size=32, precision=precision)
        prepare(t, recipe, 0, tmp_path / f"{precision}.pt")
        out[precision] = run_recipe(t, recipe, None, 1, cache=tmp_path / f"{precision}.pt").images
        assert out[precision].dtype == torch.float32 and 0 <= out[precision].min() <= out[precision].max() <= 1
        prepare(t, recipe, 0, tmp_path / f"{precision}-again.pt")
        again = run_recipe(t, recipe, None, 1, cache=tmp_path / f"{precision}-again.pt").images
        assert torch.equal(again, out[precision])
    gap = (out["float32"] - out["bfloat16"]).abs()
    assert 0 < gap.max() and gap.mean() < 0.02
