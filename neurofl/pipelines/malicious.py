"""The malicious-server threat model: the server ships an imprint module (``evaluate --threat-model
malicious``), reported apart from the honest-but-curious rows and never mixed into them.

The victims are drawn, their updates computed and their reconstructions judged on the same core as
``evaluate`` (:mod:`neurofl.leakage.victims`, :mod:`neurofl.leakage.scoring`); only the model differs: each row's
model is the server's imprint network (:mod:`neurofl.attacks.imprint`) in that row's arithmetic.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from neurofl.errors import UserError

THREAT_MODEL = "malicious"


def _rows(profiles: tuple[str, ...]) -> list[tuple[str, str]]:
    """ann and snn at float32, then both at each chip profile: the ANN row of a chip shares its
    upload format, so the SNN's gap there is the spiking layer's, not the quantized upload's."""
    chips = [p for p in profiles if p != "float32"]
    return [("ann", "float32"), ("snn", "float32"), *((k, p) for p in chips for k in ("ann", "snn"))]


def run_malicious(cfg: Any) -> dict[str, Any]:
    """Run ``cfg`` (an :class:`neurofl.pipelines.evaluate.EvaluateConfig`; its ``attack`` names an imprint
    recipe, ``suite`` meaning ``imprint``) against a malicious server and write ``report.json`` and
    ``report.md`` into ``cfg.out``. Rows: ann and snn at float32 and at each profile. Returns
    the report. Runs on the CPU (``--device auto`` included): the imprint readout is closed-form."""
    from neurofl.attacks.imprint import ImprintMLP, imprint_layout, imprint_snn, read_imprint
    from neurofl.attacks.recipe import ImprintRecipe, load_recipe
    from neurofl.data import load_dataset, split_dataset
    from neurofl.io.atomic import atomic_write_bytes
    from neurofl.leakage.scoring import Samples, chance_levels, judge_for, sample_scores, summary
    from neurofl.leakage.victims import draw_victims, shared_updates
    from neurofl.profiles import load_profile
    from neurofl.report import write_json
    from neurofl.runs.device import resolve_device
    from neurofl.runs.identity import dataset_identity, table_digest
    from neurofl.runs.runfolder import RunFolder

    if resolve_device(cfg.device).type != "cpu" and cfg.device != "auto":
        raise UserError("--threat-model malicious runs on the CPU (a closed-form readout); use --device cpu or auto")
    if cfg.model is not None:
        raise UserError("--threat-model malicious builds the server's own imprint network; it takes no --model")
    if cfg.local_steps > 1 or cfg.round > 1:
        raise UserError("--threat-model malicious reads the one gradient of the imprint network the server ships; "
                        "it takes no --local-steps or --round")
    recipe = load_recipe("imprint" if cfg.attack == "suite" else cfg.attack)
    if not isinstance(recipe, ImprintRecipe):
        raise UserError(
            f"--threat-model malicious runs an imprint recipe; '{cfg.attack}' is a '{recipe.attack}' recipe"
        )
    ds = load_dataset(cfg.dataset or "digits", cfg.data_dir)
    if ds.kind == "events":
        raise UserError(
            f"--threat-model malicious: the imprint attack reads static images; '{ds.name}' is an event dataset"
        )
    profiles = cfg.profiles or ("loihi2",)
    if profiles == ("all",):  # as evaluate's --profile all: every shipped chip (float32's rows come anyway)
        from neurofl.profiles import shipped_profiles

        profiles = tuple(name for name in shipped_profiles() if name != "float32")
    fingerprint = {"threat_model": THREAT_MODEL, "recipe": table_digest(dataclasses.asdict(recipe)),
                   "dataset": dataset_identity(ds), "profiles": list(profiles),
                   "settings": {k: getattr(cfg, k) for k in ("clients", "victims", "batch_size", "seed")}}  # fmt: skip
    splits = split_dataset(ds, cfg.seed)
    victims = draw_victims(splits.clients, cfg.victims, cfg.batch_size, cfg.clients, cfg.seed)
    judge = judge_for(ds, splits, cfg.seed)
    truth, labels = victims.x.numpy(), victims.y.numpy()
    pool = splits.auxiliary.private().x  # the same random-guess pool as evaluate and attack
    samples = Samples(truth, labels, victims.index, victims.batch)
    chance = chance_levels(judge, samples, pool, cfg.seed)
    chance_iip = chance_levels(judge, samples, pool, cfg.seed, "pixel")
    rows, skipped = [], {}
    with RunFolder(cfg.out, fingerprint) as run:
        for kind, name in _rows(profiles):
            profile = load_profile(name)
            layout = imprint_layout(splits.auxiliary.x, recipe, profile, cfg.seed)
            try:
                model = (ImprintMLP(layout, ds.classes, cfg.seed) if kind == "ann"
                         else imprint_snn(layout, ds.classes, profile, cfg.seed))  # fmt: skip
            except UserError as e:
                skipped[f"{kind}@{name}"] = str(e)
                continue
            updates = shared_updates(model, victims, profile, cfg.seed)
            first = next(iter(updates.values()))
            first = first.reshape(first.shape[0], len(layout.thresholds), layout.inputs)
            rec = read_imprint(first, victims.batch, layout.constant).reshape(truth.shape).numpy()
            scores = sample_scores(judge, rec, np.zeros(victims.count), truth, labels, victims.index, victims.batch)
            rows.append({"model": kind, "profile": name, "threat_model": THREAT_MODEL, "attack": recipe.name,
                         "thresholds": len(layout.thresholds), **summary(scores, victims.batch, judge)})  # fmt: skip
        report = {"threat_model": THREAT_MODEL, "attack": recipe.name, "source": recipe.source,
                  "dataset": ds.name, "batch_size": cfg.batch_size, "victims": victims.count,
                  "clients": cfg.clients, "seed": cfg.seed, "judge": judge.kind, "chance": chance,
                  "identification": {"measure": "iip", "pool": judge.pool.covers if judge.pool else None,
                                     "chance": chance_iip},
                  "results": rows, "skipped": skipped}  # fmt: skip
        write_json(run.out / "report.json", report)
        atomic_write_bytes(run.out / "report.md", markdown(report).encode())
    return report


