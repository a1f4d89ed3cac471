"""One row of a leakage report: every recipe of an attack (or suite) on one model's shared updates.

The evaluation core that ``evaluate``, ``attack`` and the scripts share. :func:`attack_row` runs
each applicable recipe on chunks of :data:`CHUNK` victims and keeps every finished chunk on disk
(:class:`RowStore`), so an interrupted run resumes where it stopped and ends with the same numbers;
:data:`CHUNK` is the resume granularity (the saved files ``chunk_<k>.npz`` hold victims ``16k`` to
``16k + 15``, as before the memory budget existed, so older run folders resume). Within a saved
chunk the victims are attacked in sub-chunks as large as the memory budget allows
(:mod:`neurofl.runs.memory`: the largest whose estimate fits, at most :data:`CHUNK`), each
with the seed of its first victim, so the sub-chunking draws the same numbers: reconstructions
equal up to the rounding of batched float arithmetic (at most ~1e-7 per pixel measured on digits;
identical where the budget holds the whole chunk, the default); recipes kept whole are listed in
:func:`whole_chunk` (refused when the whole chunk does not fit). Before any attack runs, each
recipe's estimate for one victim is checked against the budget (a one-line refusal naming what to
lower);
:func:`score_row` judges each recipe's reconstructions with the one scoring path
(:mod:`neurofl.leakage.scoring`) and combines them per sample into the row's worst case.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurofl.attacks.labels import recover_labels
from neurofl.attacks.recipe import Recipe
from neurofl.attacks.registry import prepare, run_recipe, why_not
from neurofl.attacks.target import Target
from neurofl.errors import UserError
from neurofl.io.atomic import atomic_write_bytes
from neurofl.leakage.scoring import (
    Judge,
    Samples,
    SampleScores,
    concat_scores,
    label_hits,
    sample_scores,
    summary,
    worst_case,
)
from neurofl.runs import memory
from neurofl.runs.device import device_of
from neurofl.runs.identity import config_identity, keyed

CHUNK = 16  # victims per saved chunk (the resume granularity) and the most attacked together

# (row label, recipe name, victims done, victims total)
ProgressFn = Callable[[str, str, int, int], None]


class RowStore:
    """A row's files: ``<dir>/labels.npz``, ``<dir>/<recipe-key>/chunk_<k>.npz`` and per-recipe
    state (``state.pt``). Recipe folders are keyed by the recipe's content, so an edited recipe never
    reuses another's chunks."""

    def __init__(self, dir: Path):
        self.dir = Path(dir)

    @staticmethod
    def recipe_key(recipe: Recipe) -> str:
        ident = config_identity(recipe)
        return keyed(ident["name"], ident["sha256"])

    def chunk_path(self, recipe: Recipe, k: int) -> Path:
        return self.dir / self.recipe_key(recipe) / f"chunk_{k:04d}.npz"

    def state_path(self, recipe: Recipe) -> Path:
        return self.dir / self.recipe_key(recipe) / "state.pt"

    @staticmethod
    def load(path: Path) -> dict[str, np.ndarray] | None:
        """A saved chunk, or None if there is none; a file that is not one of ours is refused."""
        from neurofl.errors import UserError
        from neurofl.io.safeio import regular_file

        if not path.exists():
            return None
        regular_file(path, "saved chunk")
        try:
            with np.load(path, allow_pickle=False) as z:
                for name in z.files:  # sizes from the file's bytes, not from its headers' claims
                    _check_member(z.zip, name)
                return {name: z[name] for name in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            what = type(e).__name__
            raise UserError(f"{path}: not a saved chunk of this run ({what}); remove it to recompute") from None

    @staticmethod
    def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())


def _check_member(archive: zipfile.ZipFile, name: str) -> None:
    """Refuse (ValueError) an ``.npy`` member whose header declares more data than it holds, before
    numpy allocates what the header claims."""
    info = archive.getinfo(f"{name}.npy")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f, max_header_size=10_000)  # type: ignore[call-arg]  # numpy>=1.24; not in its stubs
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if dtype.hasobject or declared > info.file_size - f.tell():
            raise ValueError(f"{name}: declares {declared} bytes, holds {info.file_size - f.tell()}")


@dataclass(frozen=True)
class RecipeResult:
    """One recipe's outcome on a row: arrays over all victims, or the reason it does not apply.

    images : (victims * batch, *input_shape); loss : (victims,); labels : (victims * batch,) or
    None; seconds : attack time (the row's shared per-recipe preparation included)."""

    images: np.ndarray | None = None
    loss: np.ndarray | None = None
    labels: np.ndarray | None = None
    seconds: float = 0.0
    reason: str | None = None


