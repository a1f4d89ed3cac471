"""Scoring reconstructions: the one definition of leakage every command and script uses.

Two judges, both on the same paired reconstructions. **Identification** (sample level, the
verdict's measure; :mod:`neurofl.leakage.identification`): the reconstruction singles its sample out
among every image of its label in the dataset (IIP), in pixel space and in a fixed random feature
space. **The label judge** (ASR): the independent oracle's label (images, events) or
re-identification among the clients' private samples (faces); a class prototype passes it, so
its floors include the auxiliary split's class mean and a random auxiliary image of the label.

A :class:`Judge` says how a dataset's leakage is judged (built once by :func:`judge_for`).
:func:`sample_scores` pairs each batch's reconstructions with its originals (best assignment: a
batch update does not order its samples), binarizes event frames, marks diverged victims as
failures and judges every sample; :func:`summary` turns that into a report row. :func:`worst_case`
combines attacks per sample (an auditor's view: a sample leaked if any attack recovered it),
:func:`chance_levels` measures what trivial "reconstructions" score through the same pairing and
judges, and :func:`attack_verdicts` marks which attacks identify samples and which leak labels only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from neurofl.attacks.matching import best_assignment
from neurofl.data.base import Dataset, Splits
from neurofl.leakage.identification import IdentificationPool
from neurofl.leakage.metrics import Oracle, Rate, binarize_events, l2, mse, psnr, ssim


@dataclass(frozen=True)
class Judge:
    """How a dataset's leakage is judged.

    kind : ``oracle`` (the reconstruction's class by an independent classifier) or ``reid`` (its
        nearest neighbour among the clients' private samples is the victim itself)
    oracle : the fitted oracle (``oracle`` kind); gallery : (g, ...) the re-identification gallery
    gallery_rows : (g,) row of each gallery sample in the clients' split
    events : inputs are event frames (binarized at 0.5 before judging; PSNR/SSIM undefined)
    chance : 1/classes or 1/gallery size
    pool : what sample-level identification searches (None: not measured, e.g. a hand-made judge)
    auxiliary : (x, y) the attacker's auxiliary private samples, for the prototype baselines
    """

    kind: str
    oracle: Oracle | None
    gallery: np.ndarray | None
    gallery_rows: np.ndarray | None
    events: bool
    chance: float
    pool: IdentificationPool | None = None
    auxiliary: tuple[np.ndarray, np.ndarray] | None = None

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
            assert self.gallery is not None and self.gallery_rows is not None  # a reid judge has both
            gal = self.gallery.reshape(len(self.gallery), -1).astype(np.float64)
            f = flat[finite]
            d = (f**2).sum(1, keepdims=True) - 2 * f @ gal.T + (gal**2).sum(1)[None]
            nearest = self.gallery_rows[d.argmin(1)]
            out[finite] = nearest == index[finite]
        else:
            assert self.oracle is not None  # an oracle judge has one
            out[finite] = self.oracle.predict(flat[finite]) == labels[finite]
        return out


def identification_pool(ds: Dataset, splits: Splits) -> IdentificationPool:
    """Every sample of the four splits: the whole dataset the clients draw from."""
    parts = (splits.clients, splits.oracle, splits.auxiliary, splits.test)
    x = np.concatenate([p.x for p in parts])
    y = np.concatenate([p.y for p in parts])
    if ds.private_class is not None:  # background patches and the like are never anybody's data
        keep = y == ds.private_class
        x, y = x[keep], y[keep]
    covers = f"all {len(y)} {'private ' if ds.private_class is not None else ''}samples of {ds.name} (every split)"
    return IdentificationPool.build(x, y, ds.kind == "events", covers)


def judge_for(ds: Dataset, splits: Splits, seed: int) -> Judge:
    """The judge of ``ds``: re-identification for ``faces``, else an RBF-SVM oracle trained on the
    oracle split (never on reconstructions, never the attacked network); with the identification
    pool of the whole dataset and the auxiliary split for the prototype baselines."""
    pool = identification_pool(ds, splits)
    aux = splits.auxiliary.private()
    auxiliary = (aux.x, aux.y)
    if ds.kind == "faces":
        private = splits.clients.private()
        rows = np.flatnonzero(splits.clients.y == ds.private_class) if ds.private_class is not None else None
        rows = np.arange(len(splits.clients.y)) if rows is None else rows
        return Judge("reid", None, private.x, rows, False, 1.0 / len(rows), pool, auxiliary)
    oracle = Oracle(seed).fit(splits.oracle.x, splits.oracle.y)
    return Judge("oracle", oracle, None, None, ds.kind == "events", 1.0 / ds.classes, pool, auxiliary)


@dataclass(frozen=True)
class SampleScores:
    """Per-sample results of one attack on one row (n = victims * batch).

    images : (n, ...) paired with the originals (binarized for events; NaN where failed)
    ok : the attack returned a finite reconstruction; hit : the label judge recognized the sample
    psnr, ssim, mse, l2 : per sample (NaN where failed; PSNR and SSIM NaN for events)
    identified, identified_features : the reconstruction identifies its sample in the pool, in
        pixel and in feature space (:mod:`neurofl.leakage.identification`; all False without a pool)
    """

    images: np.ndarray
    ok: np.ndarray
    hit: np.ndarray
    psnr: np.ndarray
    ssim: np.ndarray
    mse: np.ndarray
    l2: np.ndarray
    identified: np.ndarray
    identified_features: np.ndarray


def concat_scores(parts: list[SampleScores]) -> SampleScores:
    """Per-sample scores of disjoint sample sets, one after another (e.g. updates of several batch
    sizes, each paired within its own batches): every rate over the result is the sample-weighted
    mean of the parts' rates."""
    if len(parts) == 1:
        return parts[0]
    return SampleScores(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(SampleScores)})


