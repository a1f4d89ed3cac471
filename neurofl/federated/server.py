"""The server's side of a round: aggregate uploads, step the global model, evaluate it."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F

from neurofl.federated import defenses
from neurofl.federated.client import Update, set_weights, weights_of
from neurofl.federated.rng import torch_gen
from neurofl.federated.settings import FLConfig
from neurofl.runs.device import device_of


def weighted_mean(updates: list[Update], weights: list[int]) -> Update:
    """Mean of the clients' updates weighted by their sample counts (FedAvg's rule).

    updates: each name -> (1, *shape). Returns name -> (1, *shape).
    """
    total = float(sum(weights))

    def mean(name: str) -> torch.Tensor:
        # at least one update: the sum is a tensor, never its start value 0
        return cast(torch.Tensor, sum(u[name].double() * (w / total) for u, w in zip(updates, weights, strict=True)))

    return {name: mean(name).float() for name in updates[0]}


def aggregate(updates: list[Update], weights: list[int], cfg: FLConfig, round_: int) -> Update:
    """The round's aggregate of the uploads (each name -> (1, *shape), in client-id order).

    FedAvg's weighted mean; under ``dp`` at ``dp_level = "client"`` DP-FedAvg's server step
    instead: every upload clipped (again: the upload quantization may have moved it past the clip)
    to ``dp_clip``, their uniform mean, plus N(0, (dp_noise * dp_clip / k)^2) per entry for k
    uploads, drawn from the server's noise stream of the round.
    """
    if not (cfg.defense == "dp" and cfg.dp_level == "client"):
        return weighted_mean(updates, weights)
    mean = weighted_mean([defenses.clip(u, cfg.dp_clip) for u in updates], [1] * len(updates))
    gen = torch_gen(cfg.seed, "noise", round_, -1)
    std = cfg.dp_noise * cfg.dp_clip / len(updates)
    return {
        k: (v.double() + std * torch.randn(v.shape, generator=gen, dtype=torch.float64)).float()
        for k, v in mean.items()
    }


def apply_update(model: torch.nn.Module, aggregate: Update, cfg: FLConfig) -> None:
    """Step the global model: ``w - lr * g`` for FedSGD gradients, ``w + delta`` for FedAvg deltas."""
    w = weights_of(model)
    sign = -cfg.lr if cfg.update_kind == "gradient" else 1.0
    set_weights(model, {k: w[k] + sign * aggregate[k][0].to(w[k].device) for k in w})


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, chunk: int = 512
) -> dict[str, float]:
    """Accuracy and mean cross-entropy of the global model on the test split.

    x: (m, *input_shape), y: (m,). A stochastic encoding draws from a fixed stream, so the same
    weights always score the same.
    """
    gen = torch_gen(seed, "encode", 0, -1)
    dev = device_of(model)
    correct, loss = 0, 0.0
    for i in range(0, len(y), chunk):
        xs, ys = x[i : i + chunk].to(dev), y[i : i + chunk].to(dev)
        logits = model(xs, generator=gen)
        loss += float(F.cross_entropy(logits, ys, reduction="sum"))
        correct += int((logits.argmax(1) == ys).sum())
    return {"accuracy": correct / len(y), "loss": loss / len(y)}
