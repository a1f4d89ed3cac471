"""Studies of the realistic threat side by side: the global model of a later round, FedAvg updates.

Each ``neurofl study --round R --local-steps K`` writes one study.json; :func:`threat_table` puts their
cells in one table (round, local steps, batch), ANN vs the chip SNN on the measure of every verdict,
with the global models' test accuracy, so a reader sees whether the SNN's advantage holds where
training happens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neurofl.report import fmt, fmt_ci
from neurofl.study.render import chip_row, verdict


def threat_rows(studies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cell of ``studies`` (study.json contents), by round, local steps and batch: the
    ANN's and the chip SNN's worst case identified, the strongest attack that identifies the ANN's
    samples beyond its floor (None: none does) with both models' values on it, the verdict, and
    the global models' test accuracy (None at round 1: the initial model)."""
    out = []
    for study in studies:
        for entry in study["datasets"]:
            for cell in entry["cells"]:
                ann, snn = cell["rows"][0], chip_row(cell)
                attack = snn["strongest_effective_attack"]
                out.append({
                    "dataset": entry["dataset"], "round": study.get("round", 1),
                    "local_steps": study.get("local_steps", 1), "batch": cell["batch"],
                    "minibatch": cell.get("minibatch", cell["batch"]), "samples": cell["samples"],
                    "ann_accuracy": ann.get("global_accuracy"), "snn_accuracy": snn.get("global_accuracy"),
                    "ann": ann["iip"], "ann_ci95": ann["iip_ci95"], "snn": snn["iip"], "snn_ci95": snn["iip_ci95"],
                    "attack": attack,
                    "ann_attack": ann["per_attack"][attack]["iip"] if attack else None,
                    "snn_attack": snn["per_attack"][attack]["iip"] if attack else None,
                    "verdict": verdict(snn),
                })  # fmt: skip
    return sorted(out, key=lambda r: (r["dataset"], r["round"], r["local_steps"], r["batch"]))


def threat_table(studies: list[dict[str, Any]]) -> str:
    """:func:`threat_rows` as a Markdown table."""
    lines = ["| dataset | round | update | samples | global model accuracy ANN / SNN | ANN identified [95% CI] "
             "| SNN loihi2 identified [95% CI] | strongest attack on the ANN: ANN / SNN | SNN vs ANN |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in threat_rows(studies):
        update = ("FedSGD gradient of " + str(r["batch"]) if r["local_steps"] == 1
                  else f"{r['local_steps']} steps of {r['minibatch']} (one epoch of {r['batch']})")  # fmt: skip
        acc = "initial model" if r["round"] == 1 else f"{fmt(r['ann_accuracy'])} / {fmt(r['snn_accuracy'])}"
        attack = f"{r['attack']}: {fmt(r['ann_attack'])} / {fmt(r['snn_attack'])}" if r["attack"] else "–"
        lines.append(f"| {r['dataset']} | {r['round']} | {update} | {r['samples']} | {acc} "
                     f"| {fmt(r['ann'])} {fmt_ci(r['ann_ci95'])} | {fmt(r['snn'])} {fmt_ci(r['snn_ci95'])} "
                     f"| {attack} | {r['verdict']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def threat_files(folder: Path) -> list[Path]:
    """The study files of ``folder`` (``*/study.json``: one study per round and local-steps setting)."""
    return sorted(folder.glob("*/study.json"))
