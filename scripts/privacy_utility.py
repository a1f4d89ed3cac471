"""Privacy vs utility of each defense, ANN vs SNN, on real federated training of digits.

For every (model, defense setting): train with ``neurofl fl``'s in-process engine, capture
updates of the first and last round, attack them with the attack suite and score them on the
evaluation core (``neurofl attack --updates``: the same oracle, pairing and worst case as
``evaluate``; chance 0.1). Writes JSON, Markdown and a plot.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/privacy_utility.py [--out results/privacy_utility]

``--dp-grid``: DP at target epsilons (``--epsilons 1,4,8``, sample level and client level at each)
and ``--extras`` (``prune``, ``secagg``/``secaggK``, ``dplocal``) on a converging schedule
(``--config``: ``configs/fl_digits_fedavg.toml`` by default; ``configs/fl_digits_onestep.toml``
uploads one gradient, which every attack applies to), loihi2 so every upload is int8, plus
undefended rows on ``--reference-profiles``, ANN and SNN, with the undefended run as the reference row:
final accuracy, the calibrated noise multiplier and the epsilon spent, and (unless
``--no-attack``) the uploads of ``--capture-clients`` clients in round ``--capture-round`` (1: the
highest leakage) attacked with ``--attack`` (``suite``, gradient matching capped at
``--iterations``) on the evaluation core: worst-case ASR with its 95% interval, each attack's ASR,
the chance floors. Writes ``privacy_utility_dp.{json,md,png}``; runs and attacks under ``--work``
resume.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tomli
import torch

from neurofl.data import load_dataset
from neurofl.federated import fl_config, load_captured
from neurofl.federated.engine import run_local
from neurofl.federated.files import write_bytes, write_json
from neurofl.federated.task import make_task
from neurofl.profiles import load_profile
from neurofl.report import privacy_utility_markdown, with_floor
from neurofl.runs.device import describe, resolve_device

# (label, profile, settings): the profile's upload quantization is itself a defense setting.
SETTINGS = [
    ("none", "float32", {"defense": "none"}),
    ("quantization (loihi2 int8)", "loihi2", {"defense": "none"}),
    ("dp sigma=0.01", "float32", {"defense": "dp", "dp_clip": 1.0, "dp_noise": 0.01}),
    ("dp sigma=0.1", "float32", {"defense": "dp", "dp_clip": 1.0, "dp_noise": 0.1}),
    ("prune keep 10%", "float32", {"defense": "prune", "prune_keep": 0.1}),
    ("secagg k=4", "float32", {"defense": "secagg"}),
]


def attack(
    run_dir: Path,
    model_kind: str,
    attack_name: str,
    iterations: int,
    seed: int,
    updates: Path | None = None,
    out: Path | None = None,
    device: str = "auto",
) -> dict:
    """The captured updates of a run (``updates``, default ``run_dir/updates``), attacked and scored
    on the evaluation core (``neurofl attack --updates``): worst case over the suite, every attack's
    ASR, the same judge as ``evaluate``. The attack's chunks and report go to ``out`` (default
    ``run_dir/attack``), so a rerun resumes."""
    from neurofl.pipelines.attack import AttackConfig, run_attack

    cfg = AttackConfig(recipe=attack_name, model=model_kind, dataset="digits", iterations=iterations, seed=seed,
                       updates=updates or run_dir / "updates", device=device)  # fmt: skip
    return run_attack(cfg, out=out or run_dir / "attack")


CONVERGING = Path(__file__).resolve().parent.parent / "configs" / "fl_digits_fedavg.toml"
CHANCE_KEYS = ("batch_mean", "random_images", "random_images_union")


def grid_settings(epsilons: list[float], extras: list[str], clients: int) -> list[tuple[str, float | None, dict]]:
    """(defense label, target epsilon, settings changed from the converging schedule), in run order:
    the reference row, DP-SGD and DP-FedAvg at each epsilon, then ``extras`` (``prune``: keep 10%
    per tensor; ``secagg`` or ``secaggK``: K clients per round (4 by default), the server sees their
    sum; a K above the schedule's clients splits the same data over K clients; ``dplocal``: each
    client clips and noises its own update, at each epsilon)."""
    rows: list[tuple[str, float | None, dict]] = [("none", None, {})]
    rows += [("dp sample", e, {"defense": "dp", "dp_level": "sample", "dp_epsilon": e}) for e in epsilons]
    rows += [("dp client", e, {"defense": "dp", "dp_level": "client", "dp_epsilon": e}) for e in epsilons]
    for name in extras:
        if name == "prune":
            rows.append(("prune keep 10%", None, {"defense": "prune", "prune_keep": 0.1}))
        elif name == "dplocal":
            rows += [("dp local", e, {"defense": "dp", "dp_level": "local", "dp_epsilon": e}) for e in epsilons]
        elif name.startswith("secagg") and (name[6:] == "" or name[6:].isdigit()):
            k = int(name[6:] or 4)
            if k < 2:
                raise SystemExit(f"--extras: {name}: secure aggregation sums at least 2 clients")
            spread = {"fraction": k / clients} if k <= clients else {"clients": k, "fraction": 1.0}
            rows.append((f"secagg k={k}", None, {"defense": "secagg", **spread}))
        else:
            raise SystemExit(f"--extras: unknown defense {name!r} (prune, secagg, secaggK, dplocal)")
    return rows


def attack_captured(
    run_dir: Path, kind: str, attack_name: str, iterations: int, seed: int, device: str = "auto"
) -> dict:
    """Attack a run's captured updates with ``attack_name`` on the evaluation core, one
    ``neurofl attack --updates`` call per upload batch size (DP-SGD's Poisson sample gives every
    client its own; the core pairs reconstructions with originals within batches of one size), and
    merge: successes add up over the disjoint samples, so the worst case and every attack's ASR keep
    their meaning; their exact 95% intervals are recomputed on the sums. Chance floors (what random
    auxiliary images score through the same pairing and judge) are sample-weighted means, with
    ``random_images_union`` for as many attacks as applied."""
    import shutil

    from neurofl.data import split_dataset
    from neurofl.leakage.scoring import chance_levels, judge_for, worst_case_chance

    # Group the files by batch (DP-SGD's first Poisson sample may even be empty: such an upload has no
    # first-step samples to score against, the core refuses it, and it is counted as skipped).
    by_name: dict[int, list[str]] = {}
    skipped = []
    for path in sorted((run_dir / "updates").glob("round*_*.pt")):
        b = int(torch.load(path, weights_only=True)["batch"])
        if b == 0:
            skipped.append(path.name)
        else:
            by_name.setdefault(b, []).append(path.name)
    if not by_name:
        raise SystemExit(f"{run_dir}: no captured update with samples to score against")
    ds = load_dataset("digits")
    caps, reports, floors, floors_iip = [], [], [], []
    for b, names in sorted(by_name.items()):
        folder = run_dir / f"updates_b{b}"
        folder.mkdir(exist_ok=True)
        for name in names:
            if not (folder / name).is_file():
                shutil.copyfile(run_dir / "updates" / name, folder / name)
        group = load_captured(folder)
        caps += group
        if not reports:
            splits = split_dataset(ds, group[0].seed)
            judge = judge_for(ds, splits, group[0].seed)
            pool = splits.auxiliary.private().x
        rep = attack(run_dir, kind, attack_name, iterations, seed, updates=folder, out=run_dir / f"attack_b{b}",
                     device=device)  # fmt: skip
        row = rep["results"][0]
        applied = sum(v["applicable"] for v in row["per_attack"].values())
        x = torch.cat([c.true_inputs for c in group]).numpy()
        y = torch.cat([c.true_labels for c in group]).numpy()
        index = np.full(len(y), -1)
        for measure, into in (("label", floors), ("pixel", floors_iip)):
            lv = chance_levels(judge, x, y, index, b, pool, seed, measure)
            union = worst_case_chance(judge, x, y, index, b, pool, seed, applied, measure) if applied > 1 else None
            lv["random_images_union"] = union  # the worst case's floor over the attacks that applied
            into.append((len(y), lv))
        reports.append(row)
    n = sum(r["samples"] for r in reports)
    names = list(reports[0]["per_attack"])
    per_attack = {}
    for name in names:
        parts = [r["per_attack"][name] for r in reports]
        if not all(p["applicable"] for p in parts):
            per_attack[name] = {"applicable": False, "reason": next(p["reason"] for p in parts if not p["applicable"])}
            continue
        per_attack[name] = {"applicable": True, **_summed(parts, n)}
    applied = [k for k, v in per_attack.items() if v["applicable"]]
    if applied:
        worst = _summed(reports, n)
        ps = [(r["samples"], r["psnr"]) for r in reports if r["psnr"] is not None]
        worst["psnr"] = sum(k * p for k, p in ps) / sum(k for k, _ in ps) if ps else None
    else:  # no attack of the suite applies to what this server sees: no number, a reason
        worst = {"asr": None, "asr_ci95": [None, None], "asr_successes": None, "iip": None, "iip_ci95": [None, None],
                 "iip_successes": None, "psnr": None}  # fmt: skip
    chance = {"uniform": judge.chance, **_weighted(floors, CHANCE_KEYS + ("class_mean", "label_image"))}
    chance_iip = _weighted(floors_iip, ("exact",) + CHANCE_KEYS + ("class_mean", "label_image"))
    return {
        **worst,
        "per_attack": per_attack,
        "applicable_attacks": applied,
        "samples": n,
        "updates_attacked": len(caps),
        "samples_per_update": [c.batch for c in sorted(caps, key=lambda c: (c.round, c.client))],
        "skipped_empty_batch": skipped,
        "attacked_round": sorted({c.round for c in caps}),
        "update_kind": caps[0].kind,
        "local_steps": caps[0].local_steps,
        "chance": judge.chance,
        "chance_empirical": chance,
        "chance_identification": chance_iip,
    }


def _summed(parts: list[dict], n: int) -> dict:
    """Successes added over disjoint samples, for both judges, with exact intervals on the sums
    (identification None where a part did not measure it)."""
    from neurofl.leakage.metrics import Rate

    out: dict = {}
    for key in ("asr", "iip"):
        got = [p.get(f"{key}_successes") for p in parts]
        if any(g is None for g in got):
            out.update({key: None, f"{key}_ci95": [None, None], f"{key}_successes": None})
            continue
        rate = Rate(sum(got), n)
        out.update({key: rate.value, f"{key}_ci95": list(rate.ci95), f"{key}_successes": rate.successes})
    return out


def _weighted(floors: list[tuple[int, dict]], keys: tuple[str, ...]) -> dict:
    """Sample-weighted means of chance levels over batch-size groups (None where no group has one)."""
    out = {}
    for key in keys:
        vals = [(k, lv.get(key)) for k, lv in floors if lv.get(key) is not None]
        out[key] = sum(k * v for k, v in vals) / sum(k for k, _ in vals) if vals else None
    return out


def what_is_attacked(label: str, profile: str) -> str:
    """What the server attacks in a row of the grid, in words."""
    upload = "int8" if profile != "float32" else "float32, unquantized"
    if label.startswith("secagg"):
        k = label.split("=")[1]
        return f"the round's aggregate over the {k} clients (the server's only view), as one batch of {k} x batch"
    return {
        "none": f"each captured client's upload (FedAvg delta of the local steps, {upload})",
        "dp sample": "each captured client's DP-SGD upload (clipped per sample, noised on the device)",
        "dp client": "each captured client's clipped upload: DP-FedAvg adds its noise at the server, "
                     "so the server itself sees the uploads without noise",
        "dp local": "each captured client's upload, clipped and noised on the device (local DP)",
        "prune keep 10%": "each captured client's pruned upload",
    }[label]  # fmt: skip


def capture_digest(folder: Path) -> str:
    """SHA-256 of what an attack reads from a run's captured updates (every field but ``run``, the
    digest of the run's settings): two runs whose servers received the same uploads from the same
    global model get the same value, e.g. DP-FedAvg at any epsilon in round 1, whose noise is added
    after the server has the clipped uploads."""
    from neurofl.runs.identity import arrays_digest, table_digest

    files = []
    for path in sorted(folder.glob("round*_*.pt")):
        tensors, plain = {}, {}
        for key, v in torch.load(path, weights_only=True).items():
            if isinstance(v, torch.Tensor):
                tensors[key] = v
            elif isinstance(v, dict) and any(isinstance(t, torch.Tensor) for t in v.values()):
                tensors.update({f"{key}.{name}": t for name, t in v.items()})
            elif key != "run":
                plain[key] = v
        names = sorted(tensors)
        files.append([path.name, plain, names, arrays_digest(*(tensors[n].cpu().numpy() for n in names))])
    return table_digest(files)


def dp_grid(
    out: Path,
    epsilons: list[float],
    delta: float,
    *,
    config: Path = CONVERGING,
    models: tuple[str, ...] = ("ann", "snn"),
    attack_name: str | None = "suite",
    iterations: int = 300,
    capture_round: int = 1,
    capture_clients: int = 3,
    extras: tuple[str, ...] = (),
    reference_profiles: tuple[str, ...] = (),
    work: Path | None = None,
    seed: int | None = None,
    overrides: dict | None = None,
    tag: str = "",
    device: str = "auto",
) -> list[dict]:
    """DP (and ``extras``) on the converging schedule ``config``: final accuracy, the calibrated noise
    multiplier and the epsilon spent; with ``attack_name``, the uploads of ``capture_clients``
    clients in round ``capture_round`` captured and attacked on the evaluation core (worst-case
    ASR with its 95% interval, each attack's ASR, the chance floors). Every setting runs on loihi2
    (its int8 upload is part of every row); ``reference_profiles`` add an undefended row per model on
    each (float32: no quantization at all). Rows whose servers received the same uploads (same
    :func:`capture_digest`) share one attack. ``overrides``: settings
    replacing the config's (validated with it). Writes ``privacy_utility_dp{tag}.{json,md}`` (after
    every row; runs and attacks under ``work`` resume) and, with attacks,
    ``privacy_utility_dp{tag}.png``. ``device``: where training and attacks compute (recorded).
    Returns the rows."""
    dev = resolve_device(device)
    from dataclasses import replace

    from neurofl.config import read_toml

    base = fl_config({**read_toml(config), **(overrides or {})}, config)
    if seed is not None:
        base = replace(base, seed=seed)
    if attack_name is not None:
        base = replace(base, capture_rounds=(capture_round,), capture_clients=capture_clients)
    work = work if work is not None else out / "runs_dp"
    ds = load_dataset("digits")
    settings = grid_settings(epsilons, list(extras), base.clients)
    # The DP grid first for both models, then the extras, then the other profiles' undefended rows
    # (each row is written as soon as it is done).
    core = 1 + 2 * len(epsilons)
    order = [(k, "loihi2", s) for k in models for s in settings[:core]]
    order += [(k, "loihi2", s) for k in models for s in settings[core:]]
    order += [(k, p, settings[0]) for k in models for p in reference_profiles if p != "loihi2"]
    try:
        where = str(config.resolve().relative_to(CONVERGING.parent.parent))
    except ValueError:
        where = str(config)
    meta = {
        "config": where,
        "overrides": overrides or {},
        "settings": {k: v for k, v in vars(base).items() if k not in ("capture_rounds", "capture_clients")},
        "profile": "loihi2",
        "reference_profiles": [p for p in reference_profiles if p != "loihi2"],
        "dataset": "digits",
        "delta": delta,
        "torch_threads": torch.get_num_threads(),
        **describe(dev),
        "attack": None if attack_name is None else {
            "suite": attack_name, "iterations": iterations, "attacked_round": capture_round,
            "capture_clients": capture_clients, "seed": base.seed,
            "scored": "neurofl attack --updates (evaluation core): oracle judge, best assignment within a batch, "
                      "worst case per sample over the attacks that apply",
            "ground_truth": "the samples of each captured client's first local step "
                            f"(its update holds {base.local_steps})",
        },  # fmt: skip
    }
    rows: list[dict] = []
    attacked: dict[str, tuple[str, dict]] = {}  # capture digest -> (run folder, attack result)
    for kind, profile_name, (label, eps, change) in order:
        t0 = time.perf_counter()
        cfg = replace(base, **change, **({"dp_delta": delta} if eps is not None else {}))
        slug = f"{kind}-{label.replace(' ', '_').replace('%', '').replace('=', '')}" + (f"-eps{eps:g}" if eps else "")
        slug += "" if profile_name == "loihi2" else f"-{profile_name}"
        task = make_task(ds, kind, load_profile(profile_name), cfg, device=dev)
        res = run_local(task, work / slug if attack_name is not None else None)
        last = res.rows[-1]
        row: dict = {
            "model": kind,
            "profile": profile_name,
            "defense": label,
            "target_epsilon": eps,
            "noise_multiplier": task.cfg.dp_noise if cfg.defense == "dp" else None,
            "epsilon": last.get("epsilon"),
            "delta": delta if cfg.defense == "dp" else None,
            "dp_unit": last.get("dp_unit"),
            "clients_per_round": cfg.per_round,
            "final_accuracy": last["accuracy"],
            "best_accuracy": max(r["accuracy"] for r in res.rows),
            "seconds_train": time.perf_counter() - t0,
        }
        if attack_name is not None:
            t1 = time.perf_counter()
            row["attacked"] = what_is_attacked(label, profile_name)
            digest = capture_digest(work / slug / "updates")
            if digest in attacked:  # the same uploads as an earlier row: the same attack, not rerun
                row["attack_reused_from"], result = attacked[digest]
            else:
                result = attack_captured(work / slug, kind, attack_name, iterations, cfg.seed, str(dev))
                attacked[digest] = (slug, result)
            row.update(result)
            row["seconds_attack"] = time.perf_counter() - t1
            row = with_floor(row)
        print(json.dumps({k: v for k, v in row.items() if k != "per_attack"}), flush=True)
        rows.append(row)
        write_json(out / f"privacy_utility_dp{tag}.json", {**meta, "results": rows})
        md = privacy_utility_markdown(rows, attack_name is not None)
        write_bytes(out / f"privacy_utility_dp{tag}.md", md.encode())
    if attack_name is not None:
        pareto(rows, out / f"privacy_utility_dp{tag}.png")
    return rows


def _legend(r: dict) -> str:
    """A row's name in the plot: defense, epsilon and, off loihi2, the profile."""
    lab = r["defense"] + (f" ε={r['target_epsilon']:g}" if r["target_epsilon"] else "")
    return lab + ("" if r.get("profile", "loihi2") == "loihi2" else f" ({r['profile']})")


