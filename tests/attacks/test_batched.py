"""Batched attacks equal the same attacks run one victim at a time (victims never interact)."""

from __future__ import annotations

import pytest
import torch

from neurofl.attacks import invert
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile, quantize_update


@pytest.mark.parametrize(
    "kind,profile,name,changes",
    [
        ("ann", "float32", "inverting_gradients", {"iterations": 15, "restarts": 2}),
        ("snn", "loihi2", "inverting_gradients", {"iterations": 8, "init": "analytic", "keep_best": True}),
        ("snn", "loihi2", "inverting_gradients", {"iterations": 8, "adaptive": True, "init": "zeros"}),
        ("ann", "float32", "dlg", {"iterations": 15}),
        ("snn", "float32", "idlg", {"iterations": 8}),
        ("ann", "float32", "spike_ig", {"iterations": 10}),
    ],
)
def test_batched_equals_sequential(digits, h, kind, profile, name, changes):
    batch, victims = 2, 3
    x, y = digits[0][: batch * victims], digits[1][: batch * victims]
    prof = load_profile(profile)
    model = build_model(kind, Architecture((1, 8, 8), 10), prof, seed=0)
    grads = per_sample_gradients(model, x, y, group=batch)
    target = {k: quantize_update(v.detach(), prof.update) for k, v in grads.items()}
    rec = h.recipe(name, **changes)
    full = invert(model, target, y, (1, 8, 8), rec, seed=0, batch=batch, profile=prof)
    for v in range(victims):
        one = invert(
            model,
            {k: t[v : v + 1] for k, t in target.items()},
            y[v * batch : (v + 1) * batch],
            (1, 8, 8),
            rec,
            seed=v,  # victim v of a batch run with seed 0 is seeded with 0 + v
            batch=batch,
            profile=prof,
        )
        torch.testing.assert_close(one.images, full.images[v * batch : (v + 1) * batch], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(one.loss, full.loss[v : v + 1], rtol=1e-4, atol=1e-6)
