"""The privacy-utility grid's outputs (``neurofl privacy-utility``): its Markdown tables and plots.

:func:`privacy_utility_markdown` also renders the committed grids into docs/results.md
(:mod:`neurofl.results_page`), rows scored before sample-level identification or before the core's
worst-case floors included.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from neurofl.io.atomic import atomic_write_bytes
from neurofl.report import leak


def _pu_ci(r: dict[str, Any], key: str = "asr") -> str:
    if r.get("asr") is None:
        return "no attack applies" if key == "asr" else "–"
    if r.get(key) is None:
        return "–"
    lo, hi = r[f"{key}_ci95"]
    return f"{r[key]:.2f} [{lo:.2f}, {hi:.2f}]"


def _pu_two(v: dict[str, Any]) -> str:
    """One attack's ``identified / ASR`` (ASR alone for rows scored before identification)."""
    return f"{v['asr']:.2f}" if v.get("iip") is None else f"{v['iip']:.2f} / {v['asr']:.2f}"


def _floors(r: dict[str, Any]) -> str:
    """The ASR floors cell: uniform / random images (the worst case's floor: the core's
    ``chance_worst_case``, or for rows written before it, ``random_images_union``)."""
    ch = r["chance_empirical"]
    cell = f"{ch['uniform']:.2f} / {ch['random_images']:.2f}"
    worst = r["chance_worst_case"] if "chance_worst_case" in r else ch.get("random_images_union")
    return cell + (f" ({worst:.2f})" if worst is not None else "")


CORE_NOTE = (
    "Identified: samples whose reconstruction is nearer to the private sample than to any other image of its label "
    "in the dataset (sample-level identification, the verdict's measure); ASR: the label judge. Each worst case's "
    "floor is the evaluation core's, as in `neurofl attack`: the highest of every chance level (exact chance or "
    "uniform guessing, batch means, random auxiliary images, class prototypes) and of what as many random auxiliary "
    "images as attacks applied score as a worst case, all through the same pairing (best assignment within a batch) "
    "and judge; 'above its floor?': the worst case's 95% interval lies above it."
)
LEGACY_NOTE = (
    "Identified: samples whose reconstruction is nearer to the private sample than to any other image "
    "of its label in the dataset (sample-level identification); its floor is the highest of its exact "
    "chance and what random auxiliary images (as many draws as attacks applied) and class prototypes "
    "score. ASR floors: uniform guessing, and what random auxiliary images score through the same pairing "
    "(best assignment within a batch) and judge, in parentheses as the worst case over as many draws "
    "as attacks applied; 'above the floor?': the worst case's 95% interval lies above that."
)


def privacy_utility_markdown(rows: list[dict[str, Any]], attacked: bool) -> str:
    """The DP grid (``privacy_utility_dp*.json``'s rows) as a Markdown table."""
    core = any("chance_worst_case" in r for r in rows)
    head = ["model", "profile", "defense", "target ε", "σ", "ε spent (unit)", "final accuracy"]
    if attacked:
        floors = "ASR floors: uniform / random images (worst case)" if core else \
            "ASR floors: uniform / random images (union)"  # fmt: skip
        head += ["worst case identified [95% CI]", "identified above its floor?", "worst-case ASR [95% CI]",
                 "per attack (identified / ASR)", floors]  # fmt: skip
        head += ["ASR above the floor?", "samples (updates)"]
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        spent = "" if r["epsilon"] is None else f"{r['epsilon']:.3f} ({r['dp_unit']})"
        sigma = "" if r["noise_multiplier"] is None else format(r["noise_multiplier"], ".4g")
        cells = [r["model"], r.get("profile", "loihi2"), r["defense"],
                 "" if r["target_epsilon"] is None else f"{r['target_epsilon']:g}",
                 sigma, spent, f"{r['final_accuracy']:.3f}"]  # fmt: skip
        if attacked:
            per = ", ".join(f"{k} {_pu_two(v)}" for k, v in r["per_attack"].items() if v["applicable"])
            above = {True: "yes", False: "no", None: "–"}[r.get("beyond_floor")]
            same = f" (the uploads of {r['attack_reused_from']}: attack shared)" if r.get("attack_reused_from") else ""
            above_iip = {True: "yes", False: "no", None: "–"}[r.get("beyond_floor_iip")]
            cells += [_pu_ci(r, "iip"), above_iip, _pu_ci(r), (per or "–") + same, _floors(r), above,
                      f"{r['samples']} ({r['updates_attacked']})"]  # fmt: skip
        md.append("| " + " | ".join(cells) + " |")
    pairs = [(k, v) for r in rows if attacked for k, v in r["per_attack"].items()]
    reasons: dict[str, list[str]] = {}
    for k, v in pairs:
        if not v["applicable"] and v["reason"] not in reasons.setdefault(k, []):
            reasons[k].append(v["reason"])
    if any(reasons.values()):
        md += ["", "Not applicable: " + "; ".join(f"{k}: {' / '.join(v)}" for k, v in reasons.items() if v) + "."]
    if attacked:
        md += ["", CORE_NOTE if core else LEGACY_NOTE]
    return "\n".join(md) + "\n"


