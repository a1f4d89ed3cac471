"""`neurofl evaluate`: one federated round, the server attacks each victim's shared update with an
attack suite, and leakage is compared between the float ANN, the float SNN and the SNN under each
hardware profile, on the same victims.

With a checkpoint (``model``, :mod:`neurofl.models.model_file`) the rows of its kind hold its weights and
are attacked as they are (no training before the attacked round); the other rows are built as
without one, with the checkpoint's topology. An SNN checkpoint gives one SNN row, under its own
profile (``ann@float32`` built, ``snn@<its profile>`` from the file); an ANN checkpoint gives the
ANN row (the SNN rows built under ``profiles``, as without one).

A run folder belongs to one configuration, identified by content (:mod:`neurofl.runs.identity`): the
settings, the resolved profiles and recipes, the dataset's arrays. Rows and their chunks are kept
under ``OUT/rows/`` (:mod:`neurofl.leakage.rows`), so an interrupted run resumes where it stopped and
gives the same report.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurofl import __version__
from neurofl.ablation import Ablation, NotApplicable
from neurofl.attacks.fedavg import minibatch_problem
from neurofl.attacks.recipe import Recipe, check_auxiliary, load_attack
from neurofl.attacks.target import Target
from neurofl.data import Dataset, load_dataset, split_dataset
from neurofl.errors import UserError
from neurofl.io.atomic import atomic_write_bytes
from neurofl.leakage.informativeness import first_layer_informativeness
from neurofl.leakage.rows import ProgressFn, RowStore, attack_row, score_row
from neurofl.leakage.scoring import judge_for, judge_rows
from neurofl.leakage.victims import Victims, draw_victims, shared_updates
from neurofl.models import Architecture, architecture_for, build_model
from neurofl.models.ann import MLP
from neurofl.models.arch import ModelKind
from neurofl.models.model_file import ModelFile, check_arch_option, open_model_file
from neurofl.models.snn import SpikingMLP
from neurofl.profiles import HardwareProfile, load_profile
from neurofl.report import markdown, profiles_png, reconstructions_png, write_json
from neurofl.runs.device import describe, identity_entry, resolve_device
from neurofl.runs.identity import SEED_MAX, config_identity, dataset_identity, keyed, table_digest
from neurofl.runs.rowpool import default_workers, map_rows
from neurofl.runs.runfolder import RunFolder

MAX_VICTIMS = 100_000
MAX_ITERATIONS = 1_000_000  # the recipes' own limit
MAX_LOCAL_STEPS = 1000


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of one evaluation (with the content of its inputs, everything that determines its results)."""

    profiles: tuple[str, ...] = ("loihi2",)  # () with ``model``: the checkpoint's profile
    dataset: str | None = "digits"  # None: the checkpoint's (with ``model``), else digits
    attack: str = "suite"
    clients: int = 8
    victims: int = 32
    batch_size: int = 1
    seed: int = 0
    out: Path = Path("runs/evaluate")
    data_dir: Path | None = None
    iterations: int | None = None  # overrides every gradient-matching recipe's (quick runs, tests)
    arch: str = "auto"  # mlp | conv | auto (see neurofl.models.architecture_for)
    train_epochs: int = 15  # to report each row's test accuracy (0: skip)
    round: int = 1  # attack the updates of this federated round (1: the initial global model)
    encoding: str = "profile"  # SNN input encoding of static images: profile | direct | rate
    fl_lr: float | None = None  # FedAvg client learning rate, before `round` and in it (None: per model)
    # the attacked update: local_steps SGD steps, each on minibatch of the batch's samples (None: all)
    local_steps: int = 1
    minibatch: int | None = None
    model: Path | None = None  # a neurofl checkpoint whose weights the rows of its kind use
    workers: int | None = None  # rows computed side by side (None: one per row, at most one per CPU)
    device: str = "auto"  # auto | cpu | cuda[:N] (neurofl.runs.device); the run records the resolved kind
    # one more SNN row per ablation beside each chip profile's (neurofl.ablation; the study's --ablate)
    ablations: tuple[Ablation, ...] = ()

    def settings(self) -> dict[str, Any]:
        """The settings as JSON data (paths and the output folder left out: inputs count by content;
        the device as :func:`fingerprint` records it, resolved; ablations only where there are some,
        so run folders made before they existed still resume)."""
        d = dataclasses.asdict(self)
        for k in ("out", "data_dir", "profiles", "attack", "model", "workers", "device", "ablations"):
            d.pop(k)
        if self.local_steps == 1 and self.minibatch is None:  # FedSGD: as run folders made before FedAvg updates
            del d["local_steps"], d["minibatch"]
        if self.ablations:
            d["ablations"] = [a.label for a in self.ablations]
        return json.loads(json.dumps(d, default=str))