@dataclass(frozen=True)
class Samples:
    """Private samples scored together: the originals of updates of one batch size.

    truth : (n, ...) the samples; labels : (n,) their labels; index : (n,) their rows in the clients'
    split (-1 where unknown, e.g. captured updates); batch : samples per update (reconstructions are
    paired with originals within each batch)
    """

    truth: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    batch: int


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

    Both judges see the same pairing: the best assignment within each batch on squared pixel
    distance to the originals (:func:`neurofl.attacks.matching.best_assignment`).
    """
    rec = best_assignment(np.asarray(images), truth, batch)
    ok = np.isfinite(rec.reshape(len(rec), -1)).all(1) & np.isfinite(np.asarray(loss, np.float64)).repeat(batch)
    rec = np.where(ok.reshape((-1,) + (1,) * (rec.ndim - 1)), rec, np.nan)
    if judge.events:
        rec = binarize_events(rec)
    hit = judge.hits(rec, labels, index) & ok
    if judge.pool is not None:
        ident, ident_f = judge.pool.identified(rec, truth, labels)
    else:
        ident, ident_f = np.zeros(len(rec), bool), np.zeros(len(rec), bool)
    nan = np.full(len(rec), np.nan)
    p, s, m, d = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    if ok.any():
        m[ok], d[ok] = mse(rec[ok], truth[ok]), l2(rec[ok], truth[ok])
        if not judge.events:
            p[ok] = psnr(rec[ok], truth[ok])
            s[ok] = ssim(rec[ok], truth[ok]) if rec.ndim == 4 else np.nan
    return SampleScores(rec, ok, hit, p, s, m, d, ident & ok, ident_f & ok)


def label_accuracy(recovered: np.ndarray, true: np.ndarray, batch: int) -> float:
    """Share of true labels recovered; within a batch labels are a multiset (order is not shared)."""
    return label_hits(recovered, true, batch) / len(true)


def label_hits(recovered: np.ndarray, true: np.ndarray, batch: int) -> int:
    """How many true labels were recovered (:func:`label_accuracy`'s count)."""
    hits = 0
    for r, t in zip(recovered.reshape(-1, batch), true.reshape(-1, batch), strict=True):
        rv, tv = np.unique(r, return_counts=True), np.unique(t, return_counts=True)
        common = dict(zip(*rv, strict=True))
        hits += sum(min(c, common.get(lab, 0)) for lab, c in zip(*tv, strict=True))
    return int(hits)


def summary(s: SampleScores, batch: int, judge: Judge) -> dict[str, Any]:
    """A report row's leakage metrics: sample-level identification (``iip``, pixel space;
    ``iip_features``, feature space; None without a pool) and the label judge's ASR, each with its
    successes and exact 95% interval, and the image metrics averaged over the samples the attack
    did not fail on."""
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
        **identification_summary(s, judge),
        "psnr": None if judge.events else mean(s.psnr),
        "ssim": None if judge.events else mean(s.ssim),
        "mse": mean(s.mse),
        "l2": mean(s.l2),
        "failed": int((~s.ok).sum()),
    }


