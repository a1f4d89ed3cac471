"""One attack run end to end: victims, their shared updates, labels, inversion, matching, scores.

Used by ``neurofl attack``. Updates are either computed here (FedSGD: each victim's batch
gradient, quantized as the profile's ``update`` says) or read from a federated run's capture.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurofl import __version__
from neurofl.attacks.fedavg import local_update
from neurofl.attacks.inverting import invert
from neurofl.attacks.labels import recover_labels
from neurofl.attacks.matching import best_assignment
from neurofl.attacks.recipe import AttackRecipe, load_recipe
from neurofl.data import Dataset, Splits, load_dataset, split_dataset
from neurofl.errors import UserError
from neurofl.gradients import per_sample_gradients
from neurofl.metrics import Oracle, attack_success, l2, mse, psnr, ssim
from neurofl.models import architecture_for, build_model
from neurofl.profiles import HardwareProfile, load_profile, quantize_update

# An exact reconstruction has infinite PSNR; per-victim values are capped here before averaging
# (100 dB is an RMS error of 1e-5 of the data range) and exact ones are counted separately.
PSNR_CAP_DB = 100.0


@dataclass(frozen=True)
class AttackConfig:
    """Everything that determines an attack run's result."""

    recipe: str
    model: str = "snn"
    profile: str = "loihi2"
    dataset: str = "digits"
    victims: int = 8
    batch_size: int = 1
    local_steps: int = 1
    local_lr: float = 0.1
    arch: str = "auto"  # mlp | conv | auto (neurofl.models.architecture_for)
    seed: int = 0
    iterations: int | None = None  # overrides the recipe's
    updates: Path | None = None
    data_dir: Path | None = None


@dataclass(frozen=True)
class Target:
    """What the attacker holds: the model the victims trained from and their updates.

    update: name -> (victims, *weight_shape): FedSGD gradients (``local_steps`` 1) or FedAvg weight
    deltas ``w_k - w_0`` after ``local_steps`` SGD steps of rate ``local_lr``; x, y: the private
    truth for scoring.
    """

    model: torch.nn.Module
    update: dict[str, torch.Tensor]
    x: torch.Tensor
    y: torch.Tensor
    batch: int
    input_shape: tuple[int, ...]
    local_steps: int = 1
    local_lr: float = 0.1
    profile: HardwareProfile | None = None  # the device's; None: the run's --profile


def fedsgd_target(cfg: AttackConfig, profile: HardwareProfile, ds: Dataset, splits: Splits) -> Target:
    """Draw victims from the clients' split and compute their quantized updates (FedSGD gradients,
    or FedAvg deltas when ``cfg.local_steps > 1``)."""
    need = cfg.victims * cfg.batch_size
    if need > len(splits.clients.y):
        raise UserError(f"--victims x --batch-size = {need} exceeds the {len(splits.clients.y)} client samples")
    idx = np.random.default_rng(cfg.seed).permutation(len(splits.clients.y))[:need]
    x = torch.from_numpy(splits.clients.x[idx])
    y = torch.from_numpy(splits.clients.y[idx])
    model = build_model(cfg.model, architecture_for(ds.input_shape, ds.classes, cfg.arch), profile, seed=cfg.seed)
    enc = torch.Generator().manual_seed(cfg.seed + 1000)  # the clients' private encoding randomness
    rnd = torch.Generator().manual_seed(cfg.seed + 2000)  # stochastic rounding
    if cfg.local_steps > 1:
        grads = local_update(model, x, y, cfg.batch_size, cfg.local_steps, cfg.local_lr, generator=enc)
    else:
        grads = per_sample_gradients(model, x, y, generator=enc, group=cfg.batch_size)
    update = {k: quantize_update(v.detach(), profile.update, rnd) for k, v in grads.items()}
    return Target(model, update, x, y, cfg.batch_size, tuple(ds.input_shape), cfg.local_steps, cfg.local_lr)


def captured_targets(updates: Path, seed: int) -> list[Target]:
    """Updates recorded by federated training (``neurofl fl``), grouped into one target per round
    and client setting (same global model, batch, kind, steps and rate) so they are attacked
    together. A one-step ``delta`` is ``-lr * gradient``; multi-step deltas are attacked by
    unrolling. Each update is built on its own device profile's model.
    """
    from neurofl.federated.capture import load_captured

    groups: dict[tuple, list] = {}
    for c in load_captured(Path(updates)):
        if c.true_inputs is None or c.true_labels is None:
            raise UserError(f"{updates}: round {c.round} client {c.client} has no true inputs to score against")
        key = (c.round, c.profile, c.model_kind, c.kind, c.batch, c.local_steps, c.lr)
        groups.setdefault(key, []).append(c)
    out = []
    for (_, profile, kind, how, batch, steps, lr), caps in groups.items():
        first = caps[0]
        prof = load_profile(profile)
        model = build_model(kind, first.arch, prof, seed=seed)
        model.load_state_dict(first.state_dict)
        update = {k: torch.cat([c.update[k] for c in caps]) for k in first.update}
        x = torch.cat([c.true_inputs for c in caps])
        y = torch.cat([c.true_labels for c in caps])
        shape = tuple(first.arch.input_shape)
        if how == "gradient" or steps == 1:
            grad = update if how == "gradient" else {k: -v / lr for k, v in update.items()}
            out.append(Target(model, grad, x, y, batch, shape, profile=prof))
        else:
            out.append(Target(model, update, x, y, batch, shape, steps, lr, prof))
    return out