@dataclass(frozen=True)
class Row:
    """One row of the report: a model kind under a profile.

    spec : what the user named (shipped name or path); label : how the report shows it (the name,
    or ``name (path)`` where two profiles share a name); key : its folder under ``OUT/rows``
    (name and content digest, never a raw name); source : the checkpoint whose weights the row
    uses (None: built from the seed); ablation : the one override of an ablated SNN row
    (``profile`` already carries it), base_value : the key's value in the unablated row, arch : its
    architecture where the override changes it (None: the plan's)."""

    kind: ModelKind
    profile: HardwareProfile
    spec: str
    label: str
    key: str
    source: ModelFile | None = None
    ablation: Ablation | None = None
    base_value: str = ""
    arch: Any = None


def with_encoding(profile: HardwareProfile, encoding: str) -> HardwareProfile:
    """The profile with another input encoding of static images (``profile`` keeps its own).

    A binary-spike chip cannot take a graded (``direct``) input: refused."""
    if encoding in ("profile", profile.spikes.input_encoding):
        return profile
    if encoding == "direct" and profile.spikes.payload == "binary":
        raise UserError(f"--encoding direct: profile '{profile.name}' has binary spikes (payload = 'binary')")
    if encoding == "direct":
        return dataclasses.replace(profile, spikes=dataclasses.replace(profile.spikes, input_encoding="direct"))
    if encoding == "rate":
        return dataclasses.replace(profile, spikes=dataclasses.replace(profile.spikes, input_encoding="rate"))
    raise UserError(f"--encoding must be profile, direct or rate, got {encoding!r}")


def plan_rows(specs: tuple[str, ...], encoding: str) -> list[Row]:
    """``ann@float32``, ``snn@float32``, then ``snn`` under each named profile (a profile whose
    content equals an earlier row's is that row; two with one name are told apart by their path)."""
    f32 = with_encoding(load_profile("float32"), encoding)
    named = [(s, with_encoding(load_profile(s), encoding)) for s in specs]
    names = [p.name for _, p in named] + ["float32"]
    candidates: list[tuple[ModelKind, str, HardwareProfile]] = [("ann", "float32", f32), ("snn", "float32", f32)]
    candidates += [("snn", s, p) for s, p in named]
    rows: list[Row] = []
    seen: set[tuple[str, str]] = set()
    for kind, spec, prof in candidates:
        digest = table_digest(prof)
        if (kind, digest) in seen:
            continue
        seen.add((kind, digest))
        shared = names.count(prof.name) > 1 and spec != "float32"
        label = f"{prof.name} ({spec})" if shared and spec != prof.name else prof.name
        rows.append(Row(kind, prof, spec, label, keyed(f"{kind}@{prof.name}", table_digest([kind, digest]))))
    return rows


