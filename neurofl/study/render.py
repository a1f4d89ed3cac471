"""The study's numbers and pages: one cell's summary of its report (:func:`cell_summary`), the
verdict in words (:func:`statement`), study.md (:func:`study_markdown`), study.png
(:func:`study_png`), and the cells an earlier invocation wrote (:func:`earlier_entries`), so a study
grows by datasets or batch sizes run at different times."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neurofl.report import fmt, fmt_ci, near_floor
from neurofl.study.ablations import LEARNS_ABOVE_CHANCE

# The published attack whose SNN-ANN gap the strong attacks must close or confirm: Inverting Gradients
# as published for images, its relaxed-event form for event inputs (the first of these that applies).
REFERENCES = ("inverting_gradients_plain", "spike_ig")


# what the study keeps of each row's gradient informativeness (neurofl.leakage.informativeness): the uploaded
# first-layer update's rank and effective rank, the share of the static inputs' energy its row space
# carries, and for the hidden layer the mean cos² with the span of the spikes it received
INFORMATIVENESS = ("batch", "rank_uploaded", "erank_uploaded", "energy_static_uploaded", "cos2_static_uploaded",
                   "layer1.rank_uploaded", "layer1.cos2_steps_uploaded", "step_share")


def _measure(report: dict[str, Any]) -> str:
    """The verdict's measure: identification (``iip``) where the report has it, else the ASR of
    reports written before it existed."""
    return "iip" if report["results"][0].get("iip") is not None else "asr"


def _gap(ann: dict[str, Any] | None, snn: dict[str, Any] | None, key: str) -> float | None:
    if not ann or not snn or ann.get(key) is None or snn.get(key) is None:
        return None
    return ann[key] - snn[key]


def _less(ann: dict[str, Any], snn: dict[str, Any], key: str) -> bool:
    lo_ann, hi_snn = (ann.get(f"{key}_ci95") or [None])[0], (snn.get(f"{key}_ci95") or [None, None])[1]
    return bool(lo_ann is not None and hi_snn is not None and hi_snn < lo_ann)


def cell_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The study's numbers for one (dataset, batch) cell, from its report.json content.

    Verdicts are on the report's measure (:func:`_measure`: samples identified; the label judge's
    ASR for older reports), with the label judge's kept beside them (``..._label``)."""
    key = _measure(report)
    rows = []
    ann = report["results"][0]
    for r in report["results"]:
        pa = r["per_attack"]
        ran = {n: v for n, v in pa.items() if v["applicable"]}
        effective = {n: v for n, v in ran.items() if v.get("works_on_ann")}
        strongest = max(effective, key=lambda n: ran[n][key]) if effective else None
        beats = [n for n, v in ran.items() if v.get("works_on_ann_label")]  # the label judge's, past the prototype
        ref_name = next((n for n in REFERENCES if pa.get(n, {}).get("applicable")), None)
        ref = pa[ref_name] if ref_name else {}
        rows.append({
            "model": r["model"], "profile": r["profile"], "asr": r["asr"], "asr_ci95": r["asr_ci95"],
            "iip": r.get("iip"), "iip_ci95": r.get("iip_ci95", [None, None]), "iip_features": r.get("iip_features"),
            "chance_worst_case": r.get("chance_worst_case"), "chance_worst_case_iip": r.get("chance_worst_case_iip"),
            "psnr": r.get("psnr"), "l2": r.get("l2"), "label_accuracy": r.get("label_accuracy"),
            "test_accuracy": r.get("test_accuracy"),
            **({"global_accuracy": r["global_accuracy"]} if "global_accuracy" in r else {}),
            "per_attack": {n: {"asr": v["asr"], "asr_ci95": v["asr_ci95"], "iip": v.get("iip"),
                               "iip_ci95": v.get("iip_ci95", [None, None]), "works_on_ann": v.get("works_on_ann"),
                               "works_on_ann_label": v.get("works_on_ann_label"), "label_only": v.get("label_only")}
                           for n, v in ran.items()},
            "not_applicable": {n: v["reason"] for n, v in pa.items() if not v["applicable"]},
            "strongest_effective_attack": strongest,
            "strongest_effective": ran[strongest][key] if strongest else None,
            "strongest_effective_ci95": ran[strongest].get(f"{key}_ci95", [None, None]) if strongest else [None, None],
            "strongest_effective_attack_label": max(beats, key=lambda n: ran[n]["asr"]) if beats else None,
            "reference_attack": ref_name,
            "reference": ref.get(key) if ref.get("applicable") else None,
            "best_attack": r.get("best_attack"),
            "informativeness": {k: v for k, v in (r.get("informativeness") or {}).items() if k in INFORMATIVENESS},
            **({"ablation": r["ablation"]} if r.get("ablation") else {}),
        })  # fmt: skip
    for row, r in zip(rows[1:], report["results"][1:], strict=True):
        row["gap_reference"] = (
            None if row["reference"] is None or rows[0]["reference"] is None
            else rows[0]["reference"] - row["reference"]
        )  # fmt: skip
        row["gap_worst_case"] = _gap(ann, r, key)
        row["leaks_less_than_ann"] = _less(ann, r, key)
        row["leaks_less_than_ann_label"] = _less(ann, r, "asr")
    return {
        **({"rows_not_applicable": report["profiles_skipped"]} if report.get("ablations") else {}),
        "batch": report["batch_size"], "victims": report["victims"], "samples": report["samples"],
        **({"round": report["round"], "local_steps": report["local_steps"], "minibatch": report["minibatch"]}
           if report.get("local_steps", 1) != 1 or report.get("round", 1) != 1 else {}),
        "measure": key, "chance": report["chance"], "chance_empirical": report["chance_empirical"],
        "identification": report.get("identification"),
        "oracle_accuracy": report["oracle_accuracy"], "asr_kind": report["asr_kind"], "rows": rows,
    }  # fmt: skip