def identification_summary(s: SampleScores, judge: Judge) -> dict[str, Any]:
    """``iip``/``iip_features`` with successes and exact 95% intervals (None without a pool)."""
    out: dict[str, Any] = {}
    for key, arr in (("iip", s.identified), ("iip_features", s.identified_features)):
        r = Rate(int(arr.sum()), len(arr))
        known = judge.pool is not None
        out[key] = r.value if known else None
        out[f"{key}_ci95"] = list(r.ci95) if known else [None, None]
        out[f"{key}_successes"] = r.successes if known else None
    return out


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

    ident = np.stack([scores[k].identified for k in names]).any(0)
    ident_f = np.stack([scores[k].identified_features for k in names]).any(0)
    combined = SampleScores(take("images"), take("ok"), hit.any(0), take("psnr"), take("ssim"), take("mse"), take("l2"),
                            ident, ident_f)  # fmt: skip
    return combined, pick


MEASURES = ("label", "pixel", "features")  # the label judge; identification in pixel / feature space


def _measure(s: SampleScores, measure: str) -> np.ndarray:
    return {"label": s.hit, "pixel": s.identified, "features": s.identified_features}[measure]


def baseline_scores(judge: Judge, samples: Samples, pool: np.ndarray, seed: int) -> dict[str, SampleScores]:
    """Trivial reconstructions of ``samples`` through the same pairing and both judges: the honest floors.

    ``batch_mean``: every sample of a batch is given its batch's mean input (absent at batch 1,
    where that mean is the sample itself); ``random_images``: each sample a random input from
    ``pool`` (the attacker's auxiliary data); ``class_mean``: the auxiliary split's mean image of
    the sample's true label (what an attack that recovers the label and draws a prototype gives);
    ``label_image``: a random auxiliary image of the sample's true label. A label missing from the
    auxiliary data gives a failed (NaN) baseline for that sample."""
    truth, labels, batch = samples.truth, samples.labels, samples.batch
    n = len(truth)
    out: dict[str, SampleScores] = {}
    if batch > 1:
        mean = truth.reshape(n // batch, batch, -1).mean(1, keepdims=True).repeat(batch, 1).reshape(truth.shape)
        out["batch_mean"] = _scored(judge, mean, samples)
    out["random_images"] = _random_guess(judge, samples, pool, np.random.default_rng(seed))
    if judge.auxiliary is not None:
        ax, ay = judge.auxiliary
        proto, pick = np.full(truth.shape, np.nan, np.float64), np.full(truth.shape, np.nan, np.float64)
        rng = np.random.default_rng([seed, 1])
        for lab in np.unique(labels):
            mine, have = np.flatnonzero(labels == lab), np.flatnonzero(ay == lab)
            if len(have):
                proto[mine] = ax[have].mean(0)
                pick[mine] = ax[have[rng.integers(0, len(have), len(mine))]]
        out["class_mean"] = _scored(judge, proto, samples)
        out["label_image"] = _scored(judge, pick, samples)
    return out


def _scored(judge: Judge, rec: np.ndarray, samples: Samples) -> SampleScores:
    """A trivial reconstruction of ``samples`` (no victim diverged) paired and judged."""
    zero = np.zeros(len(samples.truth) // samples.batch)
    return sample_scores(judge, rec, zero, samples.truth, samples.labels, samples.index, samples.batch)


def _random_guess(judge: Judge, samples: Samples, pool: np.ndarray, rng: np.random.Generator) -> SampleScores:
    n = len(samples.truth)
    rec = pool[rng.integers(0, len(pool), n)] if len(pool) else np.full_like(samples.truth, np.nan)
    return _scored(judge, rec, samples)


def chance_levels(
    judge: Judge, samples: Samples, pool: np.ndarray, seed: int, measure: str = "label"
) -> dict[str, float | None]:
    """What trivial reconstructions of ``samples`` score (:func:`baseline_scores`) under one ``measure``
    (:data:`MEASURES`): the honest floor at batch > 1, where best assignment lets any guess pick
    its closest originals, and against prototypes, which pass the label judge.

    Also ``uniform`` (label judge: 1/classes or 1/gallery size) or ``exact`` (identification: the
    mean of 1/(distinct images of the sample's label in the pool)). ``batch_mean`` is None at batch 1.
    Identification without a pool: every level None. A worst case over several attacks has its
    own floor: :func:`worst_case_chance`."""
    return _levels(judge, baseline_scores(judge, samples, pool, seed), samples.labels, measure)


def _levels(judge: Judge, base: dict[str, SampleScores], labels: np.ndarray, measure: str) -> dict[str, float | None]:
    """:func:`chance_levels` of ``measure`` from baseline scores already computed (one computation
    serves every measure: each baseline is judged by both judges at once)."""
    if measure != "label" and judge.pool is None:
        return {"exact": None, "batch_mean": None, "random_images": None, "class_mean": None, "label_image": None}
    first: dict[str, float | None] = {"uniform": judge.chance}
    if judge.pool is not None and measure != "label":
        first = {"exact": judge.pool.chance(labels)}
    out: dict[str, float | None] = {**first, "batch_mean": None}
    for name, scores in base.items():
        out[name] = float(_measure(scores, measure).mean())
    return out


def worst_case_chance(
    judge: Judge, samples: Samples, pool: np.ndarray, seed: int, attacks: int, measure: str = "label"
) -> float | None:
    """The floor of a worst case over ``attacks`` attacks: each of ``samples`` gets that many independent
    random inputs from ``pool`` (paired and judged like a reconstruction) and counts if any is
    recognized (``measure``), as the worst case counts a sample any of its attacks recovered.
    ``attacks = 1`` is :func:`chance_levels`' ``random_images`` (the same draws). None for
    identification without a pool."""
    return _union(judge, _guesses(judge, samples, pool, seed, attacks), attacks, measure)


def _guesses(judge: Judge, samples: Samples, pool: np.ndarray, seed: int, attacks: int) -> list[SampleScores]:
    """``attacks`` rounds of random guesses from ``pool``, in :func:`worst_case_chance`'s order of
    draws (its first ``k`` rounds are the floor of ``k`` attacks)."""
    rng = np.random.default_rng(seed)
    return [_random_guess(judge, samples, pool, rng) for _ in range(attacks)]


def _union(judge: Judge, guesses: list[SampleScores], attacks: int, measure: str) -> float | None:
    """The share of samples any of the first ``attacks`` rounds of ``guesses`` recognizes."""
    if measure != "label" and judge.pool is None:
        return None
    hit = np.zeros(len(guesses[0].hit), bool)
    for g in guesses[:attacks]:
        hit |= _measure(g, measure)
    return float(hit.mean())


def single_attack_floor(chance: dict[str, float | None]) -> float:
    """The highest chance level one attack must beat (every level of :func:`chance_levels`)."""
    return max(v for v in chance.values() if v is not None)


def _ran(per_attack: dict[str, dict]) -> int:
    return max(sum(1 for pa in per_attack.values() if pa["applicable"]), 1)


def _floor(
    judge: Judge, chance: dict[str, float | None], guesses: list[SampleScores], ran: int, measure: str
) -> float | None:
    if all(v is None for v in chance.values()):
        return None
    union = _union(judge, guesses, ran, measure)
    return max(single_attack_floor(chance), union if union is not None else 0.0)


BLIND = ("uniform", "batch_mean", "random_images")  # label-judge levels of guesses that know no label


def attack_verdicts(per_attack: dict[str, dict], chance: dict[str, float | None], iip_floor: float | None) -> None:
    """Mark, in place, what each applicable attack of a row shows beyond its floors.

    ``identifies_samples``: its identification (pixel IIP) interval lies above ``iip_floor``;
    ``beats_prototype``: its ASR interval lies above every label-judge level of ``chance``
    (:func:`chance_levels`, the prototypes' included); ``label_only``: its ASR interval lies above
    the blind levels (uniform, batch mean, random images) but it does not identify samples: it
    leaks the label (or a prototype of it), not the sample."""
    label_floor = single_attack_floor(chance)
    blind = max(v for k, v in chance.items() if k in BLIND and v is not None)
    for pa in per_attack.values():
        if not pa.get("applicable"):
            continue
        lo_iip, lo_asr = pa.get("iip_ci95", [None])[0], pa["asr_ci95"][0]
        pa["identifies_samples"] = bool(iip_floor is not None and lo_iip is not None and lo_iip > iip_floor)
        pa["beats_prototype"] = bool(lo_asr is not None and lo_asr > label_floor)
        pa["label_only"] = bool(lo_asr is not None and lo_asr > blind and not pa["identifies_samples"])


def judge_rows(
    judge: Judge,
    truth: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    batch: int,
    pool: np.ndarray,
    seed: int,
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """Every floor and verdict mark of a report's rows on victims of one batch size:
    :func:`judge_batches` with one group."""
    return judge_batches(judge, [Samples(truth, labels, index, batch)], pool, seed, rows)


def judge_batches(
    judge: Judge, groups: list[Samples], pool: np.ndarray, seed: int, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every floor and verdict mark of a report's rows, the one way ``evaluate``, ``attack`` and the
    privacy-utility grid put them (``pool``: the attacker's auxiliary private inputs, for the random
    guesses; ``groups``: the rows' samples, one group per batch size, in the rows' order).

    Each group's baselines and random guesses are drawn and judged as on that group alone (the same
    ``seed``); every level is then a share over the samples of all groups, i.e. the groups' levels
    weighted by their samples (a level a group lacks, ``batch_mean`` at batch 1, over the groups
    that have it).

    Each row gains ``chance_worst_case`` (label judge) and ``chance_worst_case_iip``
    (identification, pixel space); each applicable attack the marks of :func:`attack_verdicts`;
    and, where ``rows[0]`` is the ANN on the same victims, every attack ``works_on_ann`` (the
    ANN's identification interval lies above its floor: the verdict's measure) and
    ``works_on_ann_label`` (the ANN's ASR interval lies above every label-judge level, the
    prototypes' included). Returns the report's chance entries: ``chance_empirical`` (label
    judge) and ``identification`` (the pool, the rule, its chance levels in both spaces)."""
    base = _batch_baselines(judge, groups, pool, seed)  # judged once, read per measure
    labels = np.concatenate([g.labels for g in groups])
    chance, iip, iip_features = (_levels(judge, base, labels, m) for m in MEASURES)
    iip_floor = single_attack_floor(iip) if judge.pool is not None else None
    most = max((_ran(r["per_attack"]) for r in rows), default=1)
    guesses = _batch_guesses(judge, groups, pool, seed, most)
    for r in rows:
        ran = _ran(r["per_attack"])
        r["chance_worst_case"] = _floor(judge, chance, guesses, ran, "label")
        r["chance_worst_case_iip"] = _floor(judge, iip, guesses, ran, "pixel")
        attack_verdicts(r["per_attack"], chance, iip_floor)
    if rows and rows[0].get("model") == "ann":
        ann = rows[0]["per_attack"]
        for r in rows:
            for name, pa in r["per_attack"].items():
                ref = ann.get(name, {})
                pa["works_on_ann"] = bool(ref.get("identifies_samples"))
                pa["works_on_ann_label"] = bool(ref.get("beats_prototype"))
    return {
        "chance_empirical": chance,
        "identification": {
            "measure": "iip",
            "pool": judge.pool.covers if judge.pool is not None else None,
            "rule": IDENTIFICATION_RULE,
            "chance": iip,
            "chance_features": iip_features,
            "floor": iip_floor,
        },
    }


def _batch_baselines(judge: Judge, groups: list[Samples], pool: np.ndarray, seed: int) -> dict[str, SampleScores]:
    """:func:`baseline_scores` of each group, concatenated per baseline over the groups that have it."""
    per = [baseline_scores(judge, g, pool, seed) for g in groups]
    names = list(dict.fromkeys(name for b in per for name in b))
    return {name: concat_scores([b[name] for b in per if name in b]) for name in names}


def _batch_guesses(
    judge: Judge, groups: list[Samples], pool: np.ndarray, seed: int, attacks: int
) -> list[SampleScores]:
    """:func:`_guesses` of each group, each round concatenated over the groups."""
    per = [_guesses(judge, g, pool, seed, attacks) for g in groups]
    return [concat_scores(list(rounds)) for rounds in zip(*per, strict=True)]


IDENTIFICATION_RULE = (
    "identified: the reconstruction is strictly nearer (squared L2) to the private sample than to every other image "
    "of its label in the pool; exact copies of the sample count as the sample; pixel space and a fixed random conv "
    "embedding"
)