def plan_rows_with(mf: ModelFile, specs: tuple[str, ...], encoding: str) -> list[Row]:
    """The rows with checkpoint ``mf``: its kind's row(s) hold its weights (row keys carry its digest).

    An SNN checkpoint: ``ann@float32`` and ``snn`` under its own profile (``specs`` may only name
    that profile); an ANN checkpoint: :func:`plan_rows` of ``specs`` (default ``loihi2``)."""
    from neurofl.models.model_file import resolve_profile

    if mf.kind == "ann":
        rows = plan_rows(specs or ("loihi2",), encoding)
        ann = rows[0]
        key = keyed(f"ann@{ann.profile.name}-file", table_digest([ann.key, mf.sha256]))
        return [dataclasses.replace(ann, key=key, source=mf)] + rows[1:]
    for spec in specs:
        resolve_profile(mf, spec)  # refuses a profile that is not the checkpoint's
    prof = with_encoding(mf.profile, encoding)
    ann = plan_rows((), encoding)[0]
    key = keyed(f"snn@{prof.name}-file", table_digest(["snn", table_digest(prof), mf.sha256]))
    return [ann, Row("snn", prof, prof.name, prof.name, key, mf)]


def ablated_rows(rows: list[Row], ablations: tuple[Ablation, ...], arch: Any) -> tuple[list[Row], dict[str, str]]:
    """One SNN row per ablation beside each chip profile's SNN row (not ``snn@float32``): the
    row's profile and architecture with that key changed, labelled ``<profile>[key=value]`` and
    keyed by the override and the resolved content. Returns (the rows, the ablated rows that do not
    apply to this data with why: ``snn@loihi2[time_steps=4]`` -> reason)."""
    out: list[Row] = []
    skipped: dict[str, str] = {}
    for row in [r for r in rows if r.kind == "snn" and r.spec != "float32" and r.source is None]:
        for a in ablations:
            label = f"{row.label}[{a.label}]"
            try:
                prof, row_arch = a.apply(row.profile, arch)
            except NotApplicable as e:
                skipped[f"snn@{label}"] = str(e)
                continue
            key = keyed(f"snn@{label}", table_digest(["snn", table_digest(prof), a.label,
                                                       row_arch.neuron.identity()]))  # fmt: skip
            own_arch = row_arch if row_arch != arch else None
            out.append(Row("snn", prof, row.spec, label, key, None, a, a.base_value(row.profile, arch), own_arch))
    return out, skipped


def _validate(cfg: EvaluateConfig) -> None:
    if not (1 <= cfg.victims <= MAX_VICTIMS):
        raise UserError(f"--victims must be in 1..{MAX_VICTIMS}, got {cfg.victims}")
    for flag, value in (("--clients", cfg.clients), ("--batch-size", cfg.batch_size), ("--round", cfg.round)):
        if value < 1:
            raise UserError(f"{flag} must be >= 1, got {value}")
    if not (0 <= cfg.seed <= SEED_MAX):
        raise UserError(f"--seed must be in 0..{SEED_MAX}, got {cfg.seed}")
    if cfg.workers is not None and cfg.workers < 1:
        raise UserError(f"--workers must be >= 1, got {cfg.workers}")
    if cfg.iterations is not None and not (1 <= cfg.iterations <= MAX_ITERATIONS):
        raise UserError(f"--iterations must be in 1..{MAX_ITERATIONS}, got {cfg.iterations}")
    if cfg.train_epochs < 0:
        raise UserError(f"--train-epochs must be >= 0, got {cfg.train_epochs}")
    if not 1 <= cfg.local_steps <= MAX_LOCAL_STEPS:
        raise UserError(f"--local-steps must be in 1..{MAX_LOCAL_STEPS}, got {cfg.local_steps}")
    why = minibatch_problem(cfg.batch_size, cfg.local_steps, cfg.minibatch)
    if why is not None:
        raise UserError(f"--minibatch {cfg.minibatch}: {why}")


def fingerprint(
    cfg: EvaluateConfig, rows: list[Row], attack: str, recipes: list[Recipe], ds: Dataset
) -> dict[str, Any]:
    """What makes two runs the same run: settings, the device's kind (absent for the CPU, so CPU
    run folders made before ``--device`` still resume), and the content of every input."""
    return {
        "neurofl_version": __version__,
        **cfg.settings(),
        **identity_entry(resolve_device(cfg.device)),
        "rows": [row_identity(r) for r in rows],
        "attack": attack,
        "recipes": [config_identity(r) for r in recipes],
        "dataset_identity": dataset_identity(ds),
    }