def row_labels(target: Target, store: RowStore, seed: int) -> torch.Tensor:
    """The labels recovered from the updates (iDLG at batch 1, the count estimate above, calibrated on
    the attacker's auxiliary data), once per row."""
    path = store.dir / "labels.npz"
    done = store.load(path)
    if done is not None:
        return torch.from_numpy(done["labels"])
    aux = target.auxiliary
    calibration = (torch.from_numpy(aux.x), torch.from_numpy(aux.y)) if aux is not None and len(aux.y) else None
    labels = recover_labels(target.model, target.gradients(), target.batch, target.input_shape, seed, calibration)
    labels = labels.cpu()
    store.save(path, {"labels": labels.numpy()})
    return labels


def attack_row(
    target: Target,
    recipes: list[Recipe],
    store: RowStore,
    seed: int,
    true_labels: torch.Tensor,
    label: str = "",
    on_progress: ProgressFn | None = None,
    max_memory: int | None = None,
) -> dict[str, RecipeResult]:
    """Run every recipe on every victim of ``target``, resuming from saved chunks.

    true_labels : (victims * batch,) used only by a recipe with ``labels = "known"`` (an oracle
    experiment); every other recipe gets the labels recovered from the updates. Victim ``v`` is
    always attacked with seed ``seed + 1 + v`` (any chunking draws the same numbers; the module
    docstring says how equal the results are). Labels go to
    the attacked model's device; the reconstructions come back to the CPU before they are saved.
    max_memory : the working-memory budget in bytes (None: :func:`neurofl.runs.memory.budget`);
    it sets the sub-chunk of victims attacked together (see the module docstring).

    Raises
    ------
    UserError
        Before any attack, when one victim of some recipe does not fit ``max_memory``.
    """
    out: dict[str, RecipeResult] = {}
    n, b = target.victims, target.batch
    dev = device_of(target.model)
    recovered: torch.Tensor | None = None
    # the budget is checked for the recipes with chunks left to compute (a finished row needs none)
    missing = [r for r in recipes if any(not store.chunk_path(r, k).is_file() for k in range(-(-n // CHUNK)))]
    sizes = chunk_sizes(target, missing, memory.budget() if max_memory is None else max_memory)
    for recipe in recipes:
        reason = why_not(target, recipe)
        if reason is not None:
            out[recipe.name] = RecipeResult(reason=reason)
            continue
        size = sizes.get(recipe.name, CHUNK)  # absent: every chunk is on disk
        label_source = getattr(recipe, "labels", None)  # an imprint recipe reads no labels
        if label_source == "known":
            labels = true_labels
        elif label_source in ("idlg",):
            recovered = row_labels(target, store, seed) if recovered is None else recovered
            labels = recovered
        else:
            labels = None
        t0 = time.perf_counter()
        prepare(target, recipe, seed, store.state_path(recipe))
        prepared = time.perf_counter() - t0
        chunks = []
        for k, start in enumerate(range(0, n, CHUNK)):
            stop = min(start + CHUNK, n)
            path = store.chunk_path(recipe, k)
            done = store.load(path)
            if done is None:
                t0 = time.perf_counter()
                parts = []
                for lo in range(start, stop, size):  # sub-chunks under the memory budget
                    hi = min(lo + size, stop)
                    inv = run_recipe(
                        target.chunk(lo, hi), recipe, None if labels is None else labels[lo * b : hi * b].to(dev),
                        seed + 1 + lo, cache=store.state_path(recipe),
                    )  # fmt: skip
                    parts.append({
                        "images": inv.images.detach().cpu().numpy().astype(np.float32),
                        "loss": inv.loss.detach().cpu().numpy().astype(np.float64),
                        "labels": (inv.labels if inv.labels is not None else torch.empty(0)).cpu().numpy()
                        .astype(np.int64),
                    })  # fmt: skip
                    del inv
                done = {key: np.concatenate([p[key] for p in parts]) for key in ("images", "loss", "labels")}
                done["seconds"] = np.asarray(time.perf_counter() - t0 + (prepared if k == 0 else 0.0), np.float64)
                store.save(path, done)
            chunks.append(done)
            if on_progress is not None:
                on_progress(label, recipe.name, stop, n)
        labs = [c["labels"] for c in chunks]
        out[recipe.name] = RecipeResult(
            images=np.concatenate([c["images"] for c in chunks]),
            loss=np.concatenate([c["loss"] for c in chunks]),
            labels=np.concatenate(labs) if all(len(x) for x in labs) else None,
            seconds=float(sum(float(c["seconds"]) for c in chunks)),
        )
    return out


def chunk_sizes(target: Target, recipes: list[Recipe], limit: int) -> dict[str, int]:
    """Victims attacked together per applicable recipe: the largest sub-chunk (at most
    :data:`CHUNK`) whose memory estimate fits ``limit`` bytes, or the whole chunk where
    :func:`whole_chunk` says so. Checked for every recipe before any runs.

    Raises
    ------
    UserError
        One line naming the recipe and the settings to lower when one victim does not fit.
    """
    applicable = [r for r in recipes if why_not(target, r) is None]
    if not applicable:
        return {}
    fp = memory.footprint(target.model, target.input_shape)
    if any(getattr(r, "labels", None) == "idlg" for r in applicable):
        need = memory.label_estimate(fp, target.batch)
        if need > limit:
            raise UserError(f"recovering the labels of a batch of {target.batch} needs about {memory.mib(need)}, "
                            f"more than the memory budget of {memory.mib(limit)}; lower --batch-size or the "
                            "profile's time steps, or raise --max-memory")  # fmt: skip
    shared = memory.stochastic_encoding(target)
    return {r.name: memory.chunk_size(target, r, limit, CHUNK, fp, fixed_chunk=whole_chunk(r, shared))
            for r in applicable}  # fmt: skip


def whole_chunk(recipe: Recipe, stochastic_encoding: bool) -> str | None:
    """Why ``recipe`` is always attacked on the whole saved chunk (never sub-chunked), or None.

    Learned inversion: its memory is the inverter's training (once per row, whatever the chunk)
    and a few values per victim, so a smaller chunk saves nothing; kept whole, its batched
    inference stays bit-identical to runs made before the budget. Gradient matching,
    disaggregation and Cocktail Party on a model with a stochastic input encoding: they draw the
    encoding from one generator per chunk, so another chunk would draw other spikes."""
    from neurofl.attacks.recipe import LearnedInversionRecipe, RgapRecipe

    if isinstance(recipe, LearnedInversionRecipe):
        return "learned inversion's memory is its inverter's training, which a smaller chunk does not shrink"
    if stochastic_encoding and not isinstance(recipe, RgapRecipe):
        return ("the model's stochastic input encoding is drawn per chunk of victims, so the chunk cannot "
                "shrink; --encoding direct avoids it")  # fmt: skip
    return None


def score_row(
    results: dict[str, RecipeResult],
    judge: Judge,
    truth: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    batch: int,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Judge each recipe and the per-sample worst case over those that ran, on victims of one batch
    size: :func:`score_batches` with one group."""
    return score_batches([(Samples(truth, labels, index, batch), results)], judge)


def score_batches(
    groups: list[tuple[Samples, dict[str, RecipeResult]]], judge: Judge
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Judge each recipe and the per-sample worst case over those that ran.

    ``groups``: the recipes' results on the updates of each batch size, with the samples they are
    scored against (reconstructions are paired with originals within batches of one size). Each
    group is judged on its own (:func:`neurofl.leakage.scoring.sample_scores`), the per-sample
    scores are concatenated in the groups' order, and every rate and interval is computed on the
    concatenation by the one scoring path. A recipe that does not apply to one group does not
    apply to the row (its reason names the group's batch size where there are several).

    Returns (the row's metrics with ``per_attack`` and ``best_attack`` (share of samples each
    attack was the best for), the worst case's reconstructions (None if no recipe applied))."""
    samples = [g for g, _ in groups]
    labels = np.concatenate([g.labels for g in samples])
    victims = sum(len(g.labels) // g.batch for g in samples)
    per_attack: dict[str, Any] = {}
    scored: dict[str, SampleScores] = {}
    for name in groups[0][1]:
        parts = [(g, res[name]) for g, res in groups]
        reason = next((_reason(g, r, len(groups)) for g, r in parts if r.reason is not None), None)
        if reason is not None:
            per_attack[name] = {"applicable": False, "reason": reason}
            continue
        s = concat_scores([_scores(judge, g, r) for g, r in parts])
        scored[name] = s
        seconds = sum(r.seconds for _, r in parts)
        row = {"applicable": True, **summary(s, 1, judge), "victims": victims, "seconds": seconds}
        hits = [label_hits(r.labels, g.labels, g.batch) for g, r in parts if r.labels is not None]
        row["label_accuracy"] = sum(hits) / len(labels) if len(hits) == len(parts) else None
        per_attack[name] = row
    if not scored:
        empty = {"asr": None, "asr_ci95": [None, None], "psnr": None, "ssim": None, "mse": None, "l2": None}
        return {**empty, "victims": victims, "samples": len(labels), "per_attack": per_attack,
                "best_attack": {}, "label_accuracy": None}, None  # fmt: skip
    combined, pick = worst_case(scored, judge.events)
    names = list(scored)
    row = {**summary(combined, 1, judge), "victims": victims}
    accs = [v["label_accuracy"] for v in per_attack.values() if v.get("label_accuracy") is not None]
    row["label_accuracy"] = max(accs) if accs else None
    row["best_attack"] = {names[i]: float(np.mean(pick == i)) for i in range(len(names))}
    row["per_attack"] = per_attack
    return row, combined.images


def _reason(group: Samples, result: RecipeResult, groups: int) -> str | None:
    """Why a recipe does not apply to a row, naming the batch size where the row has several."""
    if result.reason is None or groups == 1:
        return result.reason
    return f"batch {group.batch}: {result.reason}"


def _scores(judge: Judge, group: Samples, result: RecipeResult) -> SampleScores:
    assert result.images is not None and result.loss is not None  # an applicable recipe returned both
    return sample_scores(judge, result.images, result.loss, group.truth, group.labels, group.index, group.batch)
