"""Train a small spiking network for Loihi 2, export it as a NetX file and verify it in Lava.

What ``neurofl train``, ``neurofl export`` and ``neurofl verify`` do, through the library: the
network is trained quantization-aware under the ``loihi2`` profile (SLAYER), checked to fit the chip
(8-bit weight mantissas, 24-bit states, cores) and written as NetX HDF5; the file is then read
back and run in Lava's fixed-point simulation of Loihi 2, and its spikes are compared with
SLAYER's, bin by bin::

    python examples/export_verify.py --out runs/example_export
    python examples/export_verify.py --quick     # one epoch, four test samples in Lava
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from neurofl.data import load_dataset, split_dataset
from neurofl.deploy.export import export_netx
from neurofl.deploy.netx import read_netx
from neurofl.deploy.parity import verify_netx
from neurofl.models import Architecture
from neurofl.profiles import load_profile
from neurofl.runs.threads import apply_thread_policy
from neurofl.train import train_model

SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output folder [a new temporary folder]")
    parser.add_argument("--quick", action="store_true", help="a small setting that finishes in seconds")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="neurofl-export-"))
    out.mkdir(parents=True, exist_ok=True)
    apply_thread_policy(None)  # the command line's thread policy (NEUROFL_THREADS, OMP_NUM_THREADS, else 1)
    epochs, samples = (1, 4) if args.quick else (10, 100)

    # 1. train (neurofl train): a 64-32-10 CUBA LIF network, quantization-aware under Loihi 2
    profile = load_profile("loihi2")
    splits = split_dataset(load_dataset("digits"), SEED)
    arch = Architecture(splits.clients.input_shape, splits.clients.classes, hidden=(32,))
    trained = train_model("snn", arch, profile, splits.clients, splits.test, epochs, SEED)
    print(f"trained snn@{profile.name} for {epochs} epoch(s): test accuracy {trained.accuracy:.3f}")

    # 2. export (neurofl export): the chip-fit checks on the clients' inputs, then the NetX file
    net = out / "digits_loihi2.net"
    meta = {"dataset": "digits", "seed": SEED, "slayer_accuracy": trained.accuracy}
    fit = export_netx(trained.model.cpu(), net, torch.from_numpy(splits.clients.x), meta, SEED)
    print(
        f"wrote {net}: weight mantissas in [{fit.weight_min}, {fit.weight_max}], "
        f"max |voltage| {fit.max_abs_voltage} of {fit.state_limit}"
    )

    # 3. verify (neurofl verify): the file in Lava fixed point against SLAYER
    rep = verify_netx(read_netx(net), splits.test, samples, SEED)
    print(
        f"Lava vs SLAYER on {rep.samples} test samples: spike agreement {rep.spike_agreement:.4%}, "
        f"classification agreement {rep.classification_agreement:.2%}"
    )
    result = {
        "netx": str(net),
        "test_accuracy": trained.accuracy,
        "samples": rep.samples,
        "spike_agreement": rep.spike_agreement,
        "classification_agreement": rep.classification_agreement,
    }
    (out / "verify.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'verify.json'}")


if __name__ == "__main__":
    main()