def row_identity(row: Row) -> dict[str, Any]:
    """A row by content: its kind, label, profile, and the model file, ablation and neuron it uses."""
    return {"kind": row.kind, "label": row.label, "profile": config_identity(row.profile),
            **({"model_file": row.source.identity()} if row.source else {}),
            **({"ablation": row.ablation.label} if row.ablation else {}),
            **({"neuron": row.arch.neuron.identity()} if row.arch is not None else {})}  # fmt: skip


def utility_identity(row: Row, ds: Dataset, cfg: EvaluateConfig) -> dict[str, Any]:
    """What a row's utility (:func:`utility_row`) depends on: the row, the data by content, the seed
    (it splits the data and seeds the training), the training epochs, the architecture option, the
    encoding and the device; not the batch size, victims, clients or attacks, so the cells of a
    study that differ only in those share it."""
    return {"neurofl_version": __version__, "row": row_identity(row), "dataset_identity": dataset_identity(ds),
            "seed": cfg.seed, "train_epochs": cfg.train_epochs, "arch": cfg.arch, "encoding": cfg.encoding,
            **identity_entry(resolve_device(cfg.device))}  # fmt: skip


# FedAvg client learning rates that train the digits models (measured: 10 rounds, 8 clients, 5 local
# steps of batch 16 take the ANN to 0.89 test accuracy at 0.5; the SNN diverges above ~0.05).
FL_LR = {"ann": 0.5, "snn": 0.03}


def global_model_at_round(row: Row, arch: Any, ds: Dataset, cfg: EvaluateConfig, out: Path) -> torch.nn.Module:
    """The global model at the start of round ``cfg.round``: ``cfg.round - 1`` rounds of FedAvg
    (all ``cfg.clients`` clients, 5 local SGD steps of batch 16, in the profile's arithmetic) with
    the local federated engine, checkpointed under ``out`` so a rerun resumes."""
    from neurofl.federated.engine import run_local
    from neurofl.federated.settings import fl_config
    from neurofl.federated.task import make_task

    if not isinstance(arch, Architecture):
        raise UserError("--round > 1 trains with the federated engine, which builds fully connected models only")
    fl = fl_config(
        {"clients": cfg.clients, "rounds": cfg.round - 1, "strategy": "fedavg", "local_steps": 5, "batch": 16,
         "lr": cfg.fl_lr or FL_LR[row.kind], "seed": cfg.seed},
        "evaluate --round",
    )  # fmt: skip
    task = make_task(ds, row.kind, row.profile, fl, arch=arch, device=resolve_device(cfg.device))
    return run_local(task, out=out).model


def utility_row(
    row: Row, arch: Any, splits: Any, cfg: EvaluateConfig, out: Path, shared: Path | None = None
) -> dict[str, Any]:
    """What the row costs and gives, cached in ``out/utility.json``: the test accuracy of the model
    trained under the profile (centrally, ``cfg.train_epochs`` epochs on the clients' data) and, for
    fully connected SNNs and chip networks, synaptic operations (SLAYER: cores) and energy per inference on
    the test split.

    ``shared``: the same utility's file by content (:func:`shared_utility_path`), where the cells
    of a study find a row's utility another cell computed instead of training the same model again
    (read if it is there, else written too)."""
    path = out / "utility.json"
    if path.is_file():
        return json.loads(path.read_text())
    if shared is not None and shared.is_file():
        util = json.loads(shared.read_text())
    else:
        util = _measure_utility(row, arch, splits, cfg)
        if shared is not None:
            write_json(shared, util)
    write_json(path, util)
    return util


def shared_utility_path(folder: Path, row: Row, ds: Dataset, cfg: EvaluateConfig) -> Path:
    """``folder/<row key>-<digest of utility_identity>.json``: one file per row utility, by content."""
    return folder / f"{keyed(row.key, table_digest(utility_identity(row, ds, cfg)))}.json"


