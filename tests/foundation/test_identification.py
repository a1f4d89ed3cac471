"""Sample-level identification (IIP) checked against cases with known answers: the sample itself,
its class mean, blind guesses whose chance is exact by symmetry, copies of the sample and ties."""

from __future__ import annotations

import numpy as np
import pytest

from neurofl.data import load_dataset, split_dataset
from neurofl.leakage.identification import IdentificationPool, random_conv_embedding
from neurofl.leakage.metrics import Rate
from neurofl.leakage.scoring import (
    Judge,
    Samples,
    attack_verdicts,
    chance_levels,
    judge_for,
    judge_rows,
    sample_scores,
    summary,
)


def _pool(x: np.ndarray, y: np.ndarray) -> IdentificationPool:
    return IdentificationPool.build(x, y, False, "test pool")


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits", None)
    splits = split_dataset(ds, 0)
    return ds, splits, judge_for(ds, splits, 0)


def test_the_sample_itself_is_identified_and_its_class_mean_is_not(digits):
    ds, splits, judge = digits
    index = np.arange(0, 200, 5)
    x, y = splits.clients.x[index], splits.clients.y[index]
    own = sample_scores(judge, x, np.zeros(len(y)), x, y, index, 1)
    assert own.identified.all() and own.identified_features.all()
    aux_x, aux_y = judge.auxiliary
    means = np.stack([aux_x[aux_y == lab].mean(0) for lab in y])
    proto = sample_scores(judge, means, np.zeros(len(y)), x, y, index, 1)
    assert proto.identified.mean() <= 0.05  # a prototype is not the sample ...
    assert proto.hit.mean() >= 0.9  # ... though the label judge takes it for one


def test_the_pool_is_the_whole_dataset_and_never_holds_reconstructions(digits):
    ds, splits, judge = digits
    pool = judge.pool
    assert len(pool.labels) == len(ds.y)
    assert np.array_equal(np.sort(pool.pixels, axis=0), np.sort(ds.x.reshape(len(ds.x), -1), axis=0))
    before = pool.pixels.copy()
    index = np.arange(8)
    rec = np.random.default_rng(0).random((8, *ds.input_shape))
    sample_scores(judge, rec, np.zeros(8), splits.clients.x[index], splits.clients.y[index], index, 1)
    assert np.array_equal(pool.pixels, before)
    assert "1797" in pool.covers


def test_blind_guesses_score_the_exact_chance():
    # isotropic pool and guesses: by exchangeability the guess's nearest neighbour is uniform over
    # the label's pool, so the identification rate is exactly 1 / (pool size per label)
    rng = np.random.default_rng(1)
    per_label, labels_n, dim = 8, 4, 16
    x = rng.standard_normal((per_label * labels_n, dim)).astype(np.float32)
    y = np.repeat(np.arange(labels_n), per_label)
    pool = _pool(x, y)
    idx = rng.integers(0, len(y), 4000)
    pix, feat = pool.identified(rng.standard_normal((4000, dim)), x[idx], y[idx])
    assert pool.chance(y[idx]) == pytest.approx(1 / per_label)
    lo, hi = Rate(int(pix.sum()), len(pix)).ci95
    assert lo <= 1 / per_label <= hi
    assert 0 < feat.mean() < 0.5


def test_a_copy_of_the_sample_in_the_pool_counts_as_the_sample():
    x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [3.0, 3.0]], np.float32)  # rows 0 and 1 are one image
    y = np.zeros(4, np.int64)
    pool = _pool(x, y)
    pix, _ = pool.identified(np.array([[0.1, 0.0], [0.1, 0.0]]), x[:2], y[:2])
    assert pix.all()  # nearest to the sample's own content, whichever copy is the victim
    assert pool.chance(y[:1]) == pytest.approx(1 / 3)  # three distinct images


def test_a_tie_does_not_identify():
    x = np.array([[0.0, 0.0], [2.0, 0.0]], np.float32)
    y = np.zeros(2, np.int64)
    pix, _ = _pool(x, y).identified(np.array([[1.0, 0.0], [0.9, 0.0], [np.nan, 0.0]]), x[[0, 0, 0]],
                                    np.zeros(3, np.int64))  # fmt: skip
    assert pix.tolist() == [False, True, False]  # equidistant; nearer; a failed reconstruction


def test_identification_searches_only_the_samples_label():
    x = np.array([[0.0], [1.0], [0.4]], np.float32)
    y = np.array([0, 0, 1])
    pix, _ = _pool(x, y).identified(np.array([[0.3]]), x[:1], y[:1])
    assert pix.all()  # row 2 is nearer, but has another label


def test_pairing_is_shared_by_both_judges_at_batch_4(digits):
    ds, splits, judge = digits
    index = np.arange(16)
    x, y = splits.clients.x[index], splits.clients.y[index]
    shuffled = x.reshape(4, 4, *x.shape[1:])[:, ::-1].reshape(x.shape)  # the attacker's order is not the batch's
    s = sample_scores(judge, shuffled, np.zeros(4), x, y, index, 4)
    assert s.identified.all()
    assert s.hit.mean() == judge.hits(x, y, index).mean()
    row = summary(s, 4, judge)
    assert row["iip"] == 1.0 and row["iip_successes"] == 16 and row["iip_ci95"][1] == 1.0


