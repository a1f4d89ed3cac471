#!/usr/bin/env python
"""The study behind the verdict: does an SNN on a chip leak less than the matched float ANN against the
strongest attack we have, and is that attack known to work on the ANN?

For every available dataset (embedded: digits, faces, dvs-digits; on disk: fashion-mnist and the
others when their files are under --data-dir / $NEUROFL_DATA) and every batch size, one
``neurofl evaluate`` with the attack suite (rows ann@float32, snn@float32 and snn under each
--profiles entry). Writes OUT/study.json, OUT/study.md and OUT/study.png (ASR against batch size per
dataset: each row's worst case over the suite, and the published attack for reference: Inverting
Gradients for images, its relaxed-event form spike_ig for events);
each cell's full evaluation lands in OUT/<dataset>/batch<B>/, and a rerun with the same OUT resumes.
Cells an earlier invocation wrote to OUT/study.json with the same settings are kept, so a study can
grow by datasets or batch sizes run at different times.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/reproduce_study.py --out results/study
    .venv/bin/python scripts/reproduce_study.py --datasets digits --batches 1 --victims 2 --iterations 5 \\
        --train-epochs 0 --out /tmp/study   # smoke run
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from neurofl.errors import UserError
from neurofl.report import near_floor

# The published attack whose SNN-ANN gap the strong attacks must close or confirm: Inverting Gradients
# as published for images, its relaxed-event form for event inputs (the first of these that applies).
REFERENCES = ("inverting_gradients_plain", "spike_ig")


def _gap(ann: dict[str, Any] | None, snn: dict[str, Any] | None) -> float | None:
    if not ann or not snn or ann.get("asr") is None or snn.get("asr") is None:
        return None
    return ann["asr"] - snn["asr"]


def cell_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The study's numbers for one (dataset, batch) cell, from its report.json content."""
    rows = []
    ann = report["results"][0]
    for r in report["results"]:
        pa = r["per_attack"]
        ran = {n: v for n, v in pa.items() if v["applicable"]}
        effective = {n: v for n, v in ran.items() if v.get("works_on_ann")}
        strongest = max(effective, key=lambda n: ran[n]["asr"]) if effective else None
        ref_name = next((n for n in REFERENCES if pa.get(n, {}).get("applicable")), None)
        ref = pa[ref_name] if ref_name else {}
        rows.append({
            "model": r["model"], "profile": r["profile"], "asr": r["asr"], "asr_ci95": r["asr_ci95"],
            "chance_worst_case": r.get("chance_worst_case"),
            "psnr": r.get("psnr"), "l2": r.get("l2"), "label_accuracy": r.get("label_accuracy"),
            "test_accuracy": r.get("test_accuracy"),
            "per_attack": {n: {"asr": v["asr"], "asr_ci95": v["asr_ci95"], "works_on_ann": v.get("works_on_ann")}
                           for n, v in ran.items()},
            "not_applicable": {n: v["reason"] for n, v in pa.items() if not v["applicable"]},
            "strongest_effective_attack": strongest,
            "strongest_effective_asr": ran[strongest]["asr"] if strongest else None,
            "reference_attack": ref_name,
            "reference_asr": ref.get("asr") if ref.get("applicable") else None,
            "best_attack": r.get("best_attack"),
        })  # fmt: skip
    for row in rows[1:]:
        row["gap_reference"] = (
            None if row["reference_asr"] is None or rows[0]["reference_asr"] is None
            else rows[0]["reference_asr"] - row["reference_asr"]
        )  # fmt: skip
        row["gap_worst_case"] = _gap(rows[0], row)
        lo_ann, hi_snn = ann["asr_ci95"][0], row["asr_ci95"][1]
        row["leaks_less_than_ann"] = bool(lo_ann is not None and hi_snn is not None and hi_snn < lo_ann)
    return {
        "batch": report["batch_size"], "victims": report["victims"], "samples": report["samples"],
        "chance": report["chance"], "chance_empirical": report["chance_empirical"],
        "oracle_accuracy": report["oracle_accuracy"], "asr_kind": report["asr_kind"], "rows": rows,
    }  # fmt: skip


SAME_STUDY = ("attack", "profiles", "seed", "victims", "clients", "iterations", "train_epochs")