def _measure_utility(row: Row, arch: Any, splits: Any, cfg: EvaluateConfig) -> dict[str, Any]:
    from neurofl.deploy.chip_resources import estimate_chip_resources
    from neurofl.deploy.resources import estimate_resources
    from neurofl.models.chips.xylo_net import TwoProjectionNetwork
    from neurofl.models.snn import SpikingMLP
    from neurofl.train import accuracy, train_model

    arch = row.arch if row.arch is not None else arch
    util: dict[str, Any] = {"test_accuracy": None, "energy_uj": None, "synops": None, "cores": None}
    model = None
    dev = resolve_device(cfg.device)
    if row.source is not None:  # the file's model as it is: measured, never trained
        model = row.source.build(row.profile).to(dev)
        util["test_accuracy"] = accuracy(model, splits.test, cfg.seed)
    elif cfg.train_epochs > 0:
        trained = train_model(row.kind, arch, row.profile, splits.clients, splits.test, cfg.train_epochs, cfg.seed,
                              device=dev)  # fmt: skip
        model, util["test_accuracy"] = trained.model, trained.accuracy
    if model is not None:
        model = model.cpu()  # the resource estimate counts events on the CPU
        if isinstance(model, SpikingMLP):
            rep = estimate_resources(model, row.profile, torch.from_numpy(splits.test.x), seed=cfg.seed)
            util["synops"] = rep.synops_per_inference.value
            util["cores"] = rep.cores_used.value
            if rep.energy_per_inference is not None:
                util["energy_uj"] = rep.energy_per_inference.value
                util["energy_source"] = rep.energy_per_inference.source
        elif isinstance(model, TwoProjectionNetwork):  # Xylo and the one-state chips
            chip = estimate_chip_resources(model, row.profile, torch.from_numpy(splits.test.x), seed=cfg.seed)
            util["synops"] = chip.synaptic_events.value
            energy = chip.energy_per_inference
            util["energy_source"] = energy.source if energy is not None else chip.energy_note
            if energy is not None:
                util["energy_uj"] = energy.value
    return util


def profiles_for(arch: Any, seed: int) -> tuple[tuple[str, ...], dict[str, str]]:
    """``--profile all``: every shipped chip profile whose SNN can be built for ``arch`` (float32 is
    always a row), and for each one that cannot, the one-line reason (e.g. a Xylo network on a conv
    architecture)."""
    from neurofl.profiles import shipped_profiles

    specs, skipped = [], {}
    for name in shipped_profiles():
        if name == "float32":
            continue
        try:
            build_model("snn", arch, load_profile(name), seed=seed)
        except UserError as e:
            skipped[name] = str(e)
            continue
        specs.append(name)
    return tuple(specs), skipped


@dataclass(frozen=True)
class EvaluatePlan:
    """Everything an evaluation is made of, resolved and checked before anything is written: the
    settings (dataset and profiles resolved), the recipes, the data, the victims, the rows and the
    architecture. :func:`run_evaluate` and the study's tasks (:mod:`neurofl.study`) start from it."""

    cfg: EvaluateConfig
    attack: str
    recipes: list[Recipe]
    ds: Dataset
    splits: Any
    victims: Victims
    rows: list[Row]
    arch: Any
    mf: ModelFile | None
    skipped: dict[str, str]
    device: torch.device

    def fingerprint(self) -> dict[str, Any]:
        return fingerprint(self.cfg, self.rows, self.attack, self.recipes, self.ds)