VERDICT = {True: "leaks less", False: "not shown to leak less"}


def chip_row(cell: dict[str, Any]) -> dict[str, Any]:
    """The chip row a cell is summarized by: snn@loihi2 where it exists, else its last SNN row
    (ablated rows left out)."""
    snn = [r for r in cell["rows"] if r["model"] == "snn" and "ablation" not in r]
    return next((r for r in snn if r["profile"] == "loihi2"), snn[-1])


def verdict(row: dict[str, Any], label: bool = False) -> str:
    """An SNN row's verdict in words, on samples identified (``label``: on the label judge)."""
    if not label and row["strongest_effective_attack"] is None:
        return "no attack works on the ANN"
    if label and row.get("strongest_effective_attack_label") is None:
        return "no attack beats the class prototype on the ANN"
    return VERDICT[bool(row.get("leaks_less_than_ann_label" if label else "leaks_less_than_ann"))]


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
    if old.get("ablate") != study.get("ablate"):  # other ablated rows (absent: none)
        return {}
    if any(old.get(k, 1) != study.get(k, 1) for k in ("round", "local_steps")):  # another threat (absent: 1)
        return {}
    return {d["dataset"]: d for d in old.get("datasets", [])}


def statement(cell: dict[str, Any], row: dict[str, Any]) -> str:
    """Whether the SNN leaks less than the ANN on the cell's measure, and whether the strong attacks
    closed the gap that the published attack showed; the label judge's verdict beside it."""
    key = cell.get("measure", "asr")
    ref, worst = row.get("gap_reference"), row.get("gap_worst_case")
    ann_v, snn_v = fmt(cell["rows"][0][key]), fmt(row[key])
    what = "samples identified" if key == "iip" else "ASR"
    if row["strongest_effective_attack"] is None:
        head = "no attack works on the ANN here: the setting cannot tell security from obscurity"
    elif row["leaks_less_than_ann"]:
        head = f"leaks less than the ANN ({what}, worst case {snn_v} vs {ann_v})"
    else:
        head = f"not shown to leak less than the ANN ({what}, worst case {snn_v} vs {ann_v})"
    acc, chance = row.get("test_accuracy"), cell["chance_empirical"].get("uniform")
    if row["leaks_less_than_ann"] and acc is not None and chance and acc <= LEARNS_ABOVE_CHANCE * chance:
        head += f", but it does not learn (test accuracy {fmt(acc, 3)}): not privacy"
    if key == "iip":
        label = "leaks less" if row.get("leaks_less_than_ann_label") else "not shown to leak less"
        if row.get("strongest_effective_attack_label") is None:
            label = "no attack beats the class prototype on the ANN"
        head += (f"; label judge: {label} (ASR {fmt(row['asr'])} vs {fmt(cell['rows'][0]['asr'])}, "
                 f"class mean {fmt(cell['chance_empirical'].get('class_mean'))})")
    if ref is None:
        return head
    closed = ref - worst if worst is not None else None
    return (f"{head}; the published attack ({row['reference_attack']}) showed a gap of {fmt(ref)}, "
            f"the strong attacks leave {fmt(worst)} (closed {fmt(closed)})")