def fixed_grid_markdown(rows: list[dict[str, Any]], chance: float) -> str:
    """The fixed grid (``privacy_utility.json``'s rows) as a Markdown table."""
    md = [
        "| model | defense | profile | final accuracy | worst case identified [95% CI] "
        f"| worst-case ASR [95% CI] (chance {chance:.2f}) | samples | PSNR dB | epsilon |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        eps = "" if r["epsilon"] is None else f"{r['epsilon']:.3g}"
        psnr = "–" if r["psnr"] is None else format(r["psnr"], ".1f")
        md.append(f"| {r['model']} | {r['defense']} | {r['profile']} | {r['final_accuracy']:.3f} | "
                  f"{_pu_ci(r, 'iip')} | {_pu_ci(r)} | {r['samples']} | {psnr} | {eps} |")  # fmt: skip
    return "\n".join(md) + "\n"


def _measure(r: dict[str, Any]) -> tuple[str, str]:
    """The verdict's measure of a row (identification where measured, else the ASR) and its floor's key."""
    return ("iip", "floor_iip") if r.get("iip") is not None else ("asr", "floor")


def _legend(r: dict[str, Any]) -> str:
    """A row's name in the plot: defense, epsilon and, off loihi2, the profile."""
    lab = r["defense"] + (f" ε={r['target_epsilon']:g}" if r["target_epsilon"] else "")
    return lab + ("" if r.get("profile", "loihi2") == "loihi2" else f" ({r['profile']})")


def _png(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def pareto_png(rows: list[dict[str, Any]], path: Path) -> None:
    """The DP grid's plot: each row's worst case (identified where measured, else ASR; 95% interval)
    against its final accuracy, one marker per defense, ANN and SNN side by side, each row's
    worst-case floor a black bar, uniform chance dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(_legend(r) for r in rows))
    shapes = "o^sDvP*Xh<>pd1234"
    markers = {lab: shapes[i % len(shapes)] for i, lab in enumerate(labels)}
    kinds = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4.6), sharey=True, squeeze=False)
    identified = any(r.get("iip") is not None for r in rows)
    for ax, kind in zip(axes[0], kinds, strict=True):
        sel = [r for r in rows if r["model"] == kind and leak(r) is not None]
        for r in sel:
            key, _ = _measure(r)
            lo, hi = r[f"{key}_ci95"]
            ax.errorbar(r["final_accuracy"], r[key], yerr=[[r[key] - lo], [hi - r[key]]], fmt=markers[_legend(r)],
                        capsize=3, label=_legend(r))  # fmt: skip
        if sel and not identified:
            ax.axhline(sel[0]["chance"], color="gray", ls="--", lw=0.8, label="chance (uniform)")
        floors = [(r["final_accuracy"], r.get(_measure(r)[1])) for r in sel]
        floors = [(a, f) for a, f in floors if f is not None]
        if floors:
            ax.scatter([a for a, _ in floors], [f for _, f in floors], marker="_", s=400, color="black", lw=1.5,
                       label="the worst case's floor")  # fmt: skip
        ax.set_title(f"{kind.upper()} (digits; loihi2 unless named)")
        ax.set_xlabel("final test accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    axes[0][0].set_ylabel("worst case identified (95% CI)" if identified else "worst-case ASR (95% CI)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=5, fontsize=7)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    _png(fig, path)


def fixed_grid_png(rows: list[dict[str, Any]], chance: float, path: Path) -> None:
    """The fixed grid's plot: each row's worst case (identified where measured, else ASR) against
    its final accuracy, ANN and SNN, uniform chance dashed where the ASR is shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    identified = any(r.get("iip") is not None for r in rows)
    for kind, marker in (("ann", "o"), ("snn", "s")):
        points = [(r["defense"], r["final_accuracy"], value) for r in rows
                  if r["model"] == kind and (value := leak(r)) is not None]  # fmt: skip
        ax.scatter([a for _, a, _ in points], [v for _, _, v in points], marker=marker, label=kind.upper())
        for defense, accuracy, value in points:
            ax.annotate(defense, (accuracy, value), fontsize=6)
    if not identified:
        ax.axhline(chance, color="gray", ls="--", lw=0.8, label="chance")
    ax.set_xlabel("final global test accuracy")
    ax.set_ylabel("samples identified (worst case)" if identified else "attack success rate")
    ax.legend()
    fig.tight_layout()
    _png(fig, path)