def plan_evaluation(cfg: EvaluateConfig) -> EvaluatePlan:
    """Resolve and check ``cfg`` (refusing a bad input with one line) and build what the run needs."""
    _validate(cfg)
    dev = resolve_device(cfg.device)
    mf = open_model_file(cfg.model, cfg.dataset) if cfg.model is not None else None
    cfg = dataclasses.replace(cfg, dataset=mf.dataset if mf else cfg.dataset or "digits")
    every = cfg.profiles == ("all",)
    if every and mf is not None:
        raise UserError("--profile all compares the shipped chips on models it builds; with --model name one profile")
    attack, recipes = load_attack(cfg.attack, cfg.iterations)
    ds = load_dataset(cfg.dataset or "digits", cfg.data_dir)
    if mf is not None:  # a chip network of fewer classes: the data it was trained on
        ds = mf.dataset_for(ds)
    skipped: dict[str, str] = {}
    if every:
        specs, skipped = profiles_for(architecture_for(ds.input_shape, ds.classes, cfg.arch), cfg.seed)
        cfg = dataclasses.replace(cfg, profiles=specs)
    if mf is None:
        rows = plan_rows(cfg.profiles or ("loihi2",), cfg.encoding)
    else:
        rows = plan_rows_with(mf, cfg.profiles, cfg.encoding)
    splits = split_dataset(ds, cfg.seed)
    check_auxiliary(recipes, len(splits.auxiliary.y), ds.name)
    victims = draw_victims(splits.clients, cfg.victims, cfg.batch_size, cfg.clients, cfg.seed)
    if mf is not None:
        mf = mf.for_dataset(ds)
        rows = [dataclasses.replace(r, source=mf) if r.source else r for r in rows]
        check_arch_option(mf, cfg.arch)
    arch = mf.arch if mf else architecture_for(ds.input_shape, ds.classes, cfg.arch)
    if cfg.ablations:
        if mf is not None:
            raise UserError("--ablate varies the SNN rows neurofl builds; it does not take --model")
        if not any(r.kind == "snn" and r.spec != "float32" for r in rows):
            raise UserError("--ablate varies a chip profile's SNN row; name one in --profiles (not only float32)")
        more, not_applicable = ablated_rows(rows, cfg.ablations, arch)
        rows += more
        skipped.update(not_applicable)
    if cfg.round > 1 and not isinstance(arch, Architecture) and any(r.source is None for r in rows):
        raise UserError("--round > 1 trains with the federated engine, which builds fully connected models only")
    if cfg.local_steps > 1 and (not isinstance(arch, Architecture) or any(r.source is not None for r in rows)):
        raise UserError("--local-steps > 1 unrolls a client's steps on the fully connected models neurofl builds; "
                        f"this run's model is {type(arch).__name__}" + (" from --model" if mf else ""))
    for row in rows:  # refuse a profile the models cannot take before anything is written
        if row.source is not None:
            row.source.build(row.profile)
        else:
            built = build_model(row.kind, row.arch if row.arch is not None else arch, row.profile, seed=cfg.seed)
            if cfg.local_steps > 1 and not isinstance(built, (MLP, SpikingMLP)):  # what attacks/fedavg.py unrolls
                raise UserError(f"--local-steps > 1: profile '{row.label}' builds a {type(built).__name__}; a "
                                "client's steps are unrolled for the SLAYER MLP and the float MLP only")
    return EvaluatePlan(cfg, attack, recipes, ds, splits, victims, rows, arch, mf, skipped, dev)


