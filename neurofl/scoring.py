"""Scoring one row of an evaluation: how much each victim's reconstruction gives away.

ASR by the oracle (class label) or by re-identification (faces), image metrics on the paired
reconstructions, label recovery; failed (diverged) victims count against ASR only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurofl.attacks.matching import best_assignment
from neurofl.metrics import Oracle, Rate, attack_success, binarize_events, l2, mse, psnr, reidentification, ssim


@dataclass(frozen=True)
class Judge:
    """How a dataset's leakage is scored: ``oracle`` (class label) or ``reid`` (nearest neighbour in
    the clients' data), and whether inputs are events (binarized before scoring)."""

    kind: str
    oracle: Oracle | None
    gallery: np.ndarray | None
    events: bool

    @property
    def top(self) -> str:
        return "re-identification" if self.kind == "reid" else "oracle"


def _label_accuracy(recovered: np.ndarray, true: np.ndarray, batch: int) -> float:
    """Share of true labels recovered; within a batch labels are a multiset (order is not shared)."""
    hits = 0
    for r, t in zip(recovered.reshape(-1, batch), true.reshape(-1, batch), strict=True):
        rv, tv = np.unique(r, return_counts=True), np.unique(t, return_counts=True)
        common = dict(zip(*rv, strict=True))
        hits += sum(min(c, common.get(lab, 0)) for lab, c in zip(*tv, strict=True))
    return hits / len(true)


def score_row(
    kind: str,
    profile: str,
    res: dict[str, np.ndarray],
    truth: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    judge: Judge,
) -> dict[str, Any]:
    """Leakage metrics of one row. Victims whose attack diverged count as failures for ASR and are
    left out of the image metrics (their number is reported as ``failed``). Event reconstructions
    are binarized first; PSNR and SSIM are then not defined (None) and l2 is the study's metric."""
    # a batch's update does not depend on sample order: pair each reconstruction with its original
    batch = len(truth) // len(res["loss"])
    rec = best_assignment(res["images"], truth, batch)
    per_victim_ok = np.isfinite(res["loss"]).repeat(len(rec) // len(res["loss"]))
    ok = np.isfinite(rec.reshape(len(rec), -1)).all(1) & per_victim_ok
    rec = np.where(ok.reshape((-1,) + (1,) * (rec.ndim - 1)), rec, np.nan)
    if judge.events:
        rec = binarize_events(rec)
    if judge.kind == "reid":
        asr: Rate = reidentification(rec, judge.gallery, index)
    else:
        asr = attack_success(judge.oracle, rec, labels)
    label_acc = _label_accuracy(res["labels"], labels, batch)

    def mean(f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> float | None:
        return float(np.mean(f(rec[ok], truth[ok]))) if ok.any() else None

    return {
        "model": kind,
        "profile": profile,
        "victims": int(len(res["loss"])),
        "asr": asr.value,
        "asr_ci95": list(asr.ci95),
        "asr_successes": asr.successes,
        "psnr": None if judge.events else mean(psnr),
        "ssim": None if judge.events else mean(ssim),
        "mse": mean(mse),
        "l2": mean(l2),
        "label_accuracy": label_acc,
        "failed": int((~ok).sum()),
        "seconds": float(res["seconds"]),
    }
