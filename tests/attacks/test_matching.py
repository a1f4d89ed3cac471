"""Best assignment pairs each reconstruction with its original; checked against brute force."""

from __future__ import annotations

import itertools

import numpy as np

from neurofl.attacks.matching import best_assignment


def test_best_assignment_equals_brute_force():
    rng = np.random.default_rng(0)
    batch, victims = 4, 5
    orig = rng.random((victims * batch, 1, 3, 3))
    rec = orig + 0.3 * rng.standard_normal(orig.shape)
    rec = np.concatenate([rec[v * batch : (v + 1) * batch][rng.permutation(batch)] for v in range(victims)])
    out = best_assignment(rec, orig, batch)
    for v in range(victims):
        o, r = orig[v * batch : (v + 1) * batch], rec[v * batch : (v + 1) * batch]
        best = min(itertools.permutations(range(batch)), key=lambda p: ((o - r[list(p)]) ** 2).sum())
        np.testing.assert_array_equal(out[v * batch : (v + 1) * batch], r[list(best)])


def test_batch_1_is_identity():
    x = np.random.default_rng(1).random((3, 1, 2, 2))
    np.testing.assert_array_equal(best_assignment(x[::-1], x, 1), x[::-1])
