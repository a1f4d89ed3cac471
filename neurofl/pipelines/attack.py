"""`neurofl attack`: one model under one profile, one recipe or suite, on fresh or captured updates.

Fresh updates come from the same victims and the same update computation as ``evaluate``
(:mod:`neurofl.leakage.victims`); captured ones from a federated run (``neurofl fl --capture-rounds``),
each group (round, device profile, client settings) attacked on its own global model. Either way
the attack runs and is scored on the evaluation core (:mod:`neurofl.leakage.rows`, :mod:`neurofl.leakage.scoring`),
with chunks kept under ``--out`` so a rerun resumes. Captures of several batch sizes (DP-SGD's
Poisson sampling) make one report: each size is paired and judged on its own, the per-sample
scores are concatenated (smallest size first) and every rate, interval and chance level is taken
over the concatenation (:func:`neurofl.leakage.rows.score_batches`,
:func:`neurofl.leakage.scoring.judge_batches`).

Fresh updates are computed on a model built from the seed, or on a checkpoint's model as it is
(``checkpoint``, :mod:`neurofl.models.model_file`: its kind, topology and profile; the run's identity holds
the file's digest).
"""

from __future__ import annotations

import dataclasses
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurofl import __version__
from neurofl.attacks.fedavg import minibatch_problem
from neurofl.attacks.recipe import Recipe, check_auxiliary, load_attack
from neurofl.attacks.target import Target
from neurofl.data import load_dataset, split_dataset
from neurofl.errors import UserError
from neurofl.io.atomic import atomic_write_bytes
from neurofl.leakage.rows import ProgressFn, RecipeResult, RowStore, attack_row, score_batches
from neurofl.leakage.scoring import Samples, judge_batches, judge_for
from neurofl.leakage.victims import Victims, draw_victims, shared_updates
from neurofl.models import architecture_for, build_model
from neurofl.models.arch import ModelKind
from neurofl.models.model_file import ModelFile, check_arch_option, open_model_file
from neurofl.profiles import load_profile
from neurofl.report import reconstructions_png, write_json
from neurofl.runs.device import describe, identity_entry, resolve_device
from neurofl.runs.identity import SEED_MAX, config_identity, dataset_identity, keyed, table_digest
from neurofl.runs.runfolder import RunFolder


@dataclass(frozen=True)
class AttackConfig:
    """Everything that determines an attack run's result (with the content of its inputs)."""

    recipe: str
    model: ModelKind = "snn"  # the kind built from the seed; with ``checkpoint``, the checkpoint's
    profile: str | None = "loihi2"  # None: the checkpoint's (with ``checkpoint``), else loihi2
    dataset: str | None = "digits"  # None: the checkpoint's (with ``checkpoint``), else digits
    victims: int = 8
    batch_size: int = 1
    clients: int = 8
    local_steps: int = 1
    local_lr: float = 0.1
    minibatch: int | None = None  # samples per local step (None: the whole batch every step)
    arch: str = "auto"  # mlp | conv | auto (neurofl.models.architecture_for)
    seed: int = 0
    iterations: int | None = None  # overrides every gradient-matching recipe's
    updates: Path | None = None
    data_dir: Path | None = None
    checkpoint: Path | None = None  # attack this neurofl checkpoint's model as it is
    device: str = "auto"  # auto | cpu | cuda[:N] (neurofl.runs.device); the run records the resolved kind


@dataclass(frozen=True)
class Group:
    """Updates attacked together (one global model) with the private truth to score them by."""

    key: str
    target: Target
    victims: Victims


def _validate(cfg: AttackConfig) -> None:
    for flag, value, hi in (("--victims", cfg.victims, 100_000), ("--batch-size", cfg.batch_size, 4096),
                            ("--clients", cfg.clients, 100_000), ("--local-steps", cfg.local_steps, 1000)):
        if not (1 <= value <= hi):
            raise UserError(f"{flag} must be in 1..{hi}, got {value}")
    if not (0 <= cfg.seed <= SEED_MAX):
        raise UserError(f"--seed must be in 0..{SEED_MAX}, got {cfg.seed}")
    if cfg.iterations is not None and not (1 <= cfg.iterations <= 1_000_000):
        raise UserError(f"--iterations must be in 1..1000000, got {cfg.iterations}")
    why = minibatch_problem(cfg.batch_size, cfg.local_steps, cfg.minibatch)
    if why is not None:
        raise UserError(f"--minibatch {cfg.minibatch}: {why}")
    if cfg.minibatch is not None and cfg.updates is not None:
        raise UserError("--minibatch describes fresh updates; captured ones (--updates) record their own steps")