def _pair(pa: dict[str, Any], key: str) -> str:
    """One attack's cell: ``identified / ASR`` (ASR alone in older reports), * where it works on the
    ANN, L where it leaks the label only."""
    mark = ("*" if pa.get("works_on_ann") else "") + (" L" if pa.get("label_only") else "")
    value = f"{fmt(pa.get('iip'))} / {fmt(pa['asr'])}" if key == "iip" else fmt(pa["asr"])
    return value + mark


def study_markdown(study: dict[str, Any]) -> str:
    lines = ["# neurofl study: SNN vs ANN leakage against the strongest attacks", "",
             f"attack {study['attack']} (gradient-matching iterations {study['iterations'] or 'as shipped'}), "
             f"seed {study['seed']}, up to {study['victims']} victims per cell. Identified: share of samples whose "
             "reconstruction is nearer to the private sample than to any other image of its label in the dataset "
             "(sample-level identification, the verdict's measure); ASR: share the label judge recognizes. Worst "
             "case: any attack. Chance levels go through the same pairing and judges.", ""]  # fmt: skip
    if study.get("round", 1) != 1 or study.get("local_steps", 1) != 1:
        lines += [f"Threat: the global model of round {study.get('round', 1)}; each update "
                  + (f"one local epoch of {study['local_steps']} SGD steps over its batch (a fresh minibatch of "
                     "batch / steps samples per step), unrolled by the attacks" if study.get("local_steps", 1) > 1
                     else "the FedSGD gradient of its batch") + ".", ""]  # fmt: skip
    for d in study["datasets"]:
        lines += [f"## {d['dataset']}", ""]
        for cell in d["cells"]:
            ce, key = cell["chance_empirical"], cell.get("measure", "asr")
            ic = (cell.get("identification") or {}).get("chance") or {}
            chance = (f"identified: exact {fmt(ic.get('exact'), 3)}, random images {fmt(ic.get('random_images'))}, "
                      f"class mean {fmt(ic.get('class_mean'))}; ASR: " if key == "iip" else "chance ")
            chance += (f"{fmt(ce['uniform'], 3)} / {fmt(ce.get('batch_mean'))} / {fmt(ce.get('random_images'))}"
                       + (f" / class mean {fmt(ce.get('class_mean'))}" if ce.get("class_mean") is not None else ""))
            lines += [f"### batch {cell['batch']} ({cell['victims']} victims, {cell['samples']} samples; {chance}; "
                      f"top of the ASR scale {fmt(cell['oracle_accuracy'])})", ""]  # fmt: skip
            if cell.get("scored"):  # a cell kept from before sample-level identification existed
                lines += [f"Scored by the {cell['scored']}.", ""]
            names = sorted({n for r in cell["rows"] for n in r["per_attack"]})
            first = "worst case identified [95% CI] | worst case ASR [95% CI]" if key == "iip" else \
                "worst case ASR [95% CI]"
            head = f"| model | profile | {first} | " + " | ".join(names) + " | strongest on ANN |"
            lines += [head, "|---|---|" + "---|" * (first.count("|") + 1) + "---|" * len(names) + "---|"]
            for r in cell["rows"]:
                cells = [_pair(r["per_attack"][n], key) if n in r["per_attack"] else "n/a" for n in names]
                worst = f"{fmt(r['asr'])}{'†' if near_floor(r) else ''} {fmt_ci(r['asr_ci95'])}"
                if key == "iip":
                    worst = f"{fmt(r['iip'])}{'†' if near_floor(r, 'iip') else ''} {fmt_ci(r['iip_ci95'])} | " + worst
                lines.append(f"| {r['model']} | {r['profile']} | {worst} | "
                             + " | ".join(cells) + f" | {r['strongest_effective_attack'] or '–'} |")  # fmt: skip
            lines.append("")
            if any(r.get("informativeness") for r in cell["rows"]):
                lines += ["Gradient informativeness of the uploaded updates (mean over victims): first layer's rank, "
                          "effective rank, share of the batch's input energy in its row space; hidden layer's rank and "
                          "mean cos² with the span of the spikes it received:", ""]  # fmt: skip
                for r in cell["rows"]:
                    i = r.get("informativeness") or {}
                    lines.append(f"- {r['model']}@{r['profile']}: rank {fmt(i.get('rank_uploaded'), 1)}, erank "
                                 f"{fmt(i.get('erank_uploaded'), 1)}, input energy "
                                 f"{fmt(i.get('energy_static_uploaded'))}"
                                 f"; hidden rank {fmt(i.get('layer1.rank_uploaded'), 1)}, cos² "
                                 f"{fmt(i.get('layer1.cos2_steps_uploaded'))}")  # fmt: skip
                lines.append("")
            for r in cell["rows"][1:]:
                lines.append(f"- snn@{r['profile']}: {statement(cell, r)}")
            lines.append("")
        if d.get("skipped_batches"):
            lines += [f"Batches skipped: {d['skipped_batches']}", ""]
    if study.get("ablations"):
        from neurofl.study.ablations import ablation_markdown

        lines += ablation_markdown(study["ablations"])
    if study["skipped"]:
        lines += ["Datasets not available (no files under the data dir): " + ", ".join(study["skipped"]), ""]
    lines += ["Each attack: identified / ASR. `*`: the attack works on the ANN in that cell (the lower end of the "
              "ANN's identification interval is above every single-attack identification level: exact chance, "
              "batch mean, random images, class mean, an auxiliary image of the label). L: the attack leaks the "
              "label only (its ASR beats the blind guesses, it identifies no more samples than chance). †: the worst "
              "case's 95% interval reaches down to its own floor (a sample counts if any of as many random auxiliary "
              "images as the suite has attacks is recognized). n/a: the attack does not apply (each cell's report.md "
              "says why).", ""]
    return "\n".join(lines)