def attack_target(t: Target, recipe: AttackRecipe, profile: HardwareProfile, seed: int, on_step=None) -> dict[str, Any]:
    """Labels, inversion and per-sample pairing for one target. Returns numpy arrays."""
    t0 = time.perf_counter()
    if recipe.labels == "known":
        labels = t.y
    elif recipe.labels == "idlg":
        # A delta points against the gradient: flip it so the gradient-sign rules apply.
        as_grad = t.update if t.local_steps == 1 else {k: -v for k, v in t.update.items()}
        labels = recover_labels(t.model, as_grad, t.batch, t.input_shape, seed)
    else:
        labels = None
    inv = invert(
        t.model, t.update, labels, t.input_shape, recipe, seed, batch=t.batch, on_step=on_step,
        profile=t.profile or profile, local_steps=t.local_steps, local_lr=t.local_lr,
    )
    seconds = time.perf_counter() - t0
    truth = t.x.numpy()
    images = best_assignment(inv.images.numpy(), truth, t.batch)
    true_y = t.y.numpy()
    hits = label_hits(inv.labels.numpy(), true_y, t.batch) if inv.labels is not None else 0
    return {
        "images": images, "truth": truth, "y": true_y, "loss": inv.loss.numpy(), "label_hits": hits, "seconds": seconds
    }


def label_hits(found: np.ndarray, true: np.ndarray, batch: int) -> int:
    """Correct labels, counted per batch as a multiset match (order within a batch is arbitrary).
    found, true: (victims * batch,) int"""
    size = int(max(found.max(initial=0), true.max(initial=0))) + 1
    hits = 0
    for i in range(0, len(true), batch):
        a = np.bincount(found[i : i + batch], minlength=size)
        b = np.bincount(true[i : i + batch], minlength=size)
        hits += int(np.minimum(a, b).sum())
    return hits


def run_attack(cfg: AttackConfig, on_step=None) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Run the attack. Returns (report dict, reconstructions, originals)."""
    if cfg.victims < 1 or cfg.batch_size < 1:
        raise UserError("--victims and --batch-size must be >= 1")
    recipe = load_recipe(cfg.recipe)
    if cfg.iterations is not None:
        from dataclasses import replace

        recipe = replace(recipe, iterations=cfg.iterations)
    profile = load_profile(cfg.profile)
    ds = load_dataset(cfg.dataset, cfg.data_dir)
    splits = split_dataset(ds, cfg.seed)
    if cfg.updates is not None:
        targets = captured_targets(cfg.updates, cfg.seed)
    else:
        targets = [fedsgd_target(cfg, profile, ds, splits)]
    oracle = Oracle(cfg.seed).fit(splits.oracle.x, splits.oracle.y)
    parts = [attack_target(t, recipe, profile, cfg.seed + 1, on_step) for t in targets]
    rec = np.concatenate([p["images"] for p in parts])
    truth = np.concatenate([p["truth"] for p in parts])
    y = np.concatenate([p["y"] for p in parts])
    loss = np.concatenate([p["loss"] for p in parts])
    ok = np.isfinite(rec.reshape(len(rec), -1)).all(1)
    asr = attack_success(oracle, rec, y)

    def mean(f) -> float | None:
        return float(np.mean(f(rec[ok], truth[ok]))) if ok.any() else None

    row = {
        "model": cfg.model if cfg.updates is None else ("snn" if hasattr(targets[0].model, "blocks") else "ann"),
        "profile": profile.name,
        "victims": int(len(loss)),
        "samples": int(len(y)),
        "asr": asr.value,
        "asr_ci95": list(asr.ci95),
        "psnr": mean(lambda a, b: np.minimum(psnr(a, b), PSNR_CAP_DB)),
        "psnr_median": float(np.median(np.minimum(psnr(rec[ok], truth[ok]), PSNR_CAP_DB))) if ok.any() else None,
        "exact": int((mse(rec[ok], truth[ok]) == 0).sum()),
        "ssim": mean(ssim),
        "mse": mean(mse),
        "l2": mean(l2),
        "label_accuracy": sum(p["label_hits"] for p in parts) / len(y) if recipe.labels != "known" else 1.0,
        "gradient_distance": float(np.nanmean(loss)) if np.isfinite(loss).any() else None,
        "failed": int((~np.isfinite(loss)).sum()),
        "seconds": float(sum(p["seconds"] for p in parts)),
    }
    report = {
        "neurofl_version": __version__,
        "dataset": cfg.dataset,
        "attack": recipe.name,
        "attack_iterations": recipe.iterations,
        "profile": profile.name,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "local_steps": cfg.local_steps,
        "updates": str(cfg.updates) if cfg.updates else None,
        "chance": 1.0 / ds.classes,
        "results": [row],
    }
    return report, rec, truth
