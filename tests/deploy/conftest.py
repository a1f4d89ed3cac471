"""Shared fixtures for deploy tests: small digits SNNs trained once per session and exported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neurofl.data import load_dataset, split_dataset
from neurofl.deploy.export import export_netx
from neurofl.models import Architecture
from neurofl.profiles import load_profile
from neurofl.train import train_model


@pytest.fixture(scope="session")
def digits_splits():
    return split_dataset(load_dataset("digits"), 0)


@pytest.fixture(scope="session")
def digits_arch(digits_splits):
    return Architecture(digits_splits.clients.input_shape, digits_splits.clients.classes, hidden=(32,))


def _trained(profile: str, splits, arch, epochs: int = 6):
    return train_model("snn", arch, load_profile(profile), splits.clients, splits.test, epochs, seed=0)


@pytest.fixture(scope="session")
def trained_loihi2(digits_splits, digits_arch):
    return _trained("loihi2", digits_splits, digits_arch)


@pytest.fixture(scope="session")
def trained_loihi1(digits_splits, digits_arch):
    return _trained("loihi1", digits_splits, digits_arch)


def _export(result, splits, folder: Path) -> Path:
    path = folder / f"{result.profile.name}.net"
    export_netx(result.model, path, torch.from_numpy(splits.clients.x[:200]), {"dataset": "digits", "seed": 0})
    return path


@pytest.fixture(scope="session")
def net_loihi2(trained_loihi2, digits_splits, tmp_path_factory) -> Path:
    return _export(trained_loihi2, digits_splits, tmp_path_factory.mktemp("netx"))


@pytest.fixture(scope="session")
def net_loihi1(trained_loihi1, digits_splits, tmp_path_factory) -> Path:
    return _export(trained_loihi1, digits_splits, tmp_path_factory.mktemp("netx"))