def study_png(path: Path, study: dict[str, Any]) -> None:
    """Leakage (samples identified; ASR for older cells) against batch size, one panel per dataset:
    worst case (solid) and the published attack (dashed)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurofl.io.atomic import atomic_write_bytes

    ds = [d for d in study["datasets"] if d["cells"]]
    if not ds:
        return
    fig, axes = plt.subplots(1, len(ds), figsize=(4 * len(ds), 3.4), squeeze=False)
    for ax, d in zip(axes[0], ds, strict=True):
        batches = [c["batch"] for c in d["cells"]]
        for i, row in enumerate(d["cells"][0]["rows"]):
            label = f"{row['model']}@{row['profile']}"
            worst = [c["rows"][i][c.get("measure", "asr")] for c in d["cells"]]
            ref = [c["rows"][i].get("reference", c["rows"][i].get("reference_asr")) for c in d["cells"]]
            (line,) = ax.plot(batches, worst, "o-", label=f"{label} worst case")
            if any(v is not None for v in ref):
                ax.plot(batches, [v if v is not None else float("nan") for v in ref], "x--", color=line.get_color(),
                        alpha=0.6, label=f"{label} published attack")  # fmt: skip
        chance = [((c.get("identification") or {}).get("chance") or {}).get("exact", c["chance_empirical"]["uniform"])
                  for c in d["cells"]]  # fmt: skip
        ax.plot(batches, chance, "k:", label="chance")
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("batch size")
        ax.set_ylabel("samples identified" if d["cells"][-1].get("measure") == "iip" else "ASR")
        ax.set_title(d["dataset"], fontsize=9)
    axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
