"""Scoring reconstructions: the one definition of leakage every command and script uses.

A :class:`Judge` says how a dataset's leakage is judged (built once by :func:`judge_for`): the
independent oracle's label (images, events) or re-identification among the clients' private
samples (faces). :func:`sample_scores` pairs each batch's reconstructions with its originals
(best assignment: a batch update does not order its samples), binarizes event frames, marks
diverged victims as failures and judges every sample; :func:`summary` turns that into a report
row. :func:`worst_case` combines attacks per sample (an auditor's view: a sample leaked if any
attack recovered it), and :func:`chance_levels` measures what trivial "reconstructions" score
through the same pairing and judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neurofl.attacks.matching import best_assignment
from neurofl.data.base import Dataset, Splits
from neurofl.metrics import Oracle, binarize_events, l2, mse, psnr, ssim


@dataclass(frozen=True)
class Judge:
    """How a dataset's leakage is judged.

    kind : ``oracle`` (the reconstruction's class by an independent classifier) or ``reid`` (its
        nearest neighbour among the clients' private samples is the victim itself)
    oracle : the fitted oracle (``oracle`` kind); gallery : (g, ...) the re-identification gallery
    gallery_rows : (g,) row of each gallery sample in the clients' split
    events : inputs are event frames (binarized at 0.5 before judging; PSNR/SSIM undefined)
    chance : 1/classes or 1/gallery size
    """

    kind: str
    oracle: Oracle | None
    gallery: np.ndarray | None
    gallery_rows: np.ndarray | None
    events: bool
    chance: float

    @property
    def name(self) -> str:
        return "re-identification" if self.kind == "reid" else "oracle"

    def hits(self, rec: np.ndarray, labels: np.ndarray, index: np.ndarray) -> np.ndarray:
        """(n,) whether each reconstruction gives its sample away; non-finite ones never do."""
        flat = np.asarray(rec, np.float64).reshape(len(rec), -1)
        finite = np.isfinite(flat).all(1)
        out = np.zeros(len(rec), dtype=bool)
        if not finite.any():
            return out
        if self.kind == "reid":
            gal = self.gallery.reshape(len(self.gallery), -1).astype(np.float64)
            f = flat[finite]
            d = (f**2).sum(1, keepdims=True) - 2 * f @ gal.T + (gal**2).sum(1)[None]
            nearest = self.gallery_rows[d.argmin(1)]
            out[finite] = nearest == index[finite]
        else:
            out[finite] = self.oracle.predict(flat[finite]) == labels[finite]
        return out


def judge_for(ds: Dataset, splits: Splits, seed: int) -> Judge:
    """The judge of ``ds``: re-identification for ``faces``, else an RBF-SVM oracle trained on the
    oracle split (never on reconstructions, never the attacked network)."""
    if ds.kind == "faces":
        private = splits.clients.private()
        rows = np.flatnonzero(splits.clients.y == ds.private_class) if ds.private_class is not None else None
        rows = np.arange(len(splits.clients.y)) if rows is None else rows
        return Judge("reid", None, private.x, rows, False, 1.0 / len(rows))
    oracle = Oracle(seed).fit(splits.oracle.x, splits.oracle.y)
    return Judge("oracle", oracle, None, None, ds.kind == "events", 1.0 / ds.classes)


@dataclass(frozen=True)
class SampleScores:
    """Per-sample results of one attack on one row (n = victims * batch).

    images : (n, ...) paired with the originals (binarized for events; NaN where failed)
    ok : the attack returned a finite reconstruction; hit : the judge recognized the sample
    psnr, ssim, mse, l2 : per sample (NaN where failed; PSNR and SSIM NaN for events)
    """

    images: np.ndarray
    ok: np.ndarray
    hit: np.ndarray
    psnr: np.ndarray
    ssim: np.ndarray
    mse: np.ndarray
    l2: np.ndarray


def sample_scores(
    judge: Judge,
    images: np.ndarray,
    loss: np.ndarray,
    truth: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    batch: int,
) -> SampleScores:
    """Pair, clean and judge one attack's reconstructions.

    images : (n, ...) as the attack returned them; loss : (victims,) NaN where the victim diverged
    truth, labels, index : (n, ...) the victims' samples, labels and rows in the clients' split
    """
    rec = best_assignment(np.asarray(images), truth, batch)
    ok = np.isfinite(rec.reshape(len(rec), -1)).all(1) & np.isfinite(np.asarray(loss, np.float64)).repeat(batch)
    rec = np.where(ok.reshape((-1,) + (1,) * (rec.ndim - 1)), rec, np.nan)
    if judge.events:
        rec = binarize_events(rec)
    hit = judge.hits(rec, labels, index) & ok
    nan = np.full(len(rec), np.nan)
    p, s, m, d = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    if ok.any():
        m[ok], d[ok] = mse(rec[ok], truth[ok]), l2(rec[ok], truth[ok])
        if not judge.events:
            p[ok] = psnr(rec[ok], truth[ok])
            s[ok] = ssim(rec[ok], truth[ok]) if rec.ndim == 4 else np.nan
    return SampleScores(rec, ok, hit, p, s, m, d)


def label_accuracy(recovered: np.ndarray, true: np.ndarray, batch: int) -> float:
    """Share of true labels recovered; within a batch labels are a multiset (order is not shared)."""
    hits = 0
    for r, t in zip(recovered.reshape(-1, batch), true.reshape(-1, batch), strict=True):
        rv, tv = np.unique(r, return_counts=True), np.unique(t, return_counts=True)
        common = dict(zip(*rv, strict=True))
        hits += sum(min(c, common.get(lab, 0)) for lab, c in zip(*tv, strict=True))
    return hits / len(true)


def summary(s: SampleScores, batch: int, judge: Judge) -> dict[str, Any]:
    """A report row's leakage metrics: ASR (successes / samples) with its exact 95% interval, and
    the image metrics averaged over the samples the attack did not fail on."""
    from neurofl.metrics import Rate

    rate = Rate(int(s.hit.sum()), len(s.hit))

    def mean(a: np.ndarray) -> float | None:
        a = a[s.ok & np.isfinite(a)]
        return float(a.mean()) if len(a) else None

    return {
        "victims": len(s.hit) // batch,
        "samples": len(s.hit),
        "asr": rate.value,
        "asr_ci95": list(rate.ci95),
        "asr_successes": rate.successes,
        "psnr": None if judge.events else mean(s.psnr),
        "ssim": None if judge.events else mean(s.ssim),
        "mse": mean(s.mse),
        "l2": mean(s.l2),
        "failed": int((~s.ok).sum()),
    }


def worst_case(scores: dict[str, SampleScores], events: bool) -> tuple[SampleScores, np.ndarray]:
    """Per sample, the attack that did best: a sample counts as leaked if any attack's
    reconstruction was recognized, and its reconstruction (for the image metrics) is the one
    closest to the truth (highest PSNR; lowest l2 for events). Returns the combined scores and
    (n,) the name index (into ``list(scores)``) of the attack chosen for each sample."""
    names = list(scores)
    closeness = np.stack([(-scores[k].l2 if events else scores[k].psnr) for k in names])
    closeness = np.where(np.isfinite(closeness), closeness, -np.inf)
    hit = np.stack([scores[k].hit for k in names])
    # prefer an attack that was recognized; among those (or all), the closest reconstruction
    rank = np.where(hit, closeness, -np.inf)
    pick = np.where(hit.any(0), rank.argmax(0), closeness.argmax(0))
    n = np.arange(hit.shape[1])

    def take(field: str) -> np.ndarray:
        return np.stack([getattr(scores[k], field) for k in names])[pick, n]

    combined = SampleScores(take("images"), take("ok"), hit.any(0), take("psnr"), take("ssim"), take("mse"), take("l2"))
    return combined, pick


def chance_levels(
    judge: Judge,
    truth: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    batch: int,
    pool: np.ndarray,
    seed: int,
) -> dict[str, float | None]:
    """What trivial reconstructions score through the same pairing and judge (the honest floor at
    batch > 1, where best assignment lets any guess pick its closest originals).

    ``batch_mean``: every sample of a batch is given its batch's mean input (None at batch 1, where
    that mean is the sample itself); ``random_images``: each sample a random input from ``pool`` (the
    attacker's auxiliary data). Also ``uniform``: 1/classes (or 1/gallery size). A worst case over
    several attacks has its own floor: :func:`worst_case_chance`."""
    n = len(truth)
    mean = truth.reshape(n // batch, batch, -1).mean(1, keepdims=True).repeat(batch, 1).reshape(truth.shape)
    out: dict[str, float | None] = {"uniform": judge.chance, "batch_mean": None}
    if batch > 1:
        scores = sample_scores(judge, mean, np.zeros(n // batch), truth, labels, index, batch)
        out["batch_mean"] = float(scores.hit.mean())
    out["random_images"] = worst_case_chance(judge, truth, labels, index, batch, pool, seed, attacks=1)
    return out


def worst_case_chance(
    judge: Judge,
    truth: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    batch: int,
    pool: np.ndarray,
    seed: int,
    attacks: int,
) -> float:
    """The floor of a worst case over ``attacks`` attacks: each sample gets that many independent
    random inputs from ``pool`` (paired and judged like a reconstruction) and counts if any is
    recognized, as the worst case counts a sample any of its attacks recovered. ``attacks = 1`` is
    :func:`chance_levels`' ``random_images`` (the same draws)."""
    n = len(truth)
    rng = np.random.default_rng(seed)
    hit = np.zeros(n, bool)
    for _ in range(attacks):
        rec = pool[rng.integers(0, len(pool), n)] if len(pool) else np.full_like(truth, np.nan)
        hit |= sample_scores(judge, rec, np.zeros(n // batch), truth, labels, index, batch).hit
    return float(hit.mean())


def single_attack_floor(chance: dict[str, float | None]) -> float:
    """The highest chance level one attack must beat: uniform, batch mean or random images."""
    return max(v for v in chance.values() if v is not None)


def row_floor(
    judge: Judge,
    truth: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    batch: int,
    pool: np.ndarray,
    seed: int,
    chance: dict[str, float | None],
    per_attack: dict[str, dict],
) -> float:
    """A report row's worst-case floor (its ``chance_worst_case``): the single-attack floor or the
    union of as many random guesses as the row ran attacks (:func:`worst_case_chance`), the higher."""
    ran = sum(1 for pa in per_attack.values() if pa["applicable"])
    union = worst_case_chance(judge, truth, labels, index, batch, pool, seed, max(ran, 1))
    return max(single_attack_floor(chance), union)
