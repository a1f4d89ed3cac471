#!/usr/bin/env python
"""Reproduce the study: ANN vs SNN leakage under float32 and a chip profile, on every dataset
available (the embedded ones always: digits, faces, dvs-digits; on-disk ones when their files
are under --data-dir / $NEUROFL_DATA).

Writes OUT/study.json and OUT/study.md (per dataset: ASR with its 95% interval and chance,
PSNR/SSIM for images or l2 for event frames, and the ASR reduction); each dataset's full
evaluation lands in OUT/<dataset>/ (report.json, report.md, reconstructions.png), and a rerun
with the same OUT resumes.

    .venv/bin/python scripts/reproduce_study.py --data-dir ~/data --out runs/study
    .venv/bin/python scripts/reproduce_study.py --victims 4 --iterations 20 --out /tmp/study  # smoke run
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from neurofl.errors import UserError


def dataset_summary(name: str, kind: str, report: dict[str, Any]) -> dict[str, Any]:
    """The study's numbers for one dataset, from its report.json content."""
    metrics = ("l2",) if kind == "events" else ("psnr", "ssim")
    rows = [
        {"model": r["model"], "profile": r["profile"], "asr": r["asr"], "asr_ci95": r["asr_ci95"],
         **{m: r.get(m) for m in metrics}}
        for r in report["results"]
    ]  # fmt: skip
    return {
        "dataset": name,
        "kind": kind,
        "chance": report["chance"],
        "victims": report["victims"],
        "rows": rows,
        "asr_reduction": report["asr_reduction"],
    }


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def study_markdown(study: dict[str, Any]) -> str:
    """One table per dataset: rows ann@float32, snn@float32, snn@<profile>."""
    lines = ["# neurofl study reproduction", "", f"profile: {study['profile']}, seed {study['seed']}", ""]
    for d in study["datasets"]:
        metrics = [k for k in ("psnr", "ssim", "l2") if k in d["rows"][0]]
        lines += [f"## {d['dataset']} ({d['kind']}, {d['victims']} victims, chance {d['chance']:.3f})", ""]
        lines += ["| model | profile | ASR | ASR 95% CI | " + " | ".join(m.upper() for m in metrics) + " |"]
        lines += ["|---" * (4 + len(metrics)) + "|"]
        for r in d["rows"]:
            ci = f"[{r['asr_ci95'][0]:.2f}, {r['asr_ci95'][1]:.2f}]"
            vals = " | ".join(_fmt(r[m]) for m in metrics)
            lines.append(f"| {r['model']} | {r['profile']} | {r['asr']:.3f} | {ci} | {vals} |")
        rule = f"1 - ASR snn@{study['profile']} / ASR ann@float32"
        lines += ["", f"ASR reduction ({rule}): {_fmt(d['asr_reduction'])}", ""]
    if study["skipped"]:
        lines += ["Not available (no files under the data dir): " + ", ".join(study["skipped"]), ""]
    return "\n".join(lines)


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("runs/study"), show_default=True)
@click.option("--profile", default="loihi2", show_default=True, help="Chip profile compared with float32.")
@click.option("--datasets", "only", default=None, help="Comma-separated subset (default: every available one).")
@click.option("--victims", type=int, default=32, show_default=True)
@click.option("--clients", type=int, default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--iterations", type=int, default=None, help="Override the attack's iterations (quick runs).")
@click.option("--train-epochs", type=int, default=15, show_default=True, help="Epochs for each row's test accuracy.")
def main(data_dir, out, profile, only, victims, clients, seed, iterations, train_epochs) -> None:
    """Run `evaluate` on every available dataset and summarize."""
    from neurofl.atomic import atomic_write_bytes
    from neurofl.commands.common import stderr
    from neurofl.data.base import available_datasets
    from neurofl.data.paths import optional_data_dir
    from neurofl.data.registry import is_available
    from neurofl.evaluate import EvaluateConfig, run_evaluate
    from neurofl.report import write_json

    registry = available_datasets()
    names = list(registry) if only is None else [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise UserError(f"--datasets: unknown dataset '{unknown[0]}' (known: {', '.join(registry)})")
    root = optional_data_dir(data_dir)
    todo = [n for n in names if is_available(registry[n], root)]
    study: dict[str, Any] = {"profile": profile, "seed": seed, "victims": victims, "clients": clients,
                             "attack_iterations": iterations, "datasets": [],
                             "skipped": [n for n in names if n not in todo]}  # fmt: skip
    for name in todo:
        stderr.print(f"[bold]{name}[/bold]: evaluating ann and snn under float32 and {profile}")
        kind = "events" if registry[name].shape.endswith("events") else "image"
        cfg = EvaluateConfig(
            profiles=(profile,), dataset=name, clients=clients, victims=victims, seed=seed,
            out=out / name, data_dir=root, iterations=iterations, train_epochs=train_epochs,
            attack="spike_ig" if kind == "events" else "inverting_gradients",
        )  # fmt: skip
        report = run_evaluate(cfg)
        study["datasets"].append(dataset_summary(name, kind, report))
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "study.json", study)  # after each dataset, so a partial study is readable
        atomic_write_bytes(out / "study.md", study_markdown(study).encode())
    stderr.print(f"wrote {out / 'study.json'} and {out / 'study.md'}")


if __name__ == "__main__":
    try:
        main(standalone_mode=False)
    except click.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        sys.exit(2)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
