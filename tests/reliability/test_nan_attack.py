"""Robust numerics: an attack that diverges (NaN) for one victim is recorded as that victim's
failure; it neither changes the other victims' reconstructions nor poisons the row's metrics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from neurofl.attacks.inverting import invert
from neurofl.attacks.recipe import load_recipe
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.leakage.metrics import mse, psnr
from neurofl.leakage.scoring import Judge, sample_scores, summary
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile


def _setup():
    arch = Architecture((1, 4, 4), 10, hidden=(12,))
    model = build_model("ann", arch, load_profile("float32"), seed=0)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((3, 1, 4, 4)).astype(np.float32))
    y = torch.tensor([1, 4, 7])
    return model, x, y, per_sample_gradients(model, x, y)


@pytest.mark.parametrize(
    "init",
    [
        "uniform",
        "analytic",
    ],
)
def test_a_diverging_victim_is_recorded_and_isolated(init):
    model, x, y, grads = _setup()
    recipe = load_recipe("inverting_gradients")
    recipe = dataclasses.replace(recipe, iterations=30, restarts=1, labels="known", init=init)
    poisoned = {k: v.clone() for k, v in grads.items()}
    for v in poisoned.values():
        v[1] = float("nan")  # victim 1's update is NaN: its gradient distance diverges
    both = invert(model, poisoned, y, (1, 4, 4), recipe, seed=5)
    assert np.isnan(float(both.loss[1])) and np.isfinite(both.loss[[0, 2]].numpy()).all()
    for v in (0, 2):  # each healthy victim's result equals attacking it alone (seed + v, per the contract)
        alone = invert(model, {k: t[v : v + 1] for k, t in grads.items()}, y[v : v + 1], (1, 4, 4), recipe, 5 + v)
        torch.testing.assert_close(both.images[v : v + 1], alone.images, rtol=1e-5, atol=1e-6)


def test_failed_victims_count_against_asr_and_are_left_out_of_image_metrics():
    _, x, y, _ = _setup()
    rec = x.numpy() * 0.9
    rec[1] = np.nan
    judge = Judge("reid", None, x.numpy(), np.arange(3), False, 1 / 3)
    scores = sample_scores(judge, rec, np.array([0.1, np.nan, 0.2]), x.numpy(), y.numpy(), np.arange(3), 1)
    row = summary(scores, 1, judge)
    assert row["failed"] == 1 and row["victims"] == 3
    assert row["asr"] == 2 / 3  # the failed victim is a failure, not skipped
    ok = [0, 2]
    assert row["psnr"] == float(np.mean(psnr(rec[ok], x.numpy()[ok])))
    assert row["mse"] == float(np.mean(mse(rec[ok], x.numpy()[ok])))
    assert all(np.isfinite(row[k]) for k in ("psnr", "ssim", "mse", "l2", "asr"))
