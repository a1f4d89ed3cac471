"""Evaluation outputs: report.json, report.md, reconstructions.png (written atomically)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from neurofl.io.atomic import atomic_write_bytes


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
    """The one JSON writer: atomic, non-finite floats as null (valid JSON), other objects as text."""
    atomic_write_bytes(path, (json.dumps(json_safe(obj), indent=2, default=str) + "\n").encode())


def fmt(v: Any, digits: int = 2) -> str:
    """A report's number as tables show it: floats to ``digits`` decimals, None as a dash.

    >>> fmt(0.5), fmt(None), fmt(3)
    ('0.50', '–', '3')
    """
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def fmt_ci(ci: Any) -> str:
    """A ``[lo, hi]`` interval as tables show it (either end may be None).

    >>> fmt_ci([0.25, None])
    '[0.25, –]'
    """
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def _model_file_lines(report: dict[str, Any]) -> list[str]:
    """The sentence saying which rows hold a checkpoint's weights (``evaluate --model``), if any."""
    mf = report.get("model_file")
    if not mf:
        return []
    rows = [r for r in report["results"] if str(r.get("weights", "")).startswith("file")]
    named = ", ".join(f"{r['model']}@{r['profile']}" for r in rows)
    return [
        "",
        f"Model: `{mf['path']}` (sha256 {mf['sha256'][:12]}, {mf['kind']}, profile {mf['profile']}); {named} "
        "hold its weights as they are, the other rows are built from the seed with its topology.",
    ]


def near_floor(row: dict[str, Any], measure: str = "asr") -> bool:
    """Whether a row's worst-case 95% interval (``asr`` or ``iip``) reaches down to its own chance
    floor (``chance_worst_case`` / ``chance_worst_case_iip``; rows written before it existed never are)."""
    key = "chance_worst_case" if measure == "asr" else "chance_worst_case_iip"
    floor, lo = row.get(key), (row.get(f"{measure}_ci95") or [None])[0]
    return floor is not None and lo is not None and lo <= floor


def _dagger(row: dict[str, Any]) -> str:
    return "†" if near_floor(row) else ""