def markdown(report: dict[str, Any]) -> str:
    """The malicious run's report.md: one table, its chance levels, and the threat model stated."""

    def f(v: Any) -> str:
        return "–" if v is None else f"{v:.2f}"

    lines = [
        f"# neurofl: malicious server ({report['attack']}), {report['dataset']}, batch {report['batch_size']}",
        "",
        "Threat model **malicious**: the server ships its own first layer (an imprint module) instead of the "
        "global model. These numbers are never comparable with, or mixed into, the honest-but-curious rows.",
        "",
        "| model | profile | identified (IIP) [95% CI] | ASR, label judge [95% CI] | PSNR (dB) | thresholds |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        ci, cj = r["asr_ci95"], r.get("iip_ci95", [None, None])
        lines.append(f"| {r['model']} | {r['profile']} | {f(r.get('iip'))} [{f(cj[0])}, {f(cj[1])}] "
                     f"| {f(r['asr'])} [{f(ci[0])}, {f(ci[1])}] | {f(r['psnr'])} | {r['thresholds']} |")  # fmt: skip
    c = report["chance"]
    ci_ = report.get("identification", {}).get("chance", {})
    lines += ["", f"Chance, identification: exact {f(ci_.get('exact'))}, random auxiliary images "
                  f"{f(ci_.get('random_images'))}, class mean {f(ci_.get('class_mean'))}. Label judge: uniform "
                  f"{f(c['uniform'])}, batch mean {f(c['batch_mean'])}, random auxiliary images "
                  f"{f(c['random_images'])}, class mean {f(c.get('class_mean'))}."]  # fmt: skip
    for row, why in report["skipped"].items():
        lines.append(f"- {row}: not run ({why})")
    lines.append(f"\nSource: {report['source']}")
    return "\n".join(lines) + "\n"
