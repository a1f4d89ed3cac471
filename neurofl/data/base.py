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
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: int
    kind: Literal["image", "faces", "events"]
    source: str

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"{self.name}: {len(self.x)} inputs but {len(self.y)} labels")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def subset(self, index: np.ndarray) -> Dataset:
        return Dataset(self.name, self.x[index], self.y[index], self.classes, self.kind, self.source)


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


def __getattr__(name: str) -> object:
    """``available_datasets`` and ``load_dataset`` moved to :mod:`neurofl.data.registry` (this
    module no longer depends on it); the old import path keeps working, resolved on first use."""
    if name in ("available_datasets", "load_dataset"):
        from neurofl.data import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Splits:
    """Disjoint splits: ``oracle`` trains the independent oracle, ``clients`` is the clients'
    private data (victims come from it), ``test`` measures model accuracy."""

    oracle: Dataset
    clients: Dataset
    test: Dataset


def split_dataset(ds: Dataset, seed: int, oracle: float = 0.4, test: float = 0.2) -> Splits:
    """Stratified, seeded, disjoint split into oracle / clients / test."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"oracle": [], "clients": [], "test": []}
    for c in np.unique(ds.y):
        idx = rng.permutation(np.flatnonzero(ds.y == c))
        n_or, n_te = int(round(oracle * len(idx))), int(round(test * len(idx)))
        parts["oracle"].append(idx[:n_or])
        parts["test"].append(idx[n_or : n_or + n_te])
        parts["clients"].append(idx[n_or + n_te :])
    out = {k: ds.subset(np.sort(np.concatenate(v))) for k, v in parts.items()}
    return Splits(**out)
