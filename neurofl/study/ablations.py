"""The study's ablation axes (``neurofl study --ablate KEY=V1,V2,...``, :mod:`neurofl.ablation`): per
axis, per cell and chip profile, each value's test accuracy and leakage with its interval, the ANN as
reference, and a one-line verdict (:func:`ablation_summary`); its section of study.md
(:func:`ablation_markdown`) and one plot per axis (:func:`ablation_pngs`).

Leakage is what the row's strongest attack among those that work on the ANN in that cell identifies
(the row's ``strongest_effective``, on the cell's measure: samples identified), with that attack's
95% interval; the row's worst case over every attack is kept beside it.
An axis **moves leakage beyond the intervals** in a cell where two of its values (the unablated row's
included) have disjoint intervals.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from neurofl.ablation import AXES
from neurofl.report import fmt

NUMERIC = ("time_steps", "surrogate_width")  # axes whose values are numbers (sorted, log-scaled plots)
# a row whose test accuracy is at most this multiple of the label chance is marked "does not learn"
LEARNS_ABOVE_CHANCE = 1.5


def _key_of(label: str) -> str:
    """``snn@loihi2[time_steps=4]`` -> ``time_steps``."""
    return label.rsplit("[", 1)[-1].split("=", 1)[0]


def _entry(row: dict[str, Any], value: str, base: bool, chance: float | None, measure: str) -> dict[str, Any]:
    acc = row.get("test_accuracy")
    return {
        "value": value, "base": base, "row": f"{row['model']}@{row['profile']}", "test_accuracy": acc,
        "learns": None if acc is None or chance is None else bool(acc > LEARNS_ABOVE_CHANCE * chance),
        "leakage": row.get("strongest_effective"), "ci95": row.get("strongest_effective_ci95") or [None, None],
        "attack": row.get("strongest_effective_attack"),
        "worst_case": row.get(measure), "worst_case_ci95": row.get(f"{measure}_ci95") or [None, None],
    }  # fmt: skip


def _order(key: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if key in NUMERIC:
        return sorted(entries, key=lambda e: (float(e["value"]), not e["base"]))
    return entries


def cell_verdict(key: str, entries: list[dict[str, Any]]) -> tuple[bool | None, str]:
    """Whether two values of the axis have disjoint leakage intervals in this cell, and the line that
    says so (None: no attack works on the ANN, nothing to compare). Rows that do not learn are not
    compared (a network whose output ignores its input uploads nothing to leak): the line names them."""
    dead = [e for e in entries if e.get("learns") is False]
    known = [e for e in entries if e["leakage"] is not None and None not in e["ci95"] and e not in dead]
    names = ", ".join(f"{key}={e['value']}" for e in dead)
    note = f"; not compared, does not learn: {names}" if dead else ""
    if len(known) < 2:
        return None, "no attack works on the ANN here (or fewer than two learning values measured): nothing to " \
                     "compare" + note  # fmt: skip
    hi = max(known, key=lambda e: e["ci95"][0])
    lo = min(known, key=lambda e: e["ci95"][1])

    def say(e: dict[str, Any]) -> str:
        return f"{key}={e['value']}{' (base)' if e['base'] else ''} {e['leakage']:.2f} [{e['ci95'][0]:.2f}, " \
               f"{e['ci95'][1]:.2f}]"  # fmt: skip

    if hi["ci95"][0] > lo["ci95"][1]:
        return True, f"moves leakage beyond the intervals: {say(hi)} vs {say(lo)}{note}"
    span = sorted(e["leakage"] for e in known)
    return False, f"does not move leakage beyond the intervals (all overlap; {span[0]:.2f} to {span[-1]:.2f}){note}"


def ablation_summary(datasets: list[dict[str, Any]], order: list[str]) -> dict[str, Any]:
    """Per ablated key (in ``order``, the study's ``ablate`` labels): its cells (dataset, batch, base
    profile) with the ANN's and each value's row, the rows that do not apply there, the cell's
    verdict, and the axis's verdict in one line."""
    keys = list(dict.fromkeys(label.split("=", 1)[0] for label in order))
    out: dict[str, Any] = {}
    for key in keys:
        cells = []
        for d in datasets:
            for cell in d["cells"]:
                rows, chance, measure = cell["rows"], cell.get("chance"), cell.get("measure", "asr")
                ann = rows[0]
                ablated = [r for r in rows if (r.get("ablation") or {}).get("key") == key]
                na = {k: v for k, v in (cell.get("rows_not_applicable") or {}).items() if _key_of(k) == key}
                for base in dict.fromkeys(r["ablation"]["base"] for r in ablated):
                    mine = [r for r in ablated if r["ablation"]["base"] == base]
                    base_row = next((r for r in rows if r["profile"] == base and not r.get("ablation")
                                     and r["model"] == "snn"), None)  # fmt: skip
                    entries = [_entry(r, r["ablation"]["value"], False, chance, measure) for r in mine]
                    if base_row is not None:
                        entries.insert(0, _entry(base_row, mine[0]["ablation"]["base_value"], True, chance, measure))
                    entries = _order(key, entries)
                    moved, line = cell_verdict(key, entries)
                    cells.append({"dataset": d["dataset"], "batch": cell["batch"], "profile": base,
                                  "measure": measure, "ann": _entry(ann, "–", False, chance, measure),
                                  "values": entries, "moves_leakage": moved, "verdict": line,
                                  "not_applicable": {k: v for k, v in na.items() if f"@{base}[" in k}})  # fmt: skip
                if not ablated and na:
                    cells.append({"dataset": d["dataset"], "batch": cell["batch"], "profile": None,
                                  "measure": measure, "ann": _entry(ann, "–", False, chance, measure),
                                  "values": [], "moves_leakage": None, "verdict": "does not apply to this data",
                                  "not_applicable": na})  # fmt: skip
        out[key] = {"axis": AXES[key][0] if key in AXES else key, "cells": cells, "verdict": axis_verdict(cells)}
    return out


