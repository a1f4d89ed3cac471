"""One row of a leakage report: every recipe of an attack (or suite) on one model's shared updates.

The evaluation core that ``evaluate``, ``attack`` and the scripts share. :func:`attack_row` runs
each applicable recipe on chunks of :data:`CHUNK` victims and keeps every finished chunk on disk
(:class:`RowStore`), so an interrupted run resumes where it stopped and ends with the same numbers;
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
from neurofl.io.atomic import atomic_write_bytes
from neurofl.leakage.scoring import Judge, SampleScores, label_accuracy, sample_scores, summary, worst_case
from neurofl.runs.device import device_of
from neurofl.runs.identity import config_identity, keyed

CHUNK = 16  # victims attacked together; also the resume granularity

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
) -> dict[str, RecipeResult]:
    """Run every recipe on every victim of ``target``, resuming from saved chunks.

    true_labels : (victims * batch,) used only by a recipe with ``labels = "known"`` (an oracle
    experiment); every other recipe gets the labels recovered from the updates. Victim ``v`` is
    always attacked with seed ``seed + 1 + v`` (any chunking gives the same result). Labels go to
    the attacked model's device; the reconstructions come back to the CPU before they are saved.
    """
    out: dict[str, RecipeResult] = {}
    n, b = target.victims, target.batch
    dev = device_of(target.model)
    recovered: torch.Tensor | None = None
    for recipe in recipes:
        reason = why_not(target, recipe)
        if reason is not None:
            out[recipe.name] = RecipeResult(reason=reason)
            continue
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
                inv = run_recipe(
                    target.chunk(start, stop), recipe, None if labels is None else labels[start * b : stop * b].to(dev),
                    seed + 1 + start, cache=store.state_path(recipe),
                )  # fmt: skip
                done = {
                    "images": inv.images.detach().cpu().numpy().astype(np.float32),
                    "loss": inv.loss.detach().cpu().numpy().astype(np.float64),
                    "labels": (inv.labels if inv.labels is not None else torch.empty(0)).cpu().numpy().astype(np.int64),
                    "seconds": np.asarray(time.perf_counter() - t0 + (prepared if k == 0 else 0.0), np.float64),
                }
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


def score_row(
    results: dict[str, RecipeResult],
    judge: Judge,
    truth: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    batch: int,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Judge each recipe and the per-sample worst case over those that ran.

    Returns (the row's metrics with ``per_attack`` and ``best_attack`` (share of samples each
    attack was the best for), the worst case's reconstructions (None if no recipe applied))."""
    per_attack: dict[str, Any] = {}
    scored: dict[str, SampleScores] = {}
    for name, res in results.items():
        if res.reason is not None:
            per_attack[name] = {"applicable": False, "reason": res.reason}
            continue
        assert res.images is not None and res.loss is not None  # an applicable recipe returned both
        s = sample_scores(judge, res.images, res.loss, truth, labels, index, batch)
        scored[name] = s
        row = {"applicable": True, **summary(s, batch, judge), "seconds": res.seconds}
        row["label_accuracy"] = label_accuracy(res.labels, labels, batch) if res.labels is not None else None
        per_attack[name] = row
    if not scored:
        empty = {"asr": None, "asr_ci95": [None, None], "psnr": None, "ssim": None, "mse": None, "l2": None}
        return {**empty, "victims": len(labels) // batch, "samples": len(labels), "per_attack": per_attack,
                "best_attack": {}, "label_accuracy": None}, None  # fmt: skip
    combined, pick = worst_case(scored, judge.events)
    names = list(scored)
    row = summary(combined, batch, judge)
    accs = [v["label_accuracy"] for v in per_attack.values() if v.get("label_accuracy") is not None]
    row["label_accuracy"] = max(accs) if accs else None
    row["best_attack"] = {names[i]: float(np.mean(pick == i)) for i in range(len(names))}
    row["per_attack"] = per_attack
    return row, combined.images