def fresh_group(
    cfg: AttackConfig, ds: Any, splits: Any, mf: ModelFile | None = None, device: torch.device | str = "cpu"
) -> Group:
    """Victims drawn as ``evaluate`` draws them; their FedSGD gradients or FedAvg deltas, on the
    model built from the seed or on checkpoint ``mf``'s model (moved to ``device``)."""
    victims = draw_victims(splits.clients, cfg.victims, cfg.batch_size, cfg.clients, cfg.seed)
    if mf is not None:
        mf = mf.for_dataset(ds)
        check_arch_option(mf, cfg.arch)
        profile, model = mf.profile, mf.build()
    else:
        profile = load_profile(cfg.profile or "loihi2")
        model = build_model(cfg.model, architecture_for(ds.input_shape, ds.classes, cfg.arch), profile, seed=cfg.seed)
    model = model.to(device)
    update = shared_updates(model, victims, profile, cfg.seed, cfg.local_steps, cfg.local_lr, cfg.minibatch)
    target = Target(model, update, cfg.batch_size, tuple(ds.input_shape), ds.classes, cfg.model,
                    ds.kind == "events", profile, splits.auxiliary, cfg.local_steps, cfg.local_lr,
                    cfg.minibatch)  # fmt: skip
    return Group(keyed(f"{cfg.model}@{profile.name}", table_digest(profile)), target, victims)


def load_captures(cfg: AttackConfig) -> list[Any]:
    """The captured updates of one federated run, with their provenance (refused without it)."""
    from neurofl.federated.capture import load_captured

    assert cfg.updates is not None  # called for --updates only
    caps = load_captured(Path(cfg.updates))
    if any(c.seed is None for c in caps):
        raise UserError(
            f"{cfg.updates}: the captures record no provenance (seed, profile table, dataset identity); "
            "capture them with `neurofl fl --capture-rounds`"
        )
    for c in caps:
        if c.true_inputs is None or c.true_labels is None:
            raise UserError(f"{cfg.updates}: round {c.round} client {c.client} has no true inputs to score against")
    return caps


def captured_groups(
    cfg: AttackConfig, caps: list[Any], ds: Any, splits: Any, device: torch.device | str = "cpu"
) -> list[Group]:
    """Captured updates, one group per round and client setting (same global model, device profile,
    batch, kind, steps, rate and minibatch), each on the profile the device ran (from the capture's
    own table, never a shipped file of the same name). A one-step ``delta`` is ``-lr * gradient``.
    Each group's target carries the captures' ``minibatch`` (the attacker unrolls the steps over
    consecutive minibatches of its candidates; a minibatch of the whole batch is None). Models and
    updates are moved to ``device``; the private truth stays on the CPU (scoring runs there, and
    only there)."""
    from neurofl.models.checkpoint import profile_from_dict

    groups: dict[tuple, list] = {}
    for c in caps:
        prof_key = table_digest(c.profile_table)
        walk = c.minibatch if c.local_steps > 1 and c.minibatch is not None and c.minibatch < c.batch else None
        key = (c.round, prof_key, c.model_kind, c.kind, c.batch, c.local_steps, c.lr, walk)
        groups.setdefault(key, []).append(c)
    out = []
    for key, group in sorted(groups.items(), key=lambda kv: kv[0][0]):
        round_, prof_key, kind, how, batch, steps, lr, walk = key
        first = group[0]
        prof = profile_from_dict(first.profile_table, f"{cfg.updates} profile_table")
        model = build_model(kind, first.arch, prof, seed=first.seed)
        model.load_state_dict(first.state_dict)
        model = model.to(device)
        update = {k: torch.cat([c.update[k] for c in group]).to(device) for k in first.update}
        x = torch.cat([c.true_inputs for c in group])
        y = torch.cat([c.true_labels for c in group])
        if how == "delta" and steps == 1:
            update, how = {k: -v / lr for k, v in update.items()}, "gradient"
        steps = 1 if how == "gradient" else steps
        target = Target(model, update, batch, tuple(first.arch.input_shape), first.arch.classes, kind,
                        ds.kind == "events", prof, splits.auxiliary, steps, lr, walk)  # fmt: skip
        victims = Victims(x, y, np.array([c.client for c in group]), np.full(len(y), -1, dtype=np.int64), batch)
        # (minibatch None is left out of the key: chunks kept before minibatches were recorded resume)
        setting = [how, batch, steps, lr, prof_key] + ([walk] if walk is not None else [])
        name = keyed(f"round{round_}-{kind}@{prof.name}", table_digest(setting))
        out.append(Group(name, target, victims))
    return out