def axis_verdict(cells: list[dict[str, Any]]) -> str:
    """One line: in which cells the axis moves leakage beyond the intervals."""
    judged = [c for c in cells if c["moves_leakage"] is not None]
    if not judged:
        return "not measured: no cell where an attack works on the ANN and two values were scored"
    moved = [c for c in judged if c["moves_leakage"]]
    n = f"{len(judged)} cell{'s' if len(judged) > 1 else ''}"
    dead = [f"{c['dataset']}/batch{c['batch']} {c['profile']}: {c['verdict'].split('does not learn: ', 1)[1]}"
            for c in cells if "does not learn: " in c["verdict"]]  # fmt: skip
    note = f" (not compared, rows that do not learn: {'; '.join(dead)})" if dead else ""
    if not moved:
        return f"does not move leakage beyond the intervals in {'any of ' if len(judged) > 1 else ''}{n}{note}"
    pairs = "; ".join(f"{c['dataset']}/batch{c['batch']} {c['profile']}: "
                      f"{c['verdict'].split(': ', 1)[1].split('; not compared', 1)[0]}" for c in moved)  # fmt: skip
    return f"moves leakage beyond the intervals in {len(moved)} of {n} ({pairs}){note}"


def ablation_markdown(summary: dict[str, Any]) -> list[str]:
    """study.md's ablation section: per axis, a table per cell and the verdicts."""
    lines = ["## Ablations", "",
             "Each value is the SNN row of the chip profile with only that key changed (`--ablate`). Leakage: "
             "samples identified by the row's strongest attack among those that work on the ANN in that cell, with "
             "its 95% interval (the verdict's measure); beside it the worst case over every attack (a sample counts "
             "if any attack identifies it). The ANN's on the first line. Test accuracy: the row trained under its "
             f"profile (`--train-epochs`); ‡ marks a row at most {LEARNS_ABOVE_CHANCE}x the label chance (does not "
             "learn).", ""]  # fmt: skip
    for key, axis in summary.items():
        lines += [f"### {key}: {axis['axis']}", "", f"Verdict: {axis['verdict']}.", ""]
        for c in axis["cells"]:
            lines += [f"{c['dataset']} batch {c['batch']}, {c['profile'] or 'no row'}:", ""]
            if c["values"]:
                lines += ["| value | row | test accuracy | leakage [95% CI] | attack | worst case, any attack "
                          "[95% CI] |", "|---|---|---|---|---|---|"]  # fmt: skip
                for e in [c["ann"], *c["values"]]:
                    value = "ANN" if e is c["ann"] else f"{e['value']}{' (base)' if e['base'] else ''}"
                    acc = fmt(e["test_accuracy"]) + ("‡" if e["learns"] is False else "")
                    wc = e["worst_case_ci95"]
                    lines.append(f"| {value} | {e['row']} | {acc} | {fmt(e['leakage'])} "
                                 f"[{fmt(e['ci95'][0])}, {fmt(e['ci95'][1])}] | {e['attack'] or '–'} | "
                                 f"{fmt(e['worst_case'])} [{fmt(wc[0])}, {fmt(wc[1])}] |")  # fmt: skip
                lines += ["", f"- {c['verdict']}"]
            for label, why in c["not_applicable"].items():
                lines.append(f"- {label}: not applicable ({why})")
            lines.append("")
    return lines


def ablation_pngs(out: Path, summary: dict[str, Any]) -> list[Path]:
    """``ablation_<key>.png`` per axis: one panel per cell, leakage (with its interval) and test
    accuracy against the value, the ANN's as horizontal reference lines. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurofl.io.atomic import atomic_write_bytes
    from neurofl.runs.identity import path_component

    written = []
    for key, axis in summary.items():
        cells = [c for c in axis["cells"] if c["values"]]
        if not cells:
            continue
        fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 3.4), squeeze=False)
        for ax, c in zip(axes[0], cells, strict=True):
            vals = c["values"]
            xs = list(range(len(vals)))
            leak = [e["leakage"] if e["leakage"] is not None else float("nan") for e in vals]
            err = [[(e["leakage"] - e["ci95"][0]) if e["leakage"] is not None and e["ci95"][0] is not None else 0
                    for e in vals],
                   [(e["ci95"][1] - e["leakage"]) if e["leakage"] is not None and e["ci95"][1] is not None else 0
                    for e in vals]]  # fmt: skip
            ax.errorbar(xs, leak, yerr=err, fmt="o-", color="C1", capsize=3, label="SNN leakage [95% CI]")
            acc = [e["test_accuracy"] if e["test_accuracy"] is not None else float("nan") for e in vals]
            ax.plot(xs, acc, "s--", color="C2", label="SNN test accuracy")
            if c["ann"]["leakage"] is not None:
                ax.axhline(c["ann"]["leakage"], color="C0", label="ANN leakage")
            if c["ann"]["test_accuracy"] is not None:
                ax.axhline(c["ann"]["test_accuracy"], color="C0", ls=":", label="ANN test accuracy")
            ax.set_xticks(xs, [f"{e['value']}{'*' if e['base'] else ''}" for e in vals])
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel(f"{key} (* base)")
            ax.set_ylabel("samples identified / accuracy" if c["measure"] == "iip" else "ASR / accuracy")
            ax.set_title(f"{c['dataset']} batch {c['batch']}, {c['profile']}", fontsize=9)
        axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        path = out / f"ablation_{path_component(key)}.png"
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)
    return written
