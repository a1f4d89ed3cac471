"""Rebuild the shipped NetX reference models and their manifest.

    OMP_NUM_THREADS=1 .venv/bin/python netx_models/build.py

For each profile: train the digits SNN (seed 0), export it to ``digits_<profile>.net``, verify it
in Lava fixed point on the first ``SAMPLES`` test samples, and record the result in
``manifest.json`` (tests/deploy/test_netx_models.py re-runs exactly those samples).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from neurofl.atomic import atomic_write
from neurofl.data import load_dataset, split_dataset
from neurofl.deploy.export import export_netx
from neurofl.deploy.netx import read_netx
from neurofl.deploy.parity import verify_netx
from neurofl.models import Architecture
from neurofl.profiles import load_profile
from neurofl.train import train_model

HERE = Path(__file__).resolve().parent
PROFILES = {"loihi1": 30, "loihi2": 15}  # profile -> epochs
SAMPLES = 32
SEED = 0


def main() -> None:
    splits = split_dataset(load_dataset("digits"), SEED)
    arch = Architecture(splits.clients.input_shape, splits.clients.classes)
    entries = []
    for name, epochs in PROFILES.items():
        result = train_model("snn", arch, load_profile(name), splits.clients, splits.test, epochs, SEED)
        path = HERE / f"digits_{name}.net"
        meta = {"dataset": "digits", "seed": SEED, "slayer_accuracy": result.accuracy, "epochs": epochs}
        export_netx(result.model, path, torch.from_numpy(splits.clients.x), meta, SEED)
        rep = verify_netx(read_netx(path), splits.test, SAMPLES, SEED)
        entries.append(
            {
                "file": path.name,
                "profile": name,
                "dataset": "digits",
                "seed": SEED,
                "epochs": epochs,
                "slayer_test_accuracy": result.accuracy,
                "test_samples": len(splits.test.y),
                "verify": {k: v for k, v in dataclasses.asdict(rep).items() if not k.endswith("seconds")},
            }
        )
        print(name, entries[-1], flush=True)
    text = json.dumps({"models": entries}, indent=2) + "\n"
    atomic_write(HERE / "manifest.json", lambda tmp: tmp.write_text(text))


if __name__ == "__main__":
    main()