def pareto(rows: list[dict], path: Path) -> None:
    """Worst-case ASR (95% interval) against final accuracy, one marker per defense, ANN and SNN
    side by side, with uniform chance and each row's random-image floor (a black bar)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(_legend(r) for r in rows))
    shapes = "o^sDvP*Xh<>pd1234"
    markers = {lab: shapes[i % len(shapes)] for i, lab in enumerate(labels)}
    kinds = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4.6), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        sel = [r for r in rows if r["model"] == kind and r.get("asr") is not None]
        for r in sel:
            lab = _legend(r)
            lo, hi = r["asr_ci95"]
            ax.errorbar(r["final_accuracy"], r["asr"], yerr=[[r["asr"] - lo], [hi - r["asr"]]], fmt=markers[lab],
                        capsize=3, label=lab)  # fmt: skip
        if sel:
            ax.axhline(sel[0]["chance"], color="gray", ls="--", lw=0.8, label="chance (uniform)")
            ax.scatter([r["final_accuracy"] for r in sel], [with_floor(r)["floor"] for r in sel], marker="_", s=400,
                       color="black", lw=1.5, label="floor: random images (union)")  # fmt: skip
        ax.set_title(f"{kind.upper()} (digits; loihi2 unless named)")
        ax.set_xlabel("final test accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    axes[0][0].set_ylabel("worst-case ASR (95% CI)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=5, fontsize=7)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dp-grid", action="store_true", help="DP at target epsilons on the converging schedule.")
    ap.add_argument("--epsilons", default="1,4,8", help="--dp-grid: target epsilons ('' none).")
    ap.add_argument("--delta", type=float, default=1e-5, help="--dp-grid: delta.")
    ap.add_argument("--no-attack", action="store_true", help="--dp-grid: accuracy and epsilon only.")
    ap.add_argument("--capture-clients", type=int, default=3, help="--dp-grid: clients captured and attacked.")
    ap.add_argument("--capture-round", type=int, default=1, help="--dp-grid: the round attacked.")
    ap.add_argument("--models", default="ann,snn", help="--dp-grid: model kinds.")
    ap.add_argument("--extras", default="prune,secagg",
                    help="--dp-grid: other defenses (prune; secagg = secagg4, secaggK: K clients summed; dplocal: "
                         "clients noise their own updates, at each epsilon; '' none).")
    ap.add_argument("--reference-profiles", default="",
                    help="--dp-grid: profiles (e.g. float32,loihi1) that get an undefended row beside loihi2's.")
    ap.add_argument("--config", type=Path, default=CONVERGING, help="--dp-grid: the FL schedule (TOML).")
    ap.add_argument("--work", type=Path, default=Path("runs/privacy_utility_dp"), help="--dp-grid: run folders.")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="--dp-grid: replace a setting of --config (TOML value), e.g. --set local_steps=1.")
    ap.add_argument("--tag", default="", help="--dp-grid: suffix of the output files' names.")
    ap.add_argument("--out", type=Path, default=Path("results/privacy_utility"))
    ap.add_argument("--rounds", type=int, default=20, help="Rounds (not --dp-grid: its config has them).")
    ap.add_argument("--iterations", type=int, default=300, help="Gradient-matching iterations.")
    ap.add_argument("--attack", default="suite", help="Attack suite or recipe (scored on the core).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N.")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dev = resolve_device(args.device)
    if args.dp_grid:
        dp_grid(
            args.out, [float(e) for e in args.epsilons.split(",") if e], args.delta, config=args.config,
            models=tuple(args.models.split(",")), attack_name=None if args.no_attack else args.attack,
            iterations=args.iterations, capture_round=args.capture_round, capture_clients=args.capture_clients,
            extras=tuple(e for e in args.extras.split(",") if e), work=args.work, seed=args.seed,
            reference_profiles=tuple(p for p in args.reference_profiles.split(",") if p),
            overrides={k: v for kv in args.set for k, v in tomli.loads(kv.replace("=", " = ", 1)).items()},
            tag=args.tag, device=str(dev),
        )  # fmt: skip
        return
    # The server's FedSGD step: 0.5 trains the ANN; the SNN's spike-count logits diverge above ~0.05.
    FEDSGD_LR = {"ann": 0.5, "snn": 0.03}  # noqa: N806
    ds = load_dataset("digits")
    rows = []
    for model_kind in ("ann", "snn"):
        for label, profile, extra in SETTINGS:
            t0 = time.perf_counter()
            run_dir = (
                args.out / "runs" / f"{model_kind}-{label.split()[0]}-{profile}-{extra.get('dp_noise', '')}"
            )
            cfg = fl_config(
                {
                    "clients": 40,
                    "rounds": args.rounds,
                    "fraction": 0.1,
                    "strategy": "fedsgd",
                    "batch": 1,
                    "lr": FEDSGD_LR[model_kind],
                    "capture_rounds": [1, args.rounds],
                    "capture_clients": 4,
                    "seed": args.seed,
                    **extra,
                }
            )
            res = run_local(make_task(ds, model_kind, load_profile(profile), cfg, device=dev), run_dir)
            items = load_captured(run_dir / "updates")
            report = attack(run_dir, model_kind, args.attack, args.iterations, args.seed, device=str(dev))
            scored = report["results"][0]
            row = {
                "model": model_kind,
                "defense": label,
                "profile": profile,
                "final_accuracy": res.rows[-1]["accuracy"],
                "asr": scored["asr"],
                "asr_ci95": scored["asr_ci95"],
                "per_attack": {k: v.get("asr") for k, v in scored["per_attack"].items() if v["applicable"]},
                "samples": scored["samples"],
                "updates_attacked": len(items),
                "samples_per_update": items[0].batch,
                "psnr": scored["psnr"],
                "epsilon": res.rows[-1].get("epsilon"),
                "seconds": time.perf_counter() - t0,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {
        "dataset": "digits",
        "chance": 0.1,
        "rounds": args.rounds,
        "clients": 40,
        "per_round": 4,
        "attack": f"{args.attack} (worst case per sample), gradient matching {args.iterations} iterations",
        "seed": args.seed,
        **describe(dev),
        "results": rows,
    }
    write_json(args.out / "privacy_utility.json", result)
    md = [
        "| model | defense | profile | final accuracy | worst-case ASR [95% CI] (chance 0.10) | samples | PSNR dB "
        "| epsilon |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        eps = "" if r["epsilon"] is None else f"{r['epsilon']:.3g}"
        md.append(
            f"| {r['model']} | {r['defense']} | {r['profile']} | {r['final_accuracy']:.3f} | {r['asr']:.2f} "
            f"[{r['asr_ci95'][0]:.2f}, {r['asr_ci95'][1]:.2f}] | {r['samples']} | "
            f"{'–' if r['psnr'] is None else format(r['psnr'], '.1f')} | {eps} |"
        )
    write_bytes(args.out / "privacy_utility.md", ("\n".join(md) + "\n").encode())
    plot(rows, args.out / "privacy_utility.png")


def plot(rows: list[dict], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, marker in (("ann", "o"), ("snn", "s")):
        sel = [r for r in rows if r["model"] == kind]
        ax.scatter(
            [r["final_accuracy"] for r in sel], [r["asr"] for r in sel], marker=marker, label=kind.upper()
        )
        for r in sel:
            ax.annotate(r["defense"], (r["final_accuracy"], r["asr"]), fontsize=6)
    ax.axhline(0.1, color="gray", ls="--", lw=0.8, label="chance")
    ax.set_xlabel("final global test accuracy")
    ax.set_ylabel("attack success rate")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buf.getvalue())
    _ = np


if __name__ == "__main__":
    main()