def run_evaluate(cfg: EvaluateConfig, on_progress: ProgressFn | None = None) -> dict[str, Any]:
    """Run the evaluation and write report.json, report.md and reconstructions.png into ``cfg.out``.

    Returns the report (report.json's content).
    """
    plan = plan_evaluation(cfg)
    cfg, dev, mf, skipped = plan.cfg, plan.device, plan.mf, plan.skipped
    attack, recipes, ds, splits, victims = plan.attack, plan.recipes, plan.ds, plan.splits, plan.victims
    rows, arch = plan.rows, plan.arch
    with RunFolder(cfg.out, plan.fingerprint()) as run:
        judge = judge_for(ds, splits, cfg.seed)
        truth, labels = victims.x.numpy(), victims.y.numpy()
        top = float(judge.hits(truth, labels, victims.index).mean())
        results, images = [], {}

        def one_row(i: int, progress: ProgressFn | None) -> tuple[dict[str, Any], np.ndarray | None]:
            return evaluate_row(rows[i], arch, ds, splits, victims, recipes, judge, cfg, run, progress)

        workers = cfg.workers if cfg.workers is not None else default_workers(len(rows))
        if dev.type != "cpu":  # a CUDA context does not survive fork: rows one after another
            workers = 1
        for row, (result, rec) in zip(rows, map_rows(one_row, len(rows), workers, on_progress), strict=True):
            results.append(result)
            if rec is not None:
                images[f"{row.kind}@{row.label}"] = rec
        pool = splits.auxiliary.private().x
        chances = judge_rows(judge, truth, labels, victims.index, cfg.batch_size, pool, cfg.seed, results)
        for result in results:
            result["chance_empirical"] = chances["chance_empirical"]
        ann = results[0]
        main = next(r for r in reversed(results) if "ablation" not in r)  # the last profile's row
        report = {
            "neurofl_version": __version__,
            "dataset": cfg.dataset,
            "attack": attack,
            "recipes": [r.name for r in recipes],
            "attack_iterations": {r.name: getattr(r, "iterations", None) for r in recipes},
            "profile": main["profile"],
            "profiles": [r.label for r in rows if r.kind == "snn" and r.spec != "float32" and r.ablation is None]
            or ["float32"],
            "seed": cfg.seed,
            "clients": cfg.clients,
            "victims": cfg.victims,
            "batch_size": cfg.batch_size,
            "samples": cfg.victims * cfg.batch_size,
            "round": cfg.round,
            "local_steps": cfg.local_steps,
            "minibatch": cfg.minibatch or cfg.batch_size,
            **describe(dev),
            "model_file": {"path": str(cfg.model), **mf.identity()} if mf else None,
            "encodings": {r.label: r.profile.spikes.input_encoding for r in rows if r.kind == "snn"
                          and r.spec != "float32"},  # fmt: skip
            **({"ablations": [a.label for a in cfg.ablations]} if cfg.ablations else {}),
            "arch": type(arch).__name__,
            "asr_kind": judge.name,
            "chance": judge.chance,
            **chances,
            "oracle_accuracy": top,
            "oracle_test_accuracy": judge.oracle.accuracy(splits.test.x, splits.test.y) if judge.oracle else None,
            "results": results,
            "profiles_skipped": skipped,
            "asr_reduction": (1 - main["asr"] / ann["asr"]) if ann["asr"] and main["asr"] is not None else None,
            "iip_reduction": (1 - main["iip"] / ann["iip"]) if ann.get("iip") and main.get("iip") is not None else None,
        }
        write_json(run.out / "report.json", report)
        atomic_write_bytes(run.out / "report.md", markdown(report).encode())
        reconstructions_png(run.out / "reconstructions.png", truth, images)
        if len(report["profiles"]) > 1:
            profiles_png(run.out / "profiles.png", report)
    return report


def chip_fit(model: torch.nn.Module, arch: Any, profile: HardwareProfile) -> dict[str, Any]:
    """Whether the row's network fits the chip of a profile with ``[chip]`` limits: ``fits`` and the
    reasons it does not (the row still simulates the chip's arithmetic either way)."""
    from neurofl.models.chips.xylo_net import fit_problems

    net_arch = getattr(model, "arch", arch)
    if not isinstance(net_arch, Architecture):
        return {"fits": False, "fit_problems": [f"a {type(net_arch).__name__} does not map to this chip"]}
    problems, unchecked = fit_problems(net_arch, profile)
    return {"fits": not problems, "fit_problems": problems, "fit_unchecked": unchecked}