def leak(r: dict[str, Any]) -> float | None:
    """The verdict's measure of a row or attack: identification (IIP) where measured, else the ASR."""
    return r.get("iip") if r.get("iip") is not None else r.get("asr")


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the worst case per row under both judges, every attack, the verdict."""
    ce = report.get("chance_empirical", {})
    ident = report.get("identification") or {}
    ic = ident.get("chance") or {}
    lines = [
        f"# neurofl evaluate: {report['dataset']}, attack {report['attack']}",
        "",
        f"Victims: {report['victims']} updates of batch {report['batch_size']} ({report['samples']} samples, "
        f"{report['clients']} clients), seed {report['seed']}, round {report['round']}"
        + (f"; each update {report['local_steps']} local SGD steps of {report['minibatch']} samples"
           if report.get("local_steps", 1) > 1 else "") + ".",
        "",
        "**Identified (IIP)**, the verdict's measure: the share of samples whose reconstruction is nearer to the "
        f"private sample than to any other image of its label in the pool ({ident.get('pool') or 'not measured'}); "
        f"chance {fmt(ic.get('exact'), 3)} exact, {fmt(ic.get('random_images'))} for random auxiliary images, "
        f"{fmt(ic.get('class_mean'))} for the class mean. **ASR** (label judge, by {report['asr_kind']}): "
        f"{fmt(report['oracle_accuracy'])} on the true inputs (the top of its scale); chance "
        f"{fmt(report['chance'], 3)} uniform, {fmt(ce.get('batch_mean'))} batch mean, "
        f"{fmt(ce.get('random_images'))} random auxiliary images, and for prototypes {fmt(ce.get('class_mean'))} "
        f"(the auxiliary class mean) / {fmt(ce.get('label_image'))} (an auxiliary image of the label).",
        *_model_file_lines(report),
        "",
        "Worst case per row (a sample leaked if any attack recovered it; the floors are what as many random "
        "auxiliary images as the row ran attacks score; † the 95% interval reaches down to its floor):",
        "",
        "| model | profile | identified | 95% CI | floor | IIP features | ASR | ASR 95% CI | ASR floor | PSNR dB "
        "| SSIM | label acc | test acc | energy µJ | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        iip_dagger = "†" if near_floor(r, "iip") else ""
        lines.append(
            f"| {r['model']} | {r['profile']} | {fmt(r.get('iip'))}{iip_dagger} "
            f"| {fmt_ci(r.get('iip_ci95', [None, None]))} | {fmt(r.get('chance_worst_case_iip'))} "
            f"| {fmt(r.get('iip_features'))} | {fmt(r['asr'])}{_dagger(r)} | {fmt_ci(r['asr_ci95'])} "
            f"| {fmt(r.get('chance_worst_case'))} | {fmt(r['psnr'])} | {fmt(r['ssim'])} "
            f"| {fmt(r['label_accuracy'])} "
            f"| {fmt(r.get('test_accuracy'), 3)} | {fmt(r.get('energy_uj'), 3)} | {fmt(r['seconds'], 1)} |"
        )
    unfit = [r for r in report["results"] if r.get("fits") is False]
    if unfit:
        lines += [""] + [f"Does not fit the chip (its arithmetic is simulated all the same): "
                         f"{r['model']}@{r['profile']}: " + "; ".join(r["fit_problems"]) for r in unfit]  # fmt: skip
    names = list(report["results"][0]["per_attack"])
    lines += ["", "Each attack, identified / ASR (n/a: the attack does not apply, reasons below; * identifies samples "
              "on the ANN beyond the floor; L: leaks the label only, its ASR beats the blind guesses but it "
              "identifies no more samples than chance):", ""]  # fmt: skip
    lines += ["| model | profile | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    reasons: dict[str, str] = {}
    for r in report["results"]:
        cells = []
        for n in names:
            pa = r["per_attack"][n]
            if not pa["applicable"]:
                cells.append("n/a")
                reasons.setdefault(pa["reason"], f"{n} on {r['model']}@{r['profile']}")
            else:
                mark = ("*" if pa.get("works_on_ann") else "") + (" L" if pa.get("label_only") else "")
                cells.append(f"{fmt(pa.get('iip'))} / {fmt(pa['asr'])}{mark}")
        lines.append(f"| {r['model']} | {r['profile']} | " + " | ".join(cells) + " |")
    if reasons:
        lines += [""] + [f"- n/a ({where}): {why}" for why, where in reasons.items()]
    snn = [r for r in report["results"] if r["model"] == "snn"]
    if len(report.get("profiles", [])) > 1:
        ranked = sorted(snn, key=lambda r: (leak(r) if leak(r) is not None else 2, r.get("energy_uj") or 1e300))
        front = pareto_front(snn)
        lines += ["", "Profiles ranked by privacy (fewest samples identified in the worst case first, then energy; "
                  "front: on the Pareto front of identification and energy, no other profile has both lower):",
                  ""]  # fmt: skip
        lines += ["| rank | profile | identified | ASR | PSNR dB | test acc | energy µJ | front | fits | arithmetic |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for i, r in enumerate(ranked, 1):
            fits = {True: "yes", False: "no"}.get(r.get("fits"), "–")
            lines.append(
                f"| {i} | {r['profile']} | {fmt(r.get('iip'))} | {fmt(r['asr'])} | {fmt(r['psnr'])} "
                f"| {fmt(r.get('test_accuracy'), 3)} "
                f"| {fmt(r.get('energy_uj'), 3)} | {'yes' if r['profile'] in front else ''} | {fits} "
                f"| {r.get('arithmetic', '–')} |"
            )
        lines += ["", "Energy: synaptic operations measured on the row's own network over the test split (events x "
                  "the synapses each reaches) and neuron updates counted, times the profile's published per-operation "
                  "energies. '–': no per-operation energy is published for the chip (`\"unknown\"` in its "
                  "[resources]); such rows are ranked after the others of equal ASR and left off the Pareto front. "
                  "Sources of every number: `neurofl profiles show NAME`."]  # fmt: skip
    for name, why in report.get("profiles_skipped", {}).items():
        lines.append(f"- {name}: not compared ({why})")
    lines += ["", "Verdict per SNN row, on samples identified (against the strongest attack that identifies samples "
              "on the ANN beyond the floor), then on the label judge (against attacks whose ANN ASR beats the class "
              "prototype):", ""]  # fmt: skip
    for r in snn:
        lines.append(f"- snn@{r['profile']}: {verdict(report['results'][0], r)}")
        lines.append(f"  - label judge: {verdict(report['results'][0], r, 'asr')}")
    lines += [
        "",
        f"Reduction, 1 - snn@{report['profile']} / ann@float32 (worst cases): identified "
        f"{fmt(report.get('iip_reduction'))}, ASR {fmt(report['asr_reduction'])}",
        "",
        "Identified: sample-level identification (image identifiability precision, Yin et al. 2021): a reconstruction "
        "identifies its sample when it is strictly nearer (squared L2) to it than to every other image of its label "
        "in the pool, in pixel space (IIP) and in a fixed random convolutional feature space (IIP features); exact "
        "copies of the sample count as the sample. ASR: share of samples whose reconstruction the label judge gives "
        "away (the oracle classifier assigns the true label; faces: the nearest neighbour among the clients' faces "
        "is the victim's own). Both with exact (Clopper-Pearson) 95% intervals, on the same pairing (best "
        "assignment within each batch on squared pixel distance); event reconstructions are binarized first. "
        "PSNR/SSIM: means over the samples an attack did not fail on (worst case: each sample's closest "
        "reconstruction). Label acc: labels recovered from the update (multiset per batch). An attack works on the "
        "ANN when the lower end of the ANN's identification interval lies above every single-attack identification "
        "level (exact, batch mean, random images, class mean, an auxiliary image of the label).",
    ]
    return "\n".join(lines) + "\n"


def pareto_front(rows: list[dict[str, Any]]) -> set[str]:
    """Profiles of the rows (with a leakage figure, :func:`leak`, and an energy figure) that no other
    such row beats on both: lower-or-equal leakage and energy, one of them strictly lower."""
    pts: list[tuple[str, float, float]] = [
        (r["profile"], v, r["energy_uj"]) for r in rows if (v := leak(r)) is not None and r.get("energy_uj") is not None
    ]
    return {
        name for name, a, e in pts
        if not any(a2 <= a and e2 <= e and (a2 < a or e2 < e) for _, a2, e2 in pts)
    }  # fmt: skip


MEASURE_KEYS = {"iip": ("iip", "iip_ci95", "works_on_ann"), "asr": ("asr", "asr_ci95", "works_on_ann_label")}


def verdict(ann: dict[str, Any], snn: dict[str, Any], measure: str = "iip") -> str:
    """One sentence: does the SNN leak less than the ANN against attacks that work on the ANN?

    ``measure``: ``iip`` (samples identified; attacks that identify samples on the ANN beyond the
    floor) or ``asr`` (the label judge; attacks whose ANN ASR beats every label-judge level, the
    prototypes' included). Reports written before identification existed fall back to their ASR
    and its ``works_on_ann``."""
    value, ci, works = MEASURE_KEYS[measure]
    legacy = measure == "iip" and all(pa.get("iip") is None for pa in ann["per_attack"].values() if pa["applicable"])
    if legacy:
        value, ci = "asr", "asr_ci95"
    good = [n for n, pa in ann["per_attack"].items() if pa.get(works)]
    if not good:
        what = "identifies samples on" if measure == "iip" else "beats the class prototype on"
        return f"no attack {what} the ANN here, so this setting cannot tell security from obscurity"
    best = max(good, key=lambda n: snn["per_attack"][n][value] if snn["per_attack"][n]["applicable"] else -1)
    pa_s, pa_a = snn["per_attack"][best], ann["per_attack"][best]
    if not pa_s["applicable"]:
        return f"the attacks that work on the ANN ({', '.join(good)}) do not apply to this SNN"
    lo_a, hi_s = pa_a[ci][0], pa_s[ci][1]
    compare = "leaks less than" if hi_s < lo_a else "is not shown to leak less than"
    name = "identified" if value == "iip" else "ASR"
    return (
        f"{compare} the ANN: strongest such attack {best}, SNN {name} {fmt(pa_s[value])} {fmt_ci(pa_s[ci])} vs "
        f"ANN {fmt(pa_a[value])} {fmt_ci(pa_a[ci])}; worst case over all attacks {fmt(snn[value])}"
    )


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
    front = pareto_front(rows)
    for r in rows:
        value = leak(r)
        if r.get("energy_uj") is None or value is None:
            missing.append(r["profile"])
            continue
        on = r["profile"] in front
        ax.scatter(r["energy_uj"], value, s=60 if on else 40, marker="*" if on else "o")
        ax.annotate(f"{r['profile']} (acc {fmt(r.get('test_accuracy'), 2)})", (r["energy_uj"], value),
                    textcoords="offset points", xytext=(5, 5), fontsize=8)  # fmt: skip
    ann = next((r for r in report["results"] if r["model"] == "ann"), None)
    ann_value = leak(ann) if ann is not None else None
    if ann_value is not None:
        ax.axhline(ann_value, ls="--", c="gray", lw=1, label=f"ANN float32 {fmt(ann_value)}")
    exact = ((report.get("identification") or {}).get("chance") or {}).get("exact")
    ax.axhline(exact if exact is not None else report["chance"], ls=":", c="k", lw=1, label="chance")
    ax.set_xlabel("energy per inference (µJ)")
    ax.set_ylabel("samples identified (worst case)" if exact is not None else "attack success rate")
    ax.set_ylim(-0.02, 1.02)
    title = f"{report['dataset']}: privacy vs energy (*: Pareto front)"
    if missing:
        title += f"\n(no energy figures: {', '.join(missing)})"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
