"""The chance floors: a union over K random guesses is the floor of a worst case over K attacks."""

from __future__ import annotations

import numpy as np

from neurofl.leakage.scoring import Judge, Samples, chance_levels, worst_case_chance


def _reid_judge(gallery: np.ndarray) -> Judge:
    return Judge("reid", None, gallery, np.arange(len(gallery)), False, 1.0 / len(gallery))


def test_union_floor_grows_with_attacks_and_matches_independent_draws():
    rng = np.random.default_rng(0)
    gallery = rng.random((20, 1, 4, 4)).astype(np.float32)
    index = np.arange(12)
    truth, labels = gallery[index], np.zeros(12, np.int64)
    judge = _reid_judge(gallery)
    # the pool is the gallery itself: a random draw is recognized exactly when it is the victim
    samples = Samples(truth, labels, index, 1)
    one = chance_levels(judge, samples, gallery, seed=3)
    union = worst_case_chance(judge, samples, gallery, 3, attacks=8)
    assert set(one) == {"uniform", "batch_mean", "random_images"}  # single-attack floors only
    # the first draw is the single-guess floor
    assert worst_case_chance(judge, samples, gallery, 3, attacks=1) == one["random_images"]
    assert union >= one["random_images"]
    # independently: the same generator's 8 draws, a hit where any draw picked the victim itself
    draws = np.random.default_rng(3)
    hit = np.zeros(12, bool)
    for _ in range(8):
        hit |= draws.integers(0, 20, 12) == index
    assert union == hit.mean()