def evaluate_row(
    row: Row,
    arch: Any,
    ds: Dataset,
    splits: Any,
    victims: Victims,
    recipes: list[Recipe],
    judge: Any,
    cfg: EvaluateConfig,
    run: RunFolder,
    on_progress: ProgressFn | None,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Attack, score and cost one row. Returns (its report row, the worst case's reconstructions)."""
    store = row_store(run, row)
    target, phases = row_target(row, arch, ds, splits, victims, cfg, store)
    model, update = target.model, target.update
    t0 = time.perf_counter()
    info = None  # the measures read a FedSGD gradient (its exact value sets the upload's rank tolerance)
    if cfg.local_steps == 1:
        info = first_layer_informativeness(model, victims.x, victims.y, row.profile, cfg.batch_size, cfg.seed,
                                           deeper=isinstance(arch, Architecture), uploaded=update)  # fmt: skip
    phases["informativeness"] = time.perf_counter() - t0
    label = f"{row.kind}@{row.label}"
    results = attack_row(target, recipes, store, cfg.seed, victims.y, label, on_progress)
    phases["attacks"] = sum(r.seconds for r in results.values())
    t0 = time.perf_counter()
    scored, rec = score_row(results, judge, victims.x.numpy(), victims.y.numpy(), victims.index, cfg.batch_size)
    phases["scoring"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    util = utility_row(row, arch, splits, cfg, store.dir)
    phases["utility"] = time.perf_counter() - t0
    out = {"model": row.kind, "profile": row.label, **scored, **util, "informativeness": info}
    if cfg.round > 1 and row.source is None:  # the attacked global model's test accuracy, from its FedAvg history
        history = json.loads((store.dir / "fl" / "history.json").read_text())
        out["global_accuracy"] = history["rounds"][-1]["accuracy"]
    if row.ablation is not None:
        out["ablation"] = {"key": row.ablation.key, "value": row.ablation.value, "base": row.label.split("[")[0],
                           "base_value": row.base_value}  # fmt: skip
    if row.kind == "snn":
        out["arithmetic"] = row.profile.arithmetic
    if row.kind == "snn" and row.profile.chip is not None:
        out.update(chip_fit(model, arch, row.profile))
    if cfg.model is not None:  # where each row's weights came from
        out["weights"] = f"file {row.source.sha256[:12]}" if row.source else f"seed {cfg.seed}, round {cfg.round}"
    out["seconds"] = float(sum(phases.values()))
    out["phases"] = phases
    return out, rec


def row_store(run: RunFolder, row: Row) -> RowStore:
    """The row's store in the run folder: ``OUT/rows/<row key>/``."""
    return RowStore(run.path("rows", row.key))


def row_target(
    row: Row, arch: Any, ds: Dataset, splits: Any, victims: Victims, cfg: EvaluateConfig, store: RowStore
) -> tuple[Target, dict[str, float]]:
    """What the server attacks on one row (the one path to it: :func:`evaluate_row` and the study's
    tasks): the global model of the attacked round (built from the seed or the checkpoint; with
    ``cfg.round > 1`` trained under ``store``), the victims' uploaded updates, and the
    :class:`Target` over them. Returns (the target, the seconds of the ``global_model`` and
    ``victim_updates`` phases)."""
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    arch = row.arch if row.arch is not None else arch
    if row.source is not None:  # the checkpoint as it is: no federated rounds before the attacked one
        model = row.source.build(row.profile)
    else:
        model = build_model(row.kind, arch, row.profile, seed=cfg.seed)
    model = model.to(resolve_device(cfg.device))
    if cfg.round > 1 and row.source is None:
        model.load_state_dict(global_model_at_round(row, arch, ds, cfg, store.dir / "fl").state_dict())
    phases["global_model"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lr = cfg.fl_lr or FL_LR[row.kind]
    update = shared_updates(model, victims, row.profile, cfg.seed, cfg.local_steps, lr, cfg.minibatch)
    phases["victim_updates"] = time.perf_counter() - t0
    target = Target(model, update, cfg.batch_size, tuple(ds.input_shape), ds.classes, row.kind, ds.kind == "events",
                    row.profile, splits.auxiliary, cfg.local_steps, lr, cfg.minibatch)  # fmt: skip
    return target, phases
