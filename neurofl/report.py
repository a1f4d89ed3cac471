"""Evaluation outputs: report.json, report.md, reconstructions.png (written atomically)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from neurofl.atomic import atomic_write_bytes


def json_safe(obj: Any) -> Any:
    """JSON-safe: numpy scalars to Python, non-finite floats to null."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(json_safe(obj), indent=2) + "\n").encode())


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table with its settings and how to read it."""
    lines = [
        f"# neurofl evaluate: {report['dataset']}, attack {report['attack']}",
        "",
        f"Victims: {report['victims']} (batch {report['batch_size']}, {report['clients']} clients), "
        f"seed {report['seed']}. "
        f"ASR by {report['asr_kind']}; on the victims' true inputs it is {_fmt(report['oracle_accuracy'])} "
        f"(the top of the scale); chance: {_fmt(report['chance'], 3)}.",
        "",
        "| model | profile | ASR | ASR 95% CI | chance | PSNR dB | SSIM | MSE | l2 | label acc | test acc "
        "| energy µJ | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        ci = r["asr_ci95"]
        lines.append(
            f"| {r['model']} | {r['profile']} | {_fmt(r['asr'])} | [{_fmt(ci[0])}, {_fmt(ci[1])}] "
            f"| {_fmt(report['chance'])} "
            f"| {_fmt(r['psnr'])} | {_fmt(r['ssim'])} | {_fmt(r['mse'], 4)} | {_fmt(r['l2'])} "
            f"| {_fmt(r['label_accuracy'])} | {_fmt(r.get('test_accuracy'), 3)} | {_fmt(r.get('energy_uj'), 3)} "
            f"| {_fmt(r['seconds'], 1)} |"
        )
    snn = [r for r in report["results"] if r["model"] == "snn"]
    if len(report.get("profiles", [])) > 1:
        ranked = sorted(snn, key=lambda r: (r["asr"], r.get("energy_uj") or float("inf")))
        lines += ["", "Profiles ranked by privacy (lowest ASR first, then energy):", ""]
        lines += ["| rank | profile | ASR | PSNR dB | test acc | energy µJ |", "|---|---|---|---|---|---|"]
        for i, r in enumerate(ranked, 1):
            lines.append(
                f"| {i} | {r['profile']} | {_fmt(r['asr'])} | {_fmt(r['psnr'])} | {_fmt(r.get('test_accuracy'), 3)} "
                f"| {_fmt(r.get('energy_uj'), 3)} |"
            )
    lines += [
        "",
        f"ASR reduction (1 - ASR(snn@{report['profile']}) / ASR(ann@float32)): {_fmt(report['asr_reduction'])}",
        "",
        "ASR: share of victims whose reconstruction an independent oracle classifier assigns the victim's true "
        "label (faces: whose nearest neighbour among the clients' images is the victim's own). PSNR/SSIM/MSE/l2 "
        "compare each reconstruction with the victim's true input (means over victims; failed victims excluded "
        "and counted in `failed`; event reconstructions are binarized first). Label acc: labels recovered from "
        "the update itself (iDLG). Test acc: the model trained under the row's profile (centrally, same data); "
        "energy per inference from spike counts and the profile's per-operation energies (`[resources]`).",
    ]
    return "\n".join(lines) + "\n"


def _displayable(sample: np.ndarray) -> np.ndarray:
    """One sample as a picture: (C, H, W) image, or (C, H, W, T) event frames shown as event density."""
    img = np.nan_to_num(np.asarray(sample, np.float64))
    if img.ndim == 4:
        density = img.mean(axis=(0, 3))
        return density / density.max() if density.max() > 0 else density
    img = img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)
    return np.clip(img, 0, 1)


def reconstructions_png(path: Path, originals: np.ndarray, rows: dict[str, np.ndarray], max_cols: int = 16) -> None:
    """Originals in the top row, one row of reconstructions per result row. Arrays: (n, C, H, W)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(originals), max_cols)
    all_rows = {"original": originals, **rows}
    fig, axes = plt.subplots(len(all_rows), n, figsize=(n * 0.9, len(all_rows) * 1.0), squeeze=False)
    for r, (name, imgs) in enumerate(all_rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(_displayable(imgs[c]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def profiles_png(path: Path, report: dict[str, Any]) -> None:
    """Privacy (ASR) against energy per inference, one point per SNN profile, annotated with test accuracy."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["results"] if r["model"] == "snn"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    missing = []
    for r in rows:
        if r.get("energy_uj") is None:
            missing.append(r["profile"])
            continue
        ax.scatter(r["energy_uj"], r["asr"], s=40)
        ax.annotate(f"{r['profile']} (acc {_fmt(r.get('test_accuracy'), 2)})", (r["energy_uj"], r["asr"]),
                    textcoords="offset points", xytext=(5, 5), fontsize=8)  # fmt: skip
    ann = next((r for r in report["results"] if r["model"] == "ann"), None)
    if ann is not None:
        ax.axhline(ann["asr"], ls="--", c="gray", lw=1, label=f"ANN float32 ASR {ann['asr']:.2f}")
    ax.axhline(report["chance"], ls=":", c="k", lw=1, label="chance")
    ax.set_xlabel("energy per inference (µJ)")
    ax.set_ylabel("attack success rate")
    ax.set_ylim(-0.02, 1.02)
    title = f"{report['dataset']}: privacy vs energy"
    if missing:
        title += f"\n(no energy figures: {', '.join(missing)})"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
