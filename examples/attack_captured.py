"""Train federatedly, capture the clients' updates, then attack the captured updates.

The first half is ``neurofl fl --capture-rounds ... --capture-clients ... --out DIR`` through the
library (``neurofl.federated``): a spiking network is trained by FedSGD on the digits under Loihi 2,
and the uploads of the chosen rounds' first clients are written to ``DIR/fl/updates``, each with the
global model it was computed on. The second half is ``neurofl attack --updates DIR/fl/updates``
through the Python API: the server inverts every captured update and the report scores the
reconstructions against the clients' true samples::

    python examples/attack_captured.py --out runs/example_attack
    python examples/attack_captured.py --quick     # one round, two clients captured, a short attack
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import neurofl
from neurofl.data import load_dataset
from neurofl.federated import fl_config
from neurofl.federated.engine import run_local
from neurofl.federated.recorder import run_fingerprint
from neurofl.federated.task import make_task
from neurofl.profiles import load_profile
from neurofl.report import fmt, fmt_ci
from neurofl.runs.runfolder import RunFolder
from neurofl.runs.threads import apply_thread_policy

FL = {"clients": 8, "rounds": 5, "batch": 4, "capture_rounds": [1, 5], "capture_clients": 4}
ATTACK = {"recipe": "suite"}
# --quick: one round of four clients, two of them captured; one 10-step Inverting Gradients attack.
FL_QUICK = {"clients": 4, "rounds": 1, "batch": 2, "capture_rounds": [1], "capture_clients": 2}
ATTACK_QUICK = {"recipe": "inverting_gradients", "iterations": 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output folder [a new temporary folder]")
    parser.add_argument("--quick", action="store_true", help="a small setting that finishes in seconds")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="neurofl-attack-"))
    apply_thread_policy(None)  # the command line's thread policy (NEUROFL_THREADS, OMP_NUM_THREADS, else 1)

    # 1. federated training with capture (what `neurofl fl` does, without the progress bar)
    cfg = fl_config(FL_QUICK if args.quick else FL)
    task = make_task(load_dataset("digits"), "snn", load_profile("loihi2"), cfg)
    with RunFolder(out / "fl", run_fingerprint(task)):
        result = run_local(task, out / "fl")
    print(f"fl: {cfg.rounds} round(s), final test accuracy {result.rows[-1]['accuracy']:.3f}")
    captured = sorted((out / "fl" / "updates").glob("round*_client*.pt"))
    print(f"captured {len(captured)} updates in {out / 'fl' / 'updates'}")

    # 2. the server attacks the captured updates
    report = neurofl.attack(
        updates=out / "fl" / "updates", dataset="digits", out=out / "attack", **(ATTACK_QUICK if args.quick else ATTACK)
    )
    row = report.rows[0]
    print(
        f"attack '{report.attack}' on {row.label}, {report.victims} updates x batch {report.batch_size}: "
        f"identified {fmt(row.iip)} {fmt_ci(row.iip_ci95)}, ASR {fmt(row.asr)} {fmt_ci(row.asr_ci95)}"
    )
    for name, score in row.per_attack.items():
        if score.applicable:
            print(f"  {name}: identified {fmt(score.iip)}, ASR {fmt(score.asr)}")
        else:
            print(f"  {name}: not applicable ({score.raw.get('reason')})")
    print(f"wrote {out / 'attack' / 'report.json'}")


if __name__ == "__main__":
    main()
