"""Sample-level identification: did *the private sample* leak, or only something like it?

The label judge (:mod:`neurofl.leakage.scoring`) asks whether a reconstruction shows the sample's class;
a class prototype passes it without revealing anything about the sample. Identification asks
whether the reconstruction singles the sample out among every image of its label in the data the
clients draw from: breaching's *image identifiability precision* (IIP; Yin et al. 2021, "See
through Gradients", Sec. 5), here with an explicit duplicate rule and an exact chance level.

The pool
    Every sample of the dataset (all four splits: oracle, auxiliary, test, clients), grouped by
    label. The attacker never sees it (its auxiliary split is part of it, as in breaching, but
    the attack only ever receives the updates and its own auxiliary data) and it never contains
    reconstructions. Faces (no identity recorded, every face a different person): the pool of a
    face is every face of the dataset, so identifying the sample is identifying the person.
    Events: binarized frames (> 0.5), as the reconstructions are judged.

The rule
    A reconstruction identifies its sample when it is strictly closer to the sample than to every
    other image of the sample's label in the pool (squared L2; ties do not identify). Pool images
    whose content equals the sample's exactly are the same data: they are neither a competitor
    nor a separate identity, so a reconstruction nearest to such a copy identifies the sample.
    Exact chance for one sample is ``1 / (distinct images of its label)``.

Two spaces
    ``pixel``: the flattened input. ``features``: a fixed random convolutional embedding
    (:func:`random_conv_embedding`, seeded once for the project, never the attacked network and
    never trained), which forgives small shifts and contrast that pixel distance punishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EMBED_SEED = 20211  # fixed for the project: the embedding must not depend on a run's seed
EMBED_FILTERS = 16
EMBED_GRID = 4
_CHUNK = 2048


def _pool_cells(n: int, grid: int) -> list[slice]:
    edges = np.linspace(0, n, grid + 1).round().astype(int)
    return [slice(a, max(b, a + 1)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def random_conv_embedding(x: np.ndarray, seed: int = EMBED_SEED) -> np.ndarray:
    """A fixed, untrained feature space for nearest-neighbour identification.

    Parameters
    ----------
    x : (n, C, H, W) images in [0, 1], or (n, C, H, W, T) event frames (summed over T into an
        event-count image first), or (n, D) flat inputs.
    seed : the filters' seed (the project's fixed :data:`EMBED_SEED` by default).

    Returns
    -------
    (n, F) float32: 16 zero-mean random 3x3 filters, ReLU, averaged over a 4x4 grid of cells
    (F = 16 * 16); flat inputs: a ReLU random projection to 256 dimensions.

    >>> x = np.random.default_rng(0).random((3, 1, 8, 8))
    >>> random_conv_embedding(x).shape
    (3, 256)
    >>> bool(np.allclose(random_conv_embedding(x), random_conv_embedding(x)))
    True
    """
    a = np.asarray(x, np.float32)
    if a.ndim == 5:
        a = a.sum(-1)
    rng = np.random.default_rng(seed)
    if a.ndim != 4 or min(a.shape[-2:]) < 3:
        flat = a.reshape(len(a), -1)
        w = rng.standard_normal((flat.shape[1], EMBED_FILTERS * EMBED_GRID**2)).astype(np.float32)
        return np.maximum(flat @ (w / np.sqrt(flat.shape[1])), 0).astype(np.float32)
    c, h, wd = a.shape[1:]
    filt = rng.standard_normal((EMBED_FILTERS, c, 3, 3)).astype(np.float32)
    filt -= filt.mean(axis=(1, 2, 3), keepdims=True)
    rows, cols = _pool_cells(h - 2, EMBED_GRID), _pool_cells(wd - 2, EMBED_GRID)
    out = np.empty((len(a), EMBED_FILTERS, EMBED_GRID, EMBED_GRID), np.float32)
    for s in range(0, len(a), _CHUNK):
        part = a[s : s + _CHUNK]
        maps = np.zeros((len(part), EMBED_FILTERS, h - 2, wd - 2), np.float32)
        for di in range(3):  # a valid 3x3 correlation as nine shifted channel mixes
            for dj in range(3):
                maps += np.einsum("nchw,kc->nkhw", part[:, :, di : di + h - 2, dj : dj + wd - 2], filt[:, :, di, dj])
        maps = np.maximum(maps, 0)
        for i, r in enumerate(rows):
            for j, q in enumerate(cols):
                out[s : s + _CHUNK, :, i, j] = maps[:, :, r, q].mean(axis=(2, 3))
    return out.reshape(len(a), -1)


@dataclass(frozen=True)
class IdentificationPool:
    """What sample-level identification searches (module docstring: the pool and the rule).

    pixels : (P, D) float32 flattened inputs (binarized for events)
    features : (P, F) float32 their :func:`random_conv_embedding`
    labels : (P,) int64 label of each pool sample
    content : (P,) int64 content class: equal ids exactly when two samples' pixels are equal
    events : the inputs are event frames (a sample is looked up binarized)
    covers : which data the pool holds, in words (for reports)
    """

    pixels: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    content: np.ndarray
    events: bool
    covers: str
    _ids: dict[bytes, int] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, x: np.ndarray, labels: np.ndarray, events: bool, covers: str) -> IdentificationPool:
        """The pool of samples ``x`` (N, ...) with ``labels`` (N,)."""
        a = np.asarray(x, np.float32)
        if events:
            a = (a > 0.5).astype(np.float32)
        flat = np.ascontiguousarray(a.reshape(len(a), -1))
        _, content = np.unique(flat, axis=0, return_inverse=True)
        content = content.reshape(-1).astype(np.int64)
        ids = {row.tobytes(): int(c) for row, c in zip(flat, content, strict=True)}
        return cls(flat, random_conv_embedding(a), np.asarray(labels, np.int64), content, events, covers, ids)

    def content_of(self, samples: np.ndarray) -> np.ndarray:
        """(n,) content id of each private sample (n, ...), found by its exact content.

        Raises ValueError for a sample the pool does not hold (our bug: the pool is the dataset the
        victims were drawn from)."""
        a = np.asarray(samples, np.float32)
        if self.events:
            a = (a > 0.5).astype(np.float32)
        flat = np.ascontiguousarray(a.reshape(len(a), -1))
        out = np.array([self._ids.get(row.tobytes(), -1) for row in flat], np.int64)
        if (out < 0).any():
            raise ValueError("a private sample is not in the identification pool")
        return out

    def chance(self, labels: np.ndarray) -> float:
        """Exact chance of a blind guess: the mean over samples of 1 / (distinct images of its label)."""
        labels = np.asarray(labels, np.int64)
        distinct = {int(lab): len(np.unique(self.content[self.labels == lab])) for lab in np.unique(labels)}
        return float(np.mean([1.0 / distinct[int(lab)] for lab in labels])) if len(labels) else float("nan")

    def identified(self, rec: np.ndarray, truth: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether each reconstruction identifies its sample, in pixel space and in feature space.

        rec : (n, ...) paired reconstructions (binarized already for events; NaN rows never identify)
        truth : (n, ...) the private samples; labels : (n,) their true labels
        Returns two (n,) bool arrays: ``pixel``, ``features``.
        """
        flat = np.asarray(rec, np.float64).reshape(len(rec), -1)
        ok = np.isfinite(flat).all(1)
        pix, feat = np.zeros(len(rec), bool), np.zeros(len(rec), bool)
        if not ok.any():
            return pix, feat
        own = self.content_of(truth)
        own_pix = np.asarray(truth, np.float64)
        own_pix = (own_pix > 0.5).astype(np.float64) if self.events else own_pix
        own_pix = own_pix.reshape(len(rec), -1)
        own_feat = random_conv_embedding(own_pix.reshape(np.asarray(truth).shape)).astype(np.float64)
        rec_feat = np.zeros((len(rec), self.features.shape[1]), np.float64)
        shaped = np.where(ok[:, None], flat, 0.0).reshape(np.asarray(rec).shape)
        rec_feat[ok] = random_conv_embedding(shaped[ok])
        labels = np.asarray(labels, np.int64)
        for lab in np.unique(labels[ok]):
            sel = np.flatnonzero(ok & (labels == lab))
            cand = np.flatnonzero(self.labels == lab)
            same = self.content[cand][None, :] == own[sel][:, None]  # (m, P_l): the sample's copies
            pix[sel] = _nearest_is_own(flat[sel], own_pix[sel], self.pixels[cand], same)
            feat[sel] = _nearest_is_own(rec_feat[sel], own_feat[sel], self.features[cand], same)
        return pix, feat


def _nearest_is_own(q: np.ndarray, own: np.ndarray, cand: np.ndarray, same: np.ndarray) -> np.ndarray:
    """(m,) whether each query is strictly closer to its own sample than to any candidate that is
    not a copy of it. q, own : (m, D); cand : (P_l, D); same : (m, P_l) the copies."""
    ref = cand.astype(np.float64)
    d_own = ((q - own) ** 2).sum(1)
    d = (q**2).sum(1, keepdims=True) - 2 * q @ ref.T + (ref**2).sum(1)[None]
    d = np.where(same, np.inf, d)
    nearest = d.argmin(1)
    alone = np.isinf(d[np.arange(len(q)), nearest])  # every candidate is a copy of the sample
    # the competitor's distance recomputed exactly (the expansion above only ranks candidates)
    d_other = ((q - ref[nearest]) ** 2).sum(1)
    return alone | (d_own < d_other)
