"""Evaluate how much the digits' federated updates leak under Loihi 2, against a float ANN.

Runs ``neurofl evaluate --profile loihi2`` through the Python API and prints, for each row (the ANN,
the float SNN and the SNN in Loihi 2's arithmetic), the share of samples an attack identified and the
attack success rate by the label judge, each with its 95% interval::

    python examples/evaluate_profile.py --out runs/example_evaluate
    python examples/evaluate_profile.py --quick     # two victims, one short attack, untrained rows

The run folder holds report.json, report.md and reconstructions.png.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import neurofl
from neurofl.report import fmt, fmt_ci
from neurofl.runs.threads import apply_thread_policy

# --quick: two victims, one 10-step Inverting Gradients attack, no training for the accuracy column,
# the rows one after another in this process.
QUICK = {"attack": "inverting_gradients", "victims": 2, "clients": 2, "iterations": 10, "train_epochs": 0, "workers": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="run folder [a new temporary folder]")
    parser.add_argument("--quick", action="store_true", help="a small setting that finishes in seconds")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="neurofl-evaluate-"))
    apply_thread_policy(None)  # the command line's thread policy (NEUROFL_THREADS, OMP_NUM_THREADS, else 1)

    report = neurofl.evaluate(profiles="loihi2", dataset="digits", out=out, **(QUICK if args.quick else {}))

    print(f"{report.dataset}, {report.victims} victims x batch {report.batch_size}, attack '{report.attack}'")
    print(f"{'row':<14} {'identified':>10} {'95% CI':>14} {'ASR':>6} {'95% CI':>14} {'test acc':>8}")
    for row in report.rows:
        acc = "n/a" if row.test_accuracy is None else f"{row.test_accuracy:.3f}"
        print(
            f"{row.label:<14} {fmt(row.iip):>10} {fmt_ci(row.iip_ci95):>14} {fmt(row.asr):>6} "
            f"{fmt_ci(row.asr_ci95):>14} {acc:>8}"
        )
    print(f"wrote {out / 'report.json'}")


if __name__ == "__main__":
    main()
