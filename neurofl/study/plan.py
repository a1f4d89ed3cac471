"""What a study is made of: its settings, its cells (dataset x batch size) and each cell's tasks.

A **cell** is one ``neurofl evaluate`` of the study (:class:`~neurofl.pipelines.evaluate.EvaluateConfig`,
run folder ``OUT/<dataset>/batch<B>/``). A **task** computes one recipe of one row of a cell (the
recipe's chunks in the row's store, :mod:`neurofl.leakage.rows`), or one row's utility (its
``utility.json``); once every task of a cell is done, the cell's report task scores the rows and
writes the cell's report (:func:`neurofl.study.tasks.report_task`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurofl.errors import UserError
from neurofl.pipelines.evaluate import EvaluateConfig

MAX_WORKERS = 4096


@dataclass(frozen=True)
class StudyConfig:
    """The study's settings (``neurofl study``'s options)."""

    out: Path = Path("runs/study")
    data_dir: Path | None = None
    profiles: str = "loihi2,loihi1"  # chip profiles beside float32, comma-separated
    datasets: str = "digits,fashion-mnist,faces,dvs-digits"  # those not available are listed as skipped
    batches: str = "1,4,16"
    attack: str = "suite_study"
    victims: int = 16
    clients: int = 8
    seed: int = 0
    iterations: int | None = None  # gradient-matching iterations (None: the recipes')
    train_epochs: int = 5
    min_victims: int = 4  # a cell where fewer victims fit is skipped
    device: str = "auto"
    workers: int = 1  # 1: tasks in this process (no Ray); N > 1: a private local Ray instance of N CPUs
    ray_address: str | None = None  # an existing Ray cluster instead of a private instance
    ablate: tuple[str, ...] = ()  # --ablate KEY=V1,V2,... texts (neurofl.ablation): one SNN row per value
    round: int = 1  # attack the global model of this round (earlier rounds: FedAvg with the local engine)
    local_steps: int = 1  # each update: one local epoch over its batch in this many minibatches (1: FedSGD)


@dataclass(frozen=True)
class Cell:
    """One (dataset, batch size) of the study: its evaluation's settings; utilities: the study's
    folder of row utilities by content (``OUT/utilities``), which its cells of one dataset share
    (a row's test accuracy does not depend on the batch size)."""

    dataset: str
    batch: int
    cfg: EvaluateConfig
    utilities: Path

    @property
    def name(self) -> str:
        return f"{self.dataset}/batch{self.batch}"


@dataclass(frozen=True)
class Task:
    """One unit of work: ``kind`` ``recipe`` (one recipe of one row) or ``utility`` (a row's test
    accuracy and energy), or ``report`` (the cell's report, once its other tasks are done).

    row : the row's key (its folder under ``rows/``); row_label : ``kind@profile`` as reports show it;
    recipe : the recipe's name (``recipe`` tasks)."""

    cell: Cell
    kind: str
    row: str = ""
    row_label: str = ""
    recipe: str = ""

    @property
    def name(self) -> str:
        if self.kind == "report":
            return f"{self.cell.name} report"
        return f"{self.cell.name} {self.row_label} {self.recipe or self.kind}"


@dataclass
class StudyPlan:
    """The study before any task runs: its header (the settings study.json records), its cells in
    order, each dataset's entry (cells kept from an earlier invocation, batches skipped), the
    datasets not available, and the earlier invocation's entries of datasets not run now."""

    header: dict[str, Any]
    cells: list[Cell]
    entries: dict[str, dict[str, Any]]
    earlier: dict[str, dict[str, Any]]


def _batches(text: str) -> list[int]:
    try:
        sizes = sorted({int(b) for b in text.split(",") if b.strip()})
    except ValueError:
        raise UserError(f"--batches {text!r}: expected comma-separated batch sizes, e.g. 1,4,16") from None
    if not sizes or sizes[0] < 1:
        raise UserError(f"--batches {text!r}: expected batch sizes of at least 1")
    return sizes


def plan_study(cfg: StudyConfig) -> StudyPlan:
    """The study's cells: every available dataset of ``cfg.datasets`` x every batch size where at
    least ``cfg.min_victims`` victims fit (others are listed as skipped, with why). Refuses an
    unknown dataset, bad batch sizes and an unusable ``--device`` with one line."""
    from neurofl.ablation import parse_ablate
    from neurofl.data import available_datasets, load_dataset, split_dataset
    from neurofl.data.paths import optional_data_dir
    from neurofl.data.registry import is_available
    from neurofl.leakage.victims import victims_that_fit
    from neurofl.runs.device import device_kind, resolve_device
    from neurofl.study.render import earlier_entries

    if not 1 <= cfg.workers <= MAX_WORKERS:
        raise UserError(f"--workers must be in 1..{MAX_WORKERS}, got {cfg.workers}")
    if cfg.round < 1 or cfg.local_steps < 1:
        raise UserError(f"--round and --local-steps must be >= 1, got {cfg.round} and {cfg.local_steps}")
    registry = available_datasets()
    names = [n.strip() for n in cfg.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise UserError(f"--datasets: unknown dataset '{unknown[0]}' (known: {', '.join(registry)})")
    sizes = _batches(cfg.batches)
    ablations = parse_ablate(cfg.ablate)
    root = optional_data_dir(cfg.data_dir)
    todo = [n for n in names if is_available(registry[n], root)]
    dev = resolve_device(cfg.device)
    header: dict[str, Any] = {"attack": cfg.attack, "profiles": cfg.profiles, "seed": cfg.seed, "victims": cfg.victims,
                              "clients": cfg.clients, "iterations": cfg.iterations, "train_epochs": cfg.train_epochs,
                              "device": device_kind(dev),
                              "datasets": [], "skipped": [n for n in names if n not in todo]}  # fmt: skip
    if ablations:  # only then: a study.json without ablations keeps the keys it had before they existed
        header["ablate"] = [a.label for a in ablations]
    if cfg.round != 1 or cfg.local_steps != 1:  # likewise: FedSGD on the initial model is the default threat
        header.update(round=cfg.round, local_steps=cfg.local_steps)
    earlier = earlier_entries(cfg.out / "study.json", header)
    cells: list[Cell] = []
    entries: dict[str, dict[str, Any]] = {}
    for name in todo:
        ds = load_dataset(name, root)
        clients_split = split_dataset(ds, cfg.seed).clients
        kept = [c for c in earlier.pop(name, {}).get("cells", []) if c["batch"] not in sizes]
        entries[name] = {"dataset": name, "kind": ds.kind, "cells": kept, "skipped_batches": []}
        for b in sizes:
            if b % cfg.local_steps:
                entries[name]["skipped_batches"].append(
                    f"{b} (--local-steps {cfg.local_steps} walk a batch in equal minibatches; it must divide it)")
                continue
            n = min(cfg.victims, victims_that_fit(clients_split, b, cfg.clients, cfg.seed))
            if n < cfg.min_victims:
                why = f"{b} (only {n} victims of {b} private samples fit in {cfg.clients} clients)"
                entries[name]["skipped_batches"].append(why)
                continue
            ev = EvaluateConfig(
                profiles=tuple(cfg.profiles.split(",")), dataset=name, attack=cfg.attack, clients=cfg.clients,
                victims=n, batch_size=b, seed=cfg.seed, out=cfg.out / name / f"batch{b}", data_dir=root,
                iterations=cfg.iterations, train_epochs=cfg.train_epochs, device=str(dev), workers=1,
                ablations=ablations, round=cfg.round, local_steps=cfg.local_steps,
                minibatch=b // cfg.local_steps if cfg.local_steps > 1 else None,
            )  # fmt: skip
            cells.append(Cell(name, b, ev, cfg.out / "utilities"))
    return StudyPlan(header, cells, entries, earlier)


def cell_tasks(cell: Cell, plan: Any) -> list[Task]:
    """The cell's recipe and utility tasks, row by row (``plan``: the cell's
    :class:`~neurofl.pipelines.evaluate.EvaluatePlan`), its report task last."""
    tasks = []
    for row in plan.rows:
        label = f"{row.kind}@{row.label}"
        tasks += [Task(cell, "recipe", row.key, label, r.name) for r in plan.recipes]
        tasks.append(Task(cell, "utility", row.key, label))
    return [*tasks, Task(cell, "report")]


def task_done(task: Task, plan: Any, run: Any) -> bool:
    """Whether every file ``task`` writes is already in the cell's run folder (``run``), so a rerun
    need not start it: a recipe's chunks (all of them), a row's ``utility.json``. A recipe that does
    not apply writes nothing and is never done (its task says so, cheaply)."""
    from neurofl.leakage.rows import CHUNK
    from neurofl.pipelines.evaluate import row_store

    if task.kind == "report":
        return False
    row = next(r for r in plan.rows if r.key == task.row)
    store = row_store(run, row)
    if task.kind == "utility":
        return (store.dir / "utility.json").is_file()
    recipe = next(r for r in plan.recipes if r.name == task.recipe)
    chunks = math.ceil(plan.cfg.victims / CHUNK)
    return all(store.chunk_path(recipe, k).is_file() for k in range(chunks))

