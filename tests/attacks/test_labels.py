"""Label recovery: iDLG at batch 1, the calibrated count estimate above."""

from __future__ import annotations

import numpy as np
import pytest

from neurofl.attacks import count_labels, recover_labels
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.leakage.scoring import label_accuracy
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile


@pytest.mark.parametrize(
    "kind,profile,floor", [("ann", "float32", 1.0), ("snn", "float32", 0.9), ("snn", "loihi2", 0.9)]
)
def test_idlg_batch_1(digits, kind, profile, floor):
    """ANN: every label (theory: only the true row of the last gradient is negative). SNN: the
    same sign argument holds through the non-negative surrogate, but a row can vanish (no output
    neuron near threshold) or be rounded to 0 by the 8-bit upload; the measured rate is printed."""
    x, y = digits
    prof = load_profile(profile)
    model = build_model(kind, Architecture((1, 8, 8), 10), prof, seed=0)
    target = {k: v.detach() for k, v in per_sample_gradients(model, x, y).items()}
    acc = float((recover_labels(model, target, 1, (1, 8, 8), seed=0) == y).float().mean())
    print(f"iDLG label accuracy {kind}@{profile}: {acc:.3f} on {len(y)} victims")
    assert acc >= floor


@pytest.mark.parametrize("kind,factor", [("ann", 1.5), ("snn", 1.2)])
def test_count_estimate_batch_4_beats_guessing(digits, kind, factor):
    """The estimate must match more labels than a random multiset guess does (measured on these
    64 digits: ANN 0.63, SNN 0.47, guessing 0.30)."""
    x, y = digits
    model = build_model(kind, Architecture((1, 8, 8), 10), load_profile("float32"), seed=0)
    last = list(per_sample_gradients(model, x, y, group=4).values())[-1].detach()
    found = count_labels(model, last, 4, (1, 8, 8), seed=0)
    acc = label_accuracy(found.numpy(), y.numpy(), 4)
    rng = np.random.default_rng(0)
    guess = np.mean([label_accuracy(rng.integers(0, 10, len(y)), y.numpy(), 4) for _ in range(200)])
    print(f"count-estimate label accuracy {kind}@float32, batch 4: {acc:.3f} (random guess {guess:.3f})")
    assert acc > factor * guess


def test_label_accuracy_is_a_multiset_match():
    assert label_accuracy(np.array([1, 2, 2, 5]), np.array([2, 1, 3, 2]), 4) == 3 / 4
    assert label_accuracy(np.array([1, 2, 3, 4]), np.array([2, 1, 4, 3]), 2) == 1.0
    assert label_accuracy(np.array([1, 2, 3, 4]), np.array([3, 4, 1, 2]), 2) == 0.0


@pytest.mark.parametrize("m,n", [(400, 30), (12, 30)])
def test_reduced_nnls_has_the_full_problems_minimizer(m, n):
    """The triangular factor of [a | b] keeps |a x - b| for every x, so scipy's NNLS on it finds the
    minimizer it finds on the full system (tall, as a label solve's, and wide)."""
    from scipy.optimize import nnls

    from neurofl.attacks.labels import reduced_nnls

    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, n))
    truth = np.abs(rng.standard_normal(n)) * (rng.random(n) < 0.3)
    b = a @ truth + 0.01 * rng.standard_normal(m)
    full, _ = nnls(a, b, maxiter=50 * n)
    x = reduced_nnls(a, b, maxiter=50 * n)
    assert (x >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(a @ x - b), np.linalg.norm(a @ full - b), rtol=1e-10, atol=1e-12)
    if m > n:  # a unique minimizer
        np.testing.assert_allclose(x, full, atol=1e-10)
