"""Shared helpers for the federated tests: a tiny synthetic dataset and task builder."""

from __future__ import annotations

import numpy as np
import pytest

from neurofl.data import Dataset
from neurofl.federated import fl_config
from neurofl.federated.task import make_task
from neurofl.profiles import load_profile


def tiny_dataset(n: int = 300, seed: int = 0) -> Dataset:
    """Ten classes of 4x4 prototypes plus noise: learnable in a few rounds. x: (n, 1, 4, 4)."""
    rng = np.random.default_rng(seed)
    protos = rng.random((10, 1, 4, 4)).astype(np.float32)
    y = np.arange(n) % 10
    x = np.clip(protos[y] + 0.1 * rng.standard_normal((n, 1, 4, 4)), 0, 1).astype(np.float32)
    return Dataset("tiny", x, y.astype(np.int64), 10, "image", "synthetic (tests)")


@pytest.fixture(scope="session")
def tiny() -> Dataset:
    return tiny_dataset()


def task_for(ds: Dataset, kind: str = "ann", profile: str = "loihi2", **settings: object):
    return make_task(ds, kind, load_profile(profile), fl_config(settings))  # type: ignore[arg-type]