def _concat(parts: list[dict[str, RecipeResult]]) -> dict[str, RecipeResult]:
    out = {}
    for name in parts[0]:
        rs = [p[name] for p in parts]
        reason = next((r.reason for r in rs if r.reason is not None), None)
        if reason is not None:
            out[name] = RecipeResult(reason=reason)
            continue
        labs = [r.labels for r in rs if r.labels is not None]
        out[name] = RecipeResult(
            np.concatenate([r.images for r in rs if r.images is not None]),
            np.concatenate([r.loss for r in rs if r.loss is not None]),
            np.concatenate(labs) if len(labs) == len(rs) else None, sum(r.seconds for r in rs),
        )  # fmt: skip
    return out


def attack_by_batch(
    groups: list[Group], recipes: list[Recipe], run: RunFolder, seed: int, on_progress: ProgressFn | None = None
) -> list[tuple[Samples, dict[str, RecipeResult]]]:
    """Every recipe on every group (chunks kept under ``run``'s ``rows/<group key>``), the results
    joined per batch size in ascending order (the groups' order within a size), each with the
    private samples it is scored against (on the CPU)."""
    sizes: dict[int, list[tuple[Group, dict[str, RecipeResult]]]] = {}
    for g in groups:
        store = RowStore(run.path("rows", g.key))
        done = attack_row(g.target, recipes, store, seed, g.victims.y, g.key, on_progress)
        sizes.setdefault(g.target.batch, []).append((g, done))
    out = []
    for batch, parts in sorted(sizes.items()):
        vs = [g.victims for g, _ in parts]
        samples = Samples(torch.cat([v.x for v in vs]).numpy(), torch.cat([v.y for v in vs]).numpy(),
                          np.concatenate([v.index for v in vs]), batch)  # fmt: skip
        out.append((samples, _concat([r for _, r in parts])))
    return out


