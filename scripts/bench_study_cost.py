"""Where a study's time goes: the attack seconds its cells recorded, per cell, per attack and per row.

    .venv/bin/python scripts/bench_study_cost.py RUN_FOLDER [RUN_FOLDER ...] [--out results/bench_study_cost.json]

Reads every ``DATASET/batchB/report.json`` under the given ``neurofl study --out`` folders (a cell
found in several folders counts once, from the first folder given) and writes one JSON object:
per cell its attack seconds by attack and by row, and over all cells the seconds and share of each
attack, each dataset and each batch size; which cells of the default study (``neurofl study`` with
no options: digits, fashion-mnist, faces, dvs-digits x batch 1, 4, 16) no folder holds; and the
factor the recorded attack time is above one hour. The seconds are what each task measured when it
ran (``per_attack.seconds`` of the cell's rows): cells run at different times, on older code and
on a machine that may have been busy, so this says where the time goes, not what a run costs now.
Model training (``--train-epochs``) is not recorded per cell and is not included.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

DEFAULT_CELLS = [(d, b) for d in ("digits", "fashion-mnist", "faces", "dvs-digits") for b in (1, 4, 16)]
HOUR = 3600.0


def cells(folders: list[Path]) -> dict[tuple[str, int], tuple[Path, dict]]:
    """(dataset, batch) -> (report path, report), the first folder given winning."""
    found: dict[tuple[str, int], tuple[Path, dict]] = {}
    for folder in folders:
        for path in sorted(folder.glob("*/batch*/report.json")):
            key = (path.parent.parent.name, int(path.parent.name[len("batch"):]))
            if key not in found:
                found[key] = (path, json.loads(path.read_text()))
    return found


def cost(report: dict) -> dict:
    """A cell's attack seconds: total, by attack and by row (``model@profile``)."""
    by_attack: dict[str, float] = defaultdict(float)
    by_row: dict[str, float] = {}
    for row in report["results"]:
        seconds = {a: v["seconds"] for a, v in row.get("per_attack", {}).items()
                   if isinstance(v, dict) and isinstance(v.get("seconds"), (int, float))}  # fmt: skip
        for attack, s in seconds.items():
            by_attack[attack] += s
        by_row[f"{row['model']}@{row['profile']}"] = sum(seconds.values())
    return {"victims": report.get("victims"), "seconds": sum(by_attack.values()),
            "by_attack": dict(sorted(by_attack.items(), key=lambda kv: -kv[1])), "by_row": by_row}  # fmt: skip


def shares(totals: dict[str, float], whole: float) -> dict[str, dict[str, float]]:
    return {k: {"seconds": round(v, 1), "share": round(v / whole, 3) if whole else 0.0}
            for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", type=Path, nargs="+", help="neurofl study --out folders")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    found = cells(args.folders)
    if not found:
        print(f"no DATASET/batchB/report.json under {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 2
    per_cell = {f"{d}/batch{b}": {"report": str(p), **cost(r)} for (d, b), (p, r) in sorted(found.items())}
    attack: dict[str, float] = defaultdict(float)
    dataset: dict[str, float] = defaultdict(float)
    batch: dict[str, float] = defaultdict(float)
    for (d, b), (_, r) in found.items():
        c = cost(r)
        for a, s in c["by_attack"].items():
            attack[a] += s
        dataset[d] += c["seconds"]
        batch[str(b)] += c["seconds"]
    total = sum(attack.values())
    default = [f"{d}/batch{b}" for d, b in DEFAULT_CELLS]
    in_default = sum(per_cell[k]["seconds"] for k in default if k in per_cell)
    out = {
        "benchmark": "bench_study_cost",
        "command": " ".join(["scripts/bench_study_cost.py", *map(str, args.folders)]),
        "note": "attack seconds each task recorded when it ran (different times, code and load); training excluded",
        "cells": per_cell,
        "total_attack_seconds": round(total, 1),
        "by_attack": shares(attack, total),
        "by_dataset": shares(dataset, total),
        "by_batch": shares(batch, total),
        "default_study": {
            "cells": default,
            "missing": [k for k in default if k not in per_cell],
            "attack_seconds_of_cells_found": round(in_default, 1),
            "hours": round(in_default / HOUR, 2),  # also the factor above the one-hour target
        },
    }
    text = json.dumps(out, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text if not args.out else f"{len(per_cell)} cells, {total / HOUR:.2f} h of attacks -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