def earlier_entries(path: Path, study: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The dataset entries an earlier invocation wrote to ``path`` with the same settings, by name,
    so that a study can grow by datasets or batch sizes run at different times. A study with other
    settings (or none) contributes nothing."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(old, dict) or any(old.get(k) != study[k] for k in SAME_STUDY):
        return {}
    if old.get("device", "cpu") != study.get("device", "cpu"):  # studies before --device ran on the CPU
        return {}
    return {d["dataset"]: d for d in old.get("datasets", [])}


def _fmt(v: Any, d: int = 2) -> str:
    return "–" if v is None else f"{v:.{d}f}" if isinstance(v, float) else str(v)


def _ci(ci: list[Any]) -> str:
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def statement(cell: dict[str, Any], row: dict[str, Any]) -> str:
    """Whether the strong attacks closed the SNN-ANN gap that the published attack showed, and by how much."""
    ref, worst = row.get("gap_reference"), row.get("gap_worst_case")
    if row["strongest_effective_attack"] is None:
        head = "no attack works on the ANN here: the setting cannot tell security from obscurity"
    elif row["leaks_less_than_ann"]:
        head = f"leaks less than the ANN (worst case {_fmt(row['asr'])} vs {_fmt(cell['rows'][0]['asr'])})"
    else:
        head = f"not shown to leak less than the ANN (worst case {_fmt(row['asr'])} vs {_fmt(cell['rows'][0]['asr'])})"
    if ref is None:
        return head
    closed = ref - worst if worst is not None else None
    return (f"{head}; the published attack ({row['reference_attack']}) showed a gap of {_fmt(ref)}, "
            f"the strong attacks leave {_fmt(worst)} (closed {_fmt(closed)})")


def study_markdown(study: dict[str, Any]) -> str:
    lines = ["# neurofl study: SNN vs ANN leakage against the strongest attacks", "",
             f"attack {study['attack']} (gradient-matching iterations {study['iterations'] or 'as shipped'}), "
             f"seed {study['seed']}, up to {study['victims']} victims per cell. ASR: share of samples the "
             "independent judge recognizes (worst case: any attack); chance: uniform / batch mean / random "
             "auxiliary images through the same pairing and judge.", ""]  # fmt: skip
    for d in study["datasets"]:
        lines += [f"## {d['dataset']}", ""]
        for cell in d["cells"]:
            ce = cell["chance_empirical"]
            lines += [f"### batch {cell['batch']} ({cell['victims']} victims, {cell['samples']} samples; chance "
                      f"{_fmt(ce['uniform'], 3)} / {_fmt(ce.get('batch_mean'))} / {_fmt(ce.get('random_images'))}; "
                      f"top of scale {_fmt(cell['oracle_accuracy'])})", ""]  # fmt: skip
            names = sorted({n for r in cell["rows"] for n in r["per_attack"]})
            head = "| model | profile | worst case ASR [95% CI] | " + " | ".join(names) + " | strongest on ANN |"
            lines += [head, "|---|---|---|" + "---|" * len(names) + "---|"]
            for r in cell["rows"]:
                cells = [(f"{_fmt(r['per_attack'][n]['asr'])}{'*' if r['per_attack'][n]['works_on_ann'] else ''}"
                          if n in r["per_attack"] else "n/a") for n in names]  # fmt: skip
                dagger = "†" if near_floor(r) else ""
                lines.append(f"| {r['model']} | {r['profile']} | {_fmt(r['asr'])}{dagger} {_ci(r['asr_ci95'])} | "
                             + " | ".join(cells) + f" | {r['strongest_effective_attack'] or '–'} |")  # fmt: skip
            lines.append("")
            for r in cell["rows"][1:]:
                lines.append(f"- snn@{r['profile']}: {statement(cell, r)}")
            lines.append("")
        if d.get("skipped_batches"):
            lines += [f"Batches skipped: {d['skipped_batches']}", ""]
    if study["skipped"]:
        lines += ["Datasets not available (no files under the data dir): " + ", ".join(study["skipped"]), ""]
    lines += ["`*`: the attack works on the ANN in that cell (the lower end of the ANN's 95% interval is above "
              "every single-attack chance level). †: the worst case's 95% interval reaches down to its own floor (a "
              "sample counts if any of as many random auxiliary images as the suite has attacks is recognized). "
              "n/a: the attack does not apply (each cell's report.md says why).", ""]
    return "\n".join(lines)


def study_png(path: Path, study: dict[str, Any]) -> None:
    """ASR against batch size, one panel per dataset: worst case (solid) and the published attack (dashed)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurofl.atomic import atomic_write_bytes

    ds = [d for d in study["datasets"] if d["cells"]]
    if not ds:
        return
    fig, axes = plt.subplots(1, len(ds), figsize=(4 * len(ds), 3.4), squeeze=False)
    for ax, d in zip(axes[0], ds, strict=True):
        batches = [c["batch"] for c in d["cells"]]
        for i, row in enumerate(d["cells"][0]["rows"]):
            label = f"{row['model']}@{row['profile']}"
            worst = [c["rows"][i]["asr"] for c in d["cells"]]
            ref = [c["rows"][i]["reference_asr"] for c in d["cells"]]
            (line,) = ax.plot(batches, worst, "o-", label=f"{label} worst case")
            if any(v is not None for v in ref):
                ax.plot(batches, [v if v is not None else float("nan") for v in ref], "x--", color=line.get_color(),
                        alpha=0.6, label=f"{label} published attack")  # fmt: skip
        ax.plot(batches, [c["chance_empirical"]["uniform"] for c in d["cells"]], "k:", label="chance")
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("batch size")
        ax.set_ylabel("ASR")
        ax.set_title(d["dataset"], fontsize=9)
    axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("runs/study"), show_default=True)
@click.option("--profiles", default="loihi2,loihi1", show_default=True, help="Chip profiles beside float32.")
@click.option("--datasets", "only", default="digits,fashion-mnist,faces,dvs-digits", show_default=True,
              help="Comma-separated datasets (those not available are listed as skipped).")
@click.option("--batches", default="1,4,16", show_default=True)
@click.option("--attack", default="suite_study", show_default=True)
@click.option("--victims", type=click.IntRange(1), default=16, show_default=True)
@click.option("--clients", type=click.IntRange(1), default=8, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--iterations", type=click.IntRange(1), default=None,
              help="Gradient-matching iterations (default: the recipes').")
@click.option("--train-epochs", type=click.IntRange(0), default=5, show_default=True)
@click.option("--min-victims", type=click.IntRange(1), default=4, show_default=True,
              help="Skip a (dataset, batch) cell where fewer victims fit.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when available), cpu, cuda or cuda:N.")
def main(data_dir, out, profiles, only, batches, attack, victims, clients, seed, iterations, train_epochs, min_victims,
         device):  # fmt: skip
    """Run `evaluate` on every available dataset and batch size and summarize the verdict."""
    from neurofl.atomic import atomic_write_bytes
    from neurofl.commands.common import stderr
    from neurofl.data import available_datasets, load_dataset, split_dataset
    from neurofl.data.paths import optional_data_dir
    from neurofl.data.registry import is_available
    from neurofl.device import device_kind, resolve_device
    from neurofl.evaluate import EvaluateConfig, run_evaluate
    from neurofl.report import write_json
    from neurofl.victims import victims_that_fit

    registry = available_datasets()
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise UserError(f"--datasets: unknown dataset '{unknown[0]}' (known: {', '.join(registry)})")
    sizes = sorted({int(b) for b in batches.split(",") if b.strip()})
    root = optional_data_dir(data_dir)
    todo = [n for n in names if is_available(registry[n], root)]
    dev = resolve_device(device)
    study: dict[str, Any] = {"attack": attack, "profiles": profiles, "seed": seed, "victims": victims,
                             "clients": clients, "iterations": iterations, "train_epochs": train_epochs,
                             "device": device_kind(dev),
                             "datasets": [], "skipped": [n for n in names if n not in todo]}  # fmt: skip
    earlier = earlier_entries(out / "study.json", study)

    def save() -> None:  # after each cell, so a partial study is readable
        whole = {**study, "datasets": [*study["datasets"], *earlier.values()]}
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "study.json", whole)
        atomic_write_bytes(out / "study.md", study_markdown(whole).encode())
        study_png(out / "study.png", whole)

    for name in todo:
        ds = load_dataset(name, root)
        clients_split = split_dataset(ds, seed).clients
        kept = [c for c in earlier.pop(name, {}).get("cells", []) if c["batch"] not in sizes]
        entry: dict[str, Any] = {"dataset": name, "kind": ds.kind, "cells": kept, "skipped_batches": []}
        study["datasets"].append(entry)
        for b in sizes:
            n = min(victims, victims_that_fit(clients_split, b, clients, seed))
            if n < min_victims:
                why = f"{b} (only {n} victims of {b} private samples fit in {clients} clients)"
                entry["skipped_batches"].append(why)
                continue
            stderr.print(f"[bold]{name}[/bold] batch {b}: {n} victims, rows ann/snn float32 and {profiles}")
            t0 = time.perf_counter()
            cfg = EvaluateConfig(
                profiles=tuple(profiles.split(",")), dataset=name, attack=attack, clients=clients, victims=n,
                batch_size=b, seed=seed, out=out / name / f"batch{b}", data_dir=root, iterations=iterations,
                train_epochs=train_epochs, device=str(dev),
            )  # fmt: skip
            report = run_evaluate(cfg)
            cell = cell_summary(report)
            cell["wall_seconds"] = time.perf_counter() - t0  # this invocation's (small when resumed)
            cell["attack_seconds"] = sum(r["phases"]["attacks"] for r in report["results"])  # kept across resumes
            entry["cells"] = sorted([*entry["cells"], cell], key=lambda c: c["batch"])
            save()
    save()
    stderr.print(f"wrote {out / 'study.json'}, {out / 'study.md'} and {out / 'study.png'}")


if __name__ == "__main__":
    try:
        main(standalone_mode=False)
    except click.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        sys.exit(2)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
