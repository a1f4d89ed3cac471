"""Rebuild the shipped NetX reference models and their manifest.

    OMP_NUM_THREADS=1 .venv/bin/python netx_models/build.py [--only FILE ... | --resources-only]

For each entry of :data:`MODELS`: train the SNN on the dataset's ``clients`` split (seed 0) under the
profile, export it to ``<dataset>_<profile>.net``, verify it in Lava fixed point on the first
``samples`` test samples, estimate its chip resources on the whole test split, and record everything
in ``manifest.json`` (tests/deploy/test_netx_models.py re-runs exactly those samples). ``--only``
rebuilds the named files and keeps the other manifest rows as they are; each row records the command
that rebuilds it. ``--resources-only`` retrains nothing and recomputes every row's resources from its file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neurofl.data import load_dataset, split_dataset
from neurofl.deploy.export import export_netx
from neurofl.deploy.netx import read_netx
from neurofl.deploy.parity import reference_model, verify_netx
from neurofl.deploy.resources import estimate_resources
from neurofl.io.atomic import atomic_write
from neurofl.models import architecture_for
from neurofl.profiles import load_profile
from neurofl.train import TrainConfig, train_model

HERE = Path(__file__).resolve().parent
SEED = 0
COMMAND = "OMP_NUM_THREADS=1 .venv/bin/python netx_models/build.py --only {file}"


@dataclass(frozen=True)
class Build:
    """One shipped model: dataset, profile, ``arch`` (``architecture_for``: mlp or conv), training
    epochs, the number of test samples verified in Lava (and re-run by the test), and Adam's
    learning rate and batch size (:class:`neurofl.train.TrainConfig`)."""

    dataset: str
    profile: str
    arch: str
    epochs: int
    samples: int
    learning_rate: float = TrainConfig.learning_rate
    batch_size: int = TrainConfig.batch_size

    @property
    def file(self) -> str:
        return f"{self.dataset}_{self.profile}.net"


# faces under loihi2 (graded input, put on the 1/64 payload grid by the model); dvs-digits under
# loihi1 (its event frames are binary spikes); conv SNNs downsample by strided convolution. Faces
# has 80 training crops: with the default lr 0.01 / batch 32 the conv SNN collapses to one class.
MODELS = (
    Build("digits", "loihi1", "mlp", 30, 32),
    Build("digits", "loihi2", "mlp", 15, 32),
    Build("faces", "loihi2", "conv", 20, 40, learning_rate=0.003, batch_size=16),
    Build("dvs-digits", "loihi1", "conv", 15, 32),
)


def resources_entry(path: Path, dataset: str) -> dict[str, Any]:
    """Chip resources of the file's network on the whole test split (energy: published per-op figures)."""
    nf = read_netx(path)
    test = split_dataset(load_dataset(dataset), int(nf.header["seed"])).test
    res = estimate_resources(reference_model(nf), nf.profile, torch.from_numpy(test.x), int(nf.header["seed"]))
    energy = res.energy_per_inference
    return {
        "samples": res.samples,
        "cores": int(res.cores_used.value),
        "synapse_memory_kib": res.synapse_memory.value,
        "synops_per_inference": res.synops_per_inference.value,
        "neuron_updates_per_inference": res.neuron_updates_per_inference.value,
        "energy_per_inference_uj": energy.value if energy else None,
        # how each figure was obtained: measured, counted, derived (from published limits) or published
        "sources": {
            "cores": res.cores_used.source,
            "synapse_memory": res.synapse_memory.source,
            "synops": res.synops_per_inference.source,
            "neuron_updates": res.neuron_updates_per_inference.source,
            "energy": energy.source if energy else None,
        },
    }


def build(b: Build) -> dict[str, Any]:
    """Train, export and verify one model; its manifest row."""
    splits = split_dataset(load_dataset(b.dataset), SEED)
    arch = architecture_for(splits.clients.input_shape, splits.clients.classes, b.arch)
    config = TrainConfig(learning_rate=b.learning_rate, batch_size=b.batch_size)
    profile = load_profile(b.profile)
    result = train_model("snn", arch, profile, splits.clients, splits.test, b.epochs, SEED, config=config)
    path = HERE / b.file
    meta = {"dataset": b.dataset, "seed": SEED, "slayer_accuracy": result.accuracy, "epochs": b.epochs}
    export_netx(result.model, path, torch.from_numpy(splits.clients.x), meta, SEED)
    rep = verify_netx(read_netx(path), splits.test, b.samples, SEED)
    return {
        "file": b.file,
        "profile": b.profile,
        "dataset": b.dataset,
        "arch": b.arch,
        "seed": SEED,
        "epochs": b.epochs,
        "learning_rate": b.learning_rate,
        "batch_size": b.batch_size,
        "slayer_test_accuracy": result.accuracy,
        "test_samples": len(splits.test.y),
        "build": COMMAND.format(file=b.file),
        "verify": {k: v for k, v in dataclasses.asdict(rep).items() if not k.endswith("seconds")},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--only", nargs="+", metavar="FILE", help="rebuild only these files (default: all)")
    group.add_argument("--resources-only", action="store_true", help="retrain nothing; recompute resources")
    args = ap.parse_args(argv)
    known = {b.file for b in MODELS}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        print(f"build.py: --only {unknown[0]}: not a shipped model ({', '.join(sorted(known))})", file=sys.stderr)
        sys.exit(2)
    manifest = HERE / "manifest.json"
    old = {m["file"]: m for m in json.loads(manifest.read_text())["models"]} if manifest.exists() else {}
    entries = []
    for b in MODELS:
        if not args.resources_only and (args.only is None or b.file in args.only):
            entry = build(b)
        elif b.file in old:
            entry = old[b.file]
        else:
            continue
        entry["resources"] = resources_entry(HERE / b.file, b.dataset)
        entries.append(entry)
        print(b.file, json.dumps(entry), flush=True)
    text = json.dumps({"models": entries}, indent=2) + "\n"
    atomic_write(manifest, lambda tmp: tmp.write_text(text))


if __name__ == "__main__":
    main()
