"""scripts/bench_vs_breaching.py: the helpers that hand breaching our victims, without breaching itself."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from neurofl.attacks import invert, load_recipe
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench_vs_breaching")


@pytest.fixture(scope="module")
def victims():
    model = build_model("ann", Architecture((1, 8, 8), 10), load_profile("float32"), seed=0)
    x = torch.rand((3, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    y = torch.tensor([3, 0, 7])
    return model, x, y, per_sample_gradients(model, x, y)


def test_start_images_are_the_starts_invert_uses(bench, victims):
    # Zero iterations return the (boxed) start: breaching must get exactly the start ours begins from.
    model, _, y, target = victims
    recipe = dataclasses.replace(load_recipe("inverting_gradients_plain"), iterations=0)
    for seed in (0, 5):
        starts = invert(model, target, y, (1, 8, 8), recipe, seed=seed).images
        assert torch.equal(bench.start_images(seed, 3), starts)
    assert not torch.equal(bench.start_images(0, 3), bench.start_images(5, 3))


def test_breaching_payload_is_one_victims_update_in_parameter_order(bench, victims):
    model, x, y, target = victims
    payload, shared = bench.breaching_payload(model, target, 1, y[1:2])
    params = list(model.parameters())
    assert len(payload["parameters"]) == len(params) == len(shared["gradients"])
    # The gradient list follows model.parameters(), the order breaching zips it with.
    loss = torch.nn.functional.cross_entropy(model(x[1:2]), y[1:2])
    expected = torch.autograd.grad(loss, params)
    for got, want, p, sent in zip(shared["gradients"], expected, params, payload["parameters"], strict=True):
        assert got.shape == p.shape
        torch.testing.assert_close(got, want)
        assert torch.equal(sent, p.detach()) and sent is not p
    meta = shared["metadata"]
    assert meta["num_data_points"] == 1 and meta["labels"].tolist() == [0] and meta["local_hyperparams"] is None
    assert payload["metadata"].shape == (1, 8, 8) and payload["metadata"].modality == "vision"
    assert (payload["metadata"].mean, payload["metadata"].std) == ([0.0], [1.0])
    with pytest.raises(ValueError, match="parameters"):
        bench.breaching_payload(model, {"layers.0.weight": target["layers.0.weight"]}, 0, y[:1])


def test_milestones_and_summary(bench):
    assert bench.neurofl_milestones(300) == [112, 187, 262]
    assert bench.neurofl_milestones(40) == [15, 25, 35]
    s = bench.summarize(np.array([10.0, 30.0, 20.0, 100.0]))
    assert s == {"mean": 40.0, "median": 25.0, "min": 10.0, "max": 100.0}


def test_differences_say_whether_the_schedules_agree(bench):
    rows = bench.differences(300, [112, 187, 262], [112, 187, 262])
    assert {"step schedule", "total variation", "returned iterate", "victims per call"} <= {r["what"] for r in rows}
    schedule = next(r for r in rows if r["what"] == "step schedule")
    assert schedule["effect"] == "identical at K = 300"
    schedule = next(r for r in bench.differences(40, [15, 25, 35], [14, 24, 35]) if r["what"] == "step schedule")
    assert schedule["effect"] == "different at K = 40"
