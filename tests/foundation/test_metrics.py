"""The label judge's ASR sits on a scale from chance (noise) to the oracle's accuracy (true inputs)."""

from __future__ import annotations

import numpy as np

from neurofl.data import load_dataset, split_dataset
from neurofl.leakage.metrics import Rate, psnr, ssim
from neurofl.leakage.scoring import judge_for


def _oracle_and_victims():
    ds = load_dataset("digits")
    splits = split_dataset(ds, seed=0)
    return judge_for(ds, splits, 0), splits.clients


def attack_success(judge, reconstructions: np.ndarray, labels: np.ndarray) -> Rate:
    """ASR through the scoring core's label judge (non-finite reconstructions never count)."""
    hits = judge.hits(np.asarray(reconstructions), labels, np.full(len(labels), -1))
    return Rate(int(hits.sum()), len(labels))


def test_asr_of_noise_reconstructions_is_at_chance():
    oracle, victims = _oracle_and_victims()
    noise = np.random.default_rng(0).random(victims.x.shape).astype(np.float32)
    rate = attack_success(oracle, noise, victims.y)
    lo, hi = rate.ci95
    assert rate.trials == len(victims.y) > 500
    assert lo <= 1 / victims.classes <= hi, (rate.value, rate.ci95)


def test_asr_on_true_inputs_equals_oracle_accuracy():
    oracle, victims = _oracle_and_victims()
    rate = attack_success(oracle, victims.x, victims.y)
    assert rate.value == oracle.oracle.accuracy(victims.x, victims.y)
    assert rate.value > 0.95  # a useful judge: the top of the scale is near 1


def test_non_finite_reconstructions_count_as_failures():
    oracle, victims = _oracle_and_victims()
    x = victims.x[:10].copy()
    x[3] = np.nan
    assert attack_success(oracle, x, victims.y[:10]).successes <= 9


def test_clopper_pearson_interval_matches_known_values():
    # Exact binomial interval for 5/20 (e.g. R's binom.test): [0.0866, 0.4910].
    lo, hi = Rate(5, 20).ci95
    assert abs(lo - 0.0866) < 1e-3 and abs(hi - 0.4910) < 1e-3
    assert Rate(0, 10).ci95[0] == 0.0 and Rate(10, 10).ci95[1] == 1.0


def test_image_metrics_on_known_pairs():
    a = np.zeros((2, 1, 8, 8))
    b = a.copy()
    b[0] += 0.1
    b[1] += 0.01
    np.testing.assert_allclose(psnr(a, b), [20.0, 40.0])
    assert ssim(a, a)[0] == 1.0
    assert ssim(a, np.random.default_rng(0).random(a.shape))[0] < 0.1
