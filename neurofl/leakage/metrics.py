"""Leakage metrics: image similarity per victim, the oracle, and a success rate with its exact interval.

Judging a reconstruction (the label judge, identification) is :mod:`neurofl.leakage.scoring`'s."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import beta
from skimage.metrics import structural_similarity


def mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean squared error per sample. a, b: (n, ...) in [0, 1] -> (n,)"""
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)).reshape(len(a), -1)
    return (d**2).mean(1)


PSNR_CAP_DB = 100.0  # an exact reconstruction would be +inf dB, which JSON cannot hold


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per sample, data range 1, capped at 100 dB (exact recovery).
    (n, ...) -> (n,)"""
    return np.minimum(10 * np.log10(1.0 / np.maximum(mse(a, b), 1e-300)), PSNR_CAP_DB)


def l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance per sample. (n, ...) -> (n,)"""
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)).reshape(len(a), -1)
    return np.linalg.norm(d, axis=1)


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Structural similarity per image (Wang et al. 2004, Gaussian-free 7x7 window or the largest odd
    window that fits), averaged over channels. a, b: (n, C, H, W) in [0, 1] -> (n,)"""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    side = min(a.shape[-2:])
    win = min(7, side if side % 2 else side - 1)
    out = np.empty(len(a))
    for i in range(len(a)):
        out[i] = np.mean(
            [structural_similarity(a[i, c], b[i, c], data_range=1.0, win_size=win) for c in range(a.shape[1])]
        )
    return out


@dataclass(frozen=True)
class Rate:
    """A success rate with its exact (Clopper-Pearson) 95% interval."""

    successes: int
    trials: int

    @property
    def value(self) -> float:
        return self.successes / self.trials if self.trials else float("nan")

    @property
    def ci95(self) -> tuple[float, float]:
        k, n = self.successes, self.trials
        if n == 0:
            return (float("nan"), float("nan"))
        lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
        hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
        return (lo, hi)


class Oracle:
    """The independent judge of a reconstruction: an RBF support-vector classifier on raw pixels,
    trained on held-out clean data (never on reconstructions, never the attacked network)."""

    def __init__(self, seed: int = 0):
        from sklearn.svm import SVC

        self._clf = SVC(gamma="scale", C=10.0, random_state=seed)

    def fit(self, x: np.ndarray, y: np.ndarray) -> Oracle:
        self._clf.fit(np.asarray(x).reshape(len(x), -1), y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._clf.predict(np.asarray(x, np.float64).reshape(len(x), -1))

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.predict(x) == y).mean())


def binarize_events(frames: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Relaxed event frames in [0, 1] -> binary events (1 where > threshold; NaN stays NaN)."""
    f = np.asarray(frames, np.float64)
    return np.where(np.isfinite(f), (f > threshold).astype(np.float64), np.nan)
