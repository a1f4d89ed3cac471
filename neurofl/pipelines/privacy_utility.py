"""`neurofl privacy-utility`: privacy vs utility of each defense, ANN vs SNN, on real federated
training of digits.

For every (model, defense setting) of a grid (:mod:`neurofl.pipelines.defense_grid`): train with
``neurofl fl``'s in-process engine, capture the uploads of some clients and attack them with
``neurofl attack --updates`` (:func:`neurofl.pipelines.attack.run_attack`): the same judge,
pairing, worst case, chance levels and floors as ``evaluate``, captures of several batch sizes
(DP-SGD's Poisson sampling) scored together. Every run and attack lives in a folder of its own and
is identified by its content, so a rerun resumes.

Two grids: the DP grid (``dp_grid``) on a converging schedule (``privacy_utility_dp{tag}.*``) and
the fixed FedSGD grid (``privacy_utility.*``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from neurofl.errors import UserError
from neurofl.report import near_floor, write_json
from neurofl.shipped import resolve_toml, shipped_dir

if TYPE_CHECKING:
    from neurofl.models.arch import ModelKind

CONVERGING = Path("fl_digits_fedavg")  # a shipped schedule (neurofl/shipped/configs)
DATASET = "digits"

RowFn = Callable[[dict[str, Any]], None]  # called with each finished row


@dataclass(frozen=True)
class PrivacyUtilityConfig:
    """Everything ``neurofl privacy-utility`` is asked (the options of the command, same defaults).

    dp_grid : the DP grid on ``config`` (else the fixed FedSGD grid of ``rounds`` rounds)
    epsilons, delta : the DP grid's target epsilons and delta
    attack : the recipe or suite attacking the captures (None: accuracy and epsilon only; DP grid)
    iterations : gradient matching's iterations
    capture_round, capture_clients : the DP grid's attacked round and clients captured in it
    models : the DP grid's model kinds
    extras : the DP grid's other defenses (:func:`neurofl.pipelines.defense_grid.dp_grid_settings`)
    reference_profiles : profiles with an undefended row beside loihi2's (DP grid)
    config, overrides : the DP grid's FL schedule (TOML) and settings replacing its own
    work : the DP grid's run folders (default ``out/runs_dp``); the fixed grid's are ``out/runs``
    tag : suffix of the DP grid's output files' names
    """

    out: Path = Path("results/privacy_utility")
    dp_grid: bool = False
    epsilons: tuple[float, ...] = (1.0, 4.0, 8.0)
    delta: float = 1e-5
    attack: str | None = "suite"
    iterations: int = 300
    capture_round: int = 1
    capture_clients: int = 3
    models: tuple[str, ...] = ("ann", "snn")
    extras: tuple[str, ...] = ("prune", "secagg")
    reference_profiles: tuple[str, ...] = ()
    config: Path = CONVERGING
    overrides: dict[str, Any] = field(default_factory=dict)
    work: Path | None = None
    tag: str = ""
    rounds: int = 20
    seed: int = 0
    device: str = "auto"


def run_privacy_utility(cfg: PrivacyUtilityConfig, on_row: RowFn | None = None) -> list[dict[str, Any]]:
    """Run the grid ``cfg`` asks for and write its JSON, Markdown and plot under ``cfg.out``.
    Returns the rows."""
    for kind in cfg.models:
        if kind not in ("ann", "snn"):
            raise UserError(f"--models: {kind!r} is not a model kind (ann, snn)")
    if not cfg.models:
        raise UserError("--models: give at least one of ann, snn")
    return run_dp_grid(cfg, on_row) if cfg.dp_grid else run_fixed_grid(cfg, on_row)


def attack_captures(
    run_dir: Path, kind: str, attack: str, iterations: int, seed: int, device: str = "auto"
) -> dict[str, Any]:
    """A run's captured uploads (``run_dir/updates``) attacked and scored on the evaluation core
    (``neurofl attack --updates``, its folder ``run_dir/attack``, so a rerun resumes): a grid row's
    leakage entries, each taken from the core's report as it is.

    Returns the worst case (identified and ASR with successes and exact 95% intervals, PSNR), every
    attack's entry (``per_attack``, with its verdict marks), the chance levels of both judges, the
    worst case's floors (``chance_worst_case``, ``chance_worst_case_iip``, also as ``floor``,
    ``floor_iip``) and whether the worst case's interval lies above them (``beyond_floor``,
    ``beyond_floor_iip``; None where there is no worst case), and what was attacked."""
    from neurofl.federated import load_captured
    from neurofl.pipelines.attack import AttackConfig, run_attack

    cfg = AttackConfig(recipe=attack, model=cast("ModelKind", kind), dataset=DATASET, iterations=iterations,
                       seed=seed, updates=run_dir / "updates", device=device)  # fmt: skip
    report = run_attack(cfg, out=run_dir / "attack")
    caps = load_captured(run_dir / "updates")
    row = report["results"][0]
    worst = {key: row.get(key) for key in ("asr", "asr_ci95", "asr_successes", "iip", "iip_ci95", "iip_successes",
                                           "psnr")}  # fmt: skip
    for key in ("asr_ci95", "iip_ci95"):
        worst[key] = worst[key] if worst[key] is not None else [None, None]
    return {
        **worst,
        "per_attack": row["per_attack"],
        "applicable_attacks": [k for k, v in row["per_attack"].items() if v["applicable"]],
        "samples": row["samples"],
        "updates_attacked": len(caps),
        "samples_per_update": [c.batch for c in caps],
        "attacked_round": sorted({c.round for c in caps}),
        "update_kind": caps[0].kind,
        "local_steps": caps[0].local_steps,
        "chance": report["chance"],
        "chance_empirical": report["chance_empirical"],
        "chance_identification": report["identification"]["chance"],
        "chance_worst_case": row["chance_worst_case"],
        "chance_worst_case_iip": row["chance_worst_case_iip"],
        "floor": row["chance_worst_case"],
        "beyond_floor": _beyond(row, "asr"),
        "floor_iip": row["chance_worst_case_iip"],
        "beyond_floor_iip": _beyond(row, "iip"),
    }


def _beyond(row: dict[str, Any], measure: str) -> bool | None:
    """Whether the worst case's 95% interval lies above its floor (:func:`neurofl.report.near_floor`);
    None without a worst case or a floor."""
    floor = row.get("chance_worst_case" if measure == "asr" else "chance_worst_case_iip")
    if row.get(measure) is None or floor is None:
        return None
    return not near_floor(row, measure)


def _where(config: Path) -> str:
    """``config`` as the report names it: a shipped schedule by its name, a user's file relative to
    the working folder where it lies below it."""
    if config.parent == shipped_dir("fl_configs"):
        return config.stem
    try:
        return str(config.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(config)


def run_dp_grid(cfg: PrivacyUtilityConfig, on_row: RowFn | None = None) -> list[dict[str, Any]]:
    """DP (and ``cfg.extras``) on the converging schedule ``cfg.config``: final accuracy, the
    calibrated noise multiplier and the epsilon spent; with ``cfg.attack``, the uploads of
    ``capture_clients`` clients in round ``capture_round`` captured and attacked on the evaluation
    core (:func:`attack_captures`). Every setting runs on loihi2 (its int8 upload is part of every
    row); ``reference_profiles`` add an undefended row per model on each (float32: no quantization
    at all). Rows whose servers received the same uploads (same
    :func:`neurofl.federated.capture.capture_digest`) share one attack. Writes
    ``privacy_utility_dp{tag}.{json,md}`` after every row (runs and attacks under ``work`` resume)
    and, with attacks, ``privacy_utility_dp{tag}.png``. Returns the rows."""
    import torch

    from neurofl.config import read_toml
    from neurofl.data import load_dataset
    from neurofl.federated import fl_config
    from neurofl.federated.capture import capture_digest
    from neurofl.federated.engine import run_local
    from neurofl.federated.task import make_task
    from neurofl.io.atomic import atomic_write_bytes
    from neurofl.pipelines.defense_grid import dp_grid_settings, slug, what_is_attacked
    from neurofl.pipelines.privacy_utility_render import pareto_png, privacy_utility_markdown
    from neurofl.profiles import load_profile
    from neurofl.runs.device import describe, resolve_device

    dev = resolve_device(cfg.device)
    config = resolve_toml("fl_configs", cfg.config, "FL schedule")
    base = replace(fl_config({**read_toml(config), **cfg.overrides}, config), seed=cfg.seed)
    attack = cfg.attack
    if attack is not None:
        base = replace(base, capture_rounds=(cfg.capture_round,), capture_clients=cfg.capture_clients)
    work = cfg.work if cfg.work is not None else cfg.out / "runs_dp"
    ds = load_dataset(DATASET)
    settings = dp_grid_settings(list(cfg.epsilons), list(cfg.extras), base.clients)
    # The DP grid first for both models, then the extras, then the other profiles' undefended rows
    # (each row is written as soon as it is done).
    core = 1 + 2 * len(cfg.epsilons)
    order = [(k, "loihi2", s) for k in cfg.models for s in settings[:core]]
    order += [(k, "loihi2", s) for k in cfg.models for s in settings[core:]]
    order += [(k, p, settings[0]) for k in cfg.models for p in cfg.reference_profiles if p != "loihi2"]
    meta = {
        "config": _where(config),
        "overrides": cfg.overrides,
        "settings": {k: v for k, v in vars(base).items() if k not in ("capture_rounds", "capture_clients")},
        "profile": "loihi2",
        "reference_profiles": [p for p in cfg.reference_profiles if p != "loihi2"],
        "dataset": DATASET,
        "delta": cfg.delta,
        "torch_threads": torch.get_num_threads(),
        **describe(dev),
        "attack": None if attack is None else {
            "suite": attack, "iterations": cfg.iterations, "attacked_round": cfg.capture_round,
            "capture_clients": cfg.capture_clients, "seed": base.seed,
            "scored": "neurofl attack --updates (evaluation core): sample-level identification and the oracle "
                      "judge, best assignment within a batch, worst case per sample over the attacks that apply, "
                      "the core's chance levels and floors",
            "ground_truth": "the samples each captured update was computed on: every local step's, in step "
                            f"order (its update holds {base.local_steps}), or under DP-SGD the first step's Poisson "
                            "sample; a secure aggregate's: its clients' together",
        },  # fmt: skip
    }
    stem = cfg.out / f"privacy_utility_dp{cfg.tag}"
    rows: list[dict[str, Any]] = []
    attacked: dict[str, tuple[str, dict[str, Any]]] = {}  # capture digest -> (run folder, attack result)
    for kind, profile_name, (label, eps, change) in order:
        t0 = time.perf_counter()
        changed: dict[str, Any] = {**change, **({"dp_delta": cfg.delta} if eps is not None else {})}
        fl = replace(base, **changed)
        name = slug(kind, label, eps, profile_name)
        task = make_task(ds, cast("ModelKind", kind), load_profile(profile_name), fl, device=dev)
        res = run_local(task, work / name if attack is not None else None)
        last = res.rows[-1]
        row: dict[str, Any] = {
            "model": kind,
            "profile": profile_name,
            "defense": label,
            "target_epsilon": eps,
            "noise_multiplier": task.cfg.dp_noise if fl.defense == "dp" else None,
            "epsilon": last.get("epsilon"),
            "delta": cfg.delta if fl.defense == "dp" else None,
            "dp_unit": last.get("dp_unit"),
            "clients_per_round": fl.per_round,
            "final_accuracy": last["accuracy"],
            "best_accuracy": max(r["accuracy"] for r in res.rows),
            "seconds_train": time.perf_counter() - t0,
        }
        if attack is not None:
            t1 = time.perf_counter()
            row["attacked"] = what_is_attacked(label, profile_name)
            digest = capture_digest(work / name / "updates")
            if digest in attacked:  # the same uploads as an earlier row: the same attack, not rerun
                row["attack_reused_from"], result = attacked[digest]
            else:
                result = attack_captures(work / name, kind, attack, cfg.iterations, fl.seed, str(dev))
                attacked[digest] = (name, result)
            row.update(result)
            row["seconds_attack"] = time.perf_counter() - t1
        if on_row is not None:
            on_row(row)
        rows.append(row)
        write_json(stem.with_suffix(".json"), {**meta, "results": rows})
        atomic_write_bytes(stem.with_suffix(".md"), privacy_utility_markdown(rows, attack is not None).encode())
    if attack is not None:
        pareto_png(rows, stem.with_suffix(".png"))
    return rows


def run_fixed_grid(cfg: PrivacyUtilityConfig, on_row: RowFn | None = None) -> list[dict[str, Any]]:
    """The fixed grid: FedSGD at batch 1 on 40 digits clients, 4 per round, ``cfg.rounds`` rounds,
    each defense of :data:`neurofl.pipelines.defense_grid.FIXED_SETTINGS` for the ANN and the SNN;
    the uploads of 4 clients in the first and the last round attacked on the evaluation core
    (:func:`attack_captures`; runs under ``out/runs`` resume). Writes
    ``privacy_utility.{json,md,png}``. Returns the rows."""
    from neurofl.data import load_dataset
    from neurofl.federated import fl_config
    from neurofl.federated.engine import run_local
    from neurofl.federated.task import make_task
    from neurofl.io.atomic import atomic_write_bytes
    from neurofl.pipelines.defense_grid import FEDSGD_LR, FIXED_SETTINGS
    from neurofl.pipelines.privacy_utility_render import fixed_grid_markdown, fixed_grid_png
    from neurofl.profiles import load_profile
    from neurofl.runs.device import describe, resolve_device

    if cfg.attack is None:
        raise UserError("--no-attack applies to --dp-grid only")
    dev = resolve_device(cfg.device)
    ds = load_dataset(DATASET)
    rows: list[dict[str, Any]] = []
    chance = None
    for kind in ("ann", "snn"):
        for label, profile, extra in FIXED_SETTINGS:
            t0 = time.perf_counter()
            run_dir = cfg.out / "runs" / f"{kind}-{label.split()[0]}-{profile}-{extra.get('dp_noise', '')}"
            fl = fl_config({"clients": 40, "rounds": cfg.rounds, "fraction": 0.1, "strategy": "fedsgd", "batch": 1,
                            "lr": FEDSGD_LR[kind], "capture_rounds": [1, cfg.rounds], "capture_clients": 4,
                            "seed": cfg.seed, **extra})  # fmt: skip
            res = run_local(make_task(ds, kind, load_profile(profile), fl, device=dev), run_dir)
            scored = attack_captures(run_dir, kind, cfg.attack, cfg.iterations, cfg.seed, str(dev))
            chance = scored["chance"]
            row = {
                "model": kind,
                "defense": label,
                "profile": profile,
                "final_accuracy": res.rows[-1]["accuracy"],
                **{k: scored[k] for k in ("iip", "iip_ci95", "asr", "asr_ci95")},
                "per_attack": {k: {"iip": v.get("iip"), "asr": v.get("asr")}
                               for k, v in scored["per_attack"].items() if v["applicable"]},  # fmt: skip
                **{k: scored[k] for k in ("samples", "updates_attacked", "samples_per_update", "psnr", "floor",
                                          "beyond_floor", "floor_iip", "beyond_floor_iip")},  # fmt: skip
                "epsilon": res.rows[-1].get("epsilon"),
                "seconds": time.perf_counter() - t0,
            }
            if on_row is not None:
                on_row(row)
            rows.append(row)
    assert chance is not None  # the grid has rows
    result = {
        "dataset": DATASET,
        "chance": chance,
        "rounds": cfg.rounds,
        "clients": 40,
        "per_round": 4,
        "attack": f"{cfg.attack} (worst case per sample), gradient matching {cfg.iterations} iterations",
        "seed": cfg.seed,
        **describe(dev),
        "results": rows,
    }
    write_json(cfg.out / "privacy_utility.json", result)
    atomic_write_bytes(cfg.out / "privacy_utility.md", fixed_grid_markdown(rows, chance).encode())
    fixed_grid_png(rows, chance, cfg.out / "privacy_utility.png")
    return rows