def test_identification_chance_levels_and_prototype_floors(digits):
    ds, splits, judge = digits
    index = np.arange(32)
    x, y = splits.clients.x[index], splits.clients.y[index]
    pool = splits.auxiliary.private().x
    label = chance_levels(judge, Samples(x, y, index, 1), pool, 0)
    iip = chance_levels(judge, Samples(x, y, index, 1), pool, 0, "pixel")
    assert label["class_mean"] >= 0.9 and label["label_image"] >= 0.7  # prototypes pass the label judge
    assert iip["class_mean"] == 0.0 and iip["random_images"] == 0.0
    assert iip["exact"] == pytest.approx(np.mean([1 / (ds.y == lab).sum() for lab in y]))


def test_attack_verdicts_tell_label_leakage_from_sample_leakage():
    chance = {"uniform": 0.1, "batch_mean": None, "random_images": 0.1, "class_mean": 1.0, "label_image": 0.95}
    per_attack = {
        "prototype": {"applicable": True, "asr": 1.0, "asr_ci95": [0.89, 1.0], "iip": 0.0, "iip_ci95": [0.0, 0.11]},
        "exact": {"applicable": True, "asr": 0.94, "asr_ci95": [0.79, 0.99], "iip": 1.0, "iip_ci95": [0.89, 1.0]},
        "blind": {"applicable": True, "asr": 0.1, "asr_ci95": [0.02, 0.25], "iip": 0.0, "iip_ci95": [0.0, 0.11]},
        "na": {"applicable": False, "reason": "n/a"},
    }
    attack_verdicts(per_attack, chance, iip_floor=0.006)
    assert per_attack["prototype"]["label_only"] and not per_attack["prototype"]["identifies_samples"]
    assert per_attack["exact"]["identifies_samples"] and not per_attack["exact"]["label_only"]
    assert not per_attack["blind"]["label_only"] and not per_attack["blind"]["identifies_samples"]
    assert not any(pa["beats_prototype"] for pa in per_attack.values() if pa["applicable"])


def test_judge_rows_decides_works_on_ann_by_identification(digits):
    ds, splits, judge = digits
    index = np.arange(8)
    x, y = splits.clients.x[index], splits.clients.y[index]
    exact = summary(sample_scores(judge, x, np.zeros(8), x, y, index, 1), 1, judge)
    aux_x, aux_y = judge.auxiliary
    means = np.stack([aux_x[aux_y == lab].mean(0) for lab in y])
    proto = summary(sample_scores(judge, means, np.zeros(8), x, y, index, 1), 1, judge)
    rows = [{"model": "ann", "per_attack": {"ig": {"applicable": True, **exact}, "li": {"applicable": True, **proto}}},
            {"model": "snn", "per_attack": {"ig": {"applicable": True, **proto}, "li": {"applicable": True, **proto}}}]
    out = judge_rows(judge, x, y, index, 1, splits.auxiliary.private().x, 0, rows)
    assert rows[1]["per_attack"]["ig"]["works_on_ann"] and not rows[1]["per_attack"]["li"]["works_on_ann"]
    assert rows[0]["per_attack"]["li"]["label_only"]
    assert out["identification"]["floor"] == pytest.approx(out["identification"]["chance"]["exact"])


def test_a_sample_outside_the_pool_is_our_bug():
    x = np.array([[0.0], [1.0]], np.float32)
    with pytest.raises(ValueError, match="not in the identification pool"):
        _pool(x, np.zeros(2, np.int64)).identified(np.array([[0.5]]), np.array([[0.5]]), np.zeros(1, np.int64))


def test_a_judge_without_pool_reports_no_identification():
    gallery = np.random.default_rng(0).random((6, 1, 4, 4)).astype(np.float32)
    judge = Judge("reid", None, gallery, np.arange(6), False, 1 / 6)
    s = sample_scores(judge, gallery[:3], np.zeros(3), gallery[:3], np.zeros(3, np.int64), np.arange(3), 1)
    assert summary(s, 1, judge)["iip"] is None
    levels = chance_levels(judge, Samples(gallery[:3], np.zeros(3, np.int64), np.arange(3), 1), gallery, 0, "pixel")
    assert levels["exact"] is None


def test_the_embedding_is_fixed_and_handles_events_and_flat_inputs():
    rng = np.random.default_rng(0)
    ev = (rng.random((3, 2, 6, 6, 5)) > 0.7).astype(np.float32)
    assert random_conv_embedding(ev).shape == (3, 256)
    assert random_conv_embedding(rng.random((3, 10))).shape == (3, 256)
    a = rng.random((2, 1, 8, 8))
    assert np.array_equal(random_conv_embedding(a), random_conv_embedding(a.copy()))