def run_attack(cfg: AttackConfig, out: Path | None = None, on_progress: ProgressFn | None = None) -> dict[str, Any]:
    """Run the attack and, with ``out``, write config.json, report.json, reconstructions.npz/.png.

    Returns the report: one row in evaluate's row format (worst case over the recipes and
    ``per_attack``)."""
    _validate(cfg)
    dev = resolve_device(cfg.device)
    name, recipes = load_attack(cfg.recipe, cfg.iterations)
    mf = None
    if cfg.checkpoint is not None:
        if cfg.updates is not None:
            raise UserError("--model FILE and --updates: captured updates carry their own global model; give one")
        mf = open_model_file(cfg.checkpoint, cfg.dataset, cfg.profile)
        cfg = dataclasses.replace(cfg, model=mf.kind, dataset=mf.dataset, profile=mf.profile.name)
    else:
        cfg = dataclasses.replace(cfg, dataset=cfg.dataset or "digits", profile=cfg.profile or "loihi2")
    if cfg.model not in ("snn", "ann"):
        raise UserError(f"--model must be snn or ann, got {cfg.model!r}")
    ds = load_dataset(cfg.dataset or "digits", cfg.data_dir)
    if mf is not None:  # a chip network of fewer classes: the data it was trained on
        ds = mf.dataset_for(ds)
    caps = load_captures(cfg) if cfg.updates is not None else None
    split_seed = cfg.seed
    if caps is not None:
        ident = dataset_identity(ds)
        theirs = caps[0].dataset_identity
        if theirs["name"] != ident["name"] or theirs["sha256"] != ident["sha256"]:
            raise UserError(
                f"{cfg.updates}: captured on dataset '{theirs['name']}' with other content than --dataset "
                f"{cfg.dataset} (sha256 {theirs['sha256'][:12]} vs {ident['sha256'][:12]})"
            )
        split_seed = caps[0].seed  # the run's own split: its victims are never in the oracle's data
    splits = split_dataset(ds, split_seed)
    check_auxiliary(recipes, len(splits.auxiliary.y), ds.name)
    if caps is not None:
        groups = captured_groups(cfg, caps, ds, splits, dev)
    else:
        groups = [fresh_group(cfg, ds, splits, mf, dev)]
    # minibatch None (the whole batch every step) is left out, as in run folders made before it
    fp = {
        "neurofl_version": __version__,
        **{k: v for k, v in json.loads(json.dumps(dataclasses.asdict(cfg), default=str)).items()
           if k not in ("recipe", "profile", "data_dir", "checkpoint", "device")
           and not (k == "minibatch" and v is None)},  # fmt: skip
        **identity_entry(dev),
        **({"model_file": mf.identity()} if mf is not None else {}),
        "recipes": [config_identity(r) for r in recipes],
        "profile": config_identity(groups[0].target.profile),
        "dataset_identity": dataset_identity(ds),
        "captured_run": caps[0].run if caps is not None else None,
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = RunFolder(out if out is not None else Path(scratch) / "run", fp)
        with folder as run:
            report_path = run.out / "report.json"
            if report_path.is_file():
                return json.loads(report_path.read_text())
            judge = judge_for(ds, splits, split_seed)
            by_size = attack_by_batch(groups, recipes, run, cfg.seed, on_progress)
            x = np.concatenate([s.truth for s, _ in by_size])
            row, rec = score_batches(by_size, judge)
            first = groups[0].target
            row = {"model": first.kind, "profile": first.profile.name, **row}
            sizes = [s.batch for s, _ in by_size]
            per_step: dict[int, set[int]] = {}
            for g in groups:
                per_step.setdefault(g.target.batch, set()).add(g.target.minibatch or g.target.batch)
            per_size = {str(b): next(iter(m)) if len(m) == 1 else None for b, m in sorted(per_step.items())}
            walks = sorted(set().union(*per_step.values()))
            chances = judge_batches(judge, [s for s, _ in by_size], splits.auxiliary.private().x, cfg.seed, [row])
            report = {
                "neurofl_version": __version__,
                "dataset": cfg.dataset,
                "attack": name,
                "recipes": [r.name for r in recipes],
                "profile": first.profile.name,
                "seed": cfg.seed,
                "batch_size": sizes[0] if len(sizes) == 1 else None,  # None: several, in batch_sizes
                "batch_sizes": {str(s.batch): len(s.labels) for s, _ in by_size},  # samples per batch size
                "local_steps": cfg.local_steps if cfg.updates is None else first.local_steps,
                # samples per local step (the batch where every step took all of it): one value,
                # else None and per batch size in ``minibatches`` (None where a size mixes several)
                "minibatch": walks[0] if len(walks) == 1 else None,
                "minibatches": per_size,
                "updates": str(cfg.updates) if cfg.updates else None,
                "model_file": {"path": str(cfg.checkpoint), **mf.identity()} if mf is not None else None,
                "asr_kind": judge.name,
                "chance": judge.chance,
                "split_seed": split_seed,
                **chances,
                **describe(dev),
                "results": [row],
            }
            if out is not None:
                buf = io.BytesIO()
                np.savez_compressed(buf, reconstructions=rec if rec is not None else np.zeros(0), originals=x)
                atomic_write_bytes(run.out / "reconstructions.npz", buf.getvalue())
                if rec is not None and rec.ndim in (4, 5):
                    reconstructions_png(run.out / "reconstructions.png", x, {f"{row['model']}@{row['profile']}": rec})
                write_json(report_path, report)
    return report
