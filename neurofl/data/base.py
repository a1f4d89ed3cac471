"""The dataset contract every loader returns, a registry entry, and the study's three-way split.

The registry itself (a plain table) lives in :mod:`neurofl.data.registry`, which imports this
module; this module imports no loader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """An in-memory labelled dataset.

    Attributes
    ----------
    x : (N, C, H, W) float32 in [0, 1]
        Images; event datasets store binned event frames as (N, C, H, W, T) in [0, 1].
    y : (N,) int64
        Class (or identity) labels in ``range(classes)``.
    kind : ``image`` (ASR by class), ``faces`` (ASR by re-identification) or ``events``.
    private_class : for ``faces``: the label of the samples that are people (only they are
        victims and the re-identification gallery; the other class is background patches, the
        negative class of the training task). None: every sample may be a victim.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: int
    kind: Literal["image", "faces", "events"]
    source: str
    private_class: int | None = None

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"{self.name}: {len(self.x)} inputs but {len(self.y)} labels")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def subset(self, index: np.ndarray) -> Dataset:
        return Dataset(
            self.name, self.x[index], self.y[index], self.classes, self.kind, self.source, self.private_class
        )

    def private(self) -> Dataset:
        """The samples that may be victims (all, unless ``private_class`` says otherwise)."""
        if self.private_class is None:
            return self
        return self.subset(np.flatnonzero(self.y == self.private_class))


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: how to load a dataset and what it is (the table is
    :data:`neurofl.data.registry.DATASETS`)."""

    name: str
    source: str
    embedded: bool
    loader: Callable[[Path | None, bool], Dataset]
    shape: str
    classes: str


@dataclass(frozen=True)
class Splits:
    """Disjoint splits: ``oracle`` trains the independent oracle, ``auxiliary`` is the attacker's
    public data (learned attacks train on it; never a client's, never the oracle's), ``clients``
    is the clients' private data (victims come from it), ``test`` measures model accuracy."""

    oracle: Dataset
    auxiliary: Dataset
    clients: Dataset
    test: Dataset


def split_dataset(
    ds: Dataset, seed: int, held_out: float = 0.4, test: float = 0.2, auxiliary: float = 0.375
) -> Splits:
    """Stratified, seeded, disjoint split into oracle / auxiliary / test / clients.

    Per class, a seeded permutation gives the first ``held_out`` share to the judge's side, the
    next ``test`` share to ``test`` and the rest to ``clients``. The held-out share is divided:
    its first ``1 - auxiliary`` goes to ``oracle``, the rest to ``auxiliary`` (digits: oracle 25%,
    auxiliary 15%, test 20%, clients 40%). A dataset judged by re-identification (``faces``) needs
    no oracle, so its whole held-out share is auxiliary.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"oracle": [], "auxiliary": [], "clients": [], "test": []}
    aux_share = 1.0 if ds.kind == "faces" else auxiliary
    for c in np.unique(ds.y):
        idx = rng.permutation(np.flatnonzero(ds.y == c))
        n_held, n_te = int(round(held_out * len(idx))), int(round(test * len(idx)))
        n_or = n_held - int(round(aux_share * n_held))
        parts["oracle"].append(idx[:n_or])
        parts["auxiliary"].append(idx[n_or:n_held])
        parts["test"].append(idx[n_held : n_held + n_te])
        parts["clients"].append(idx[n_held + n_te :])
    out = {k: ds.subset(np.sort(np.concatenate(v)).astype(np.int64)) for k, v in parts.items()}
    return Splits(**out)
