"""What a client does in one round: train on its private data in the profile's arithmetic and
produce the update it uploads (defended, then quantized in the profile's update format).

The model's forward already runs in the profile's arithmetic (weights on the chip's grid through
the straight-through pre-hook, the chip's input encoding). Gradients come from
:func:`neurofl.gradients.per_sample_gradients`, so a client's update is exactly what the attack
code differentiates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurofl.federated import defenses
from neurofl.federated.rng import numpy_rng, torch_gen
from neurofl.federated.settings import FLConfig
from neurofl.gradients import per_sample_gradients
from neurofl.profiles import HardwareProfile, quantize_update

Update = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ClientData:
    """One client's private samples. x: (n, *input_shape) float32 in [0, 1]; y: (n,) int64."""

    client: int
    x: torch.Tensor
    y: torch.Tensor


@dataclass(frozen=True)
class ClientResult:
    """A client's upload. update: name -> (1, *weight_shape) as the server receives it;
    num_examples: samples the update was computed on (its aggregation weight);
    inputs, labels: the samples of the first local step (kept only to score leakage)."""

    client: int
    update: Update
    num_examples: int
    inputs: torch.Tensor
    labels: torch.Tensor


def weights_of(model: torch.nn.Module) -> Update:
    """The trainable weights, name -> tensor (a detached copy), in ``weight_layers()`` order."""
    params = dict(model.named_parameters())
    return {name: params[name].detach().clone() for name, _ in model.weight_layers()}


def set_weights(model: torch.nn.Module, weights: Update) -> None:
    """Overwrite the model's trainable weights in place."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, w in weights.items():
            params[name].copy_(w)


def _minibatches(data: ClientData, cfg: FLConfig, round_: int, steps: int) -> list[np.ndarray]:
    """The sample indices of the client's first ``steps`` local steps (without replacement each)."""
    b = min(cfg.batch, len(data.y))
    rng = numpy_rng(cfg.seed, "batch", round_, data.client)
    return [np.sort(rng.choice(len(data.y), b, replace=False)) for _ in range(steps)]


def first_batch(data: ClientData, cfg: FLConfig, round_: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples of the client's first local step in ``round_``: (b, *input_shape), (b,)."""
    idx = _minibatches(data, cfg, round_, 1)[0]
    return data.x[idx], data.y[idx]


def deterministic_forward(model: torch.nn.Module) -> bool:
    """True when the forward pass draws no random numbers (so clients can share one batch)."""
    return getattr(model, "encoding", "direct") == "direct"


def raw_updates(model: torch.nn.Module, clients: list[ClientData], cfg: FLConfig, round_: int) -> list[tuple]:
    """Undefended updates of ``clients`` starting from the model's current weights.

    Returns one ``(update, num_examples, inputs, labels)`` per client, update: name -> (1, *shape):
    the mean batch gradient (FedSGD) or the weight delta after ``local_steps`` SGD steps (FedAvg,
    FedProx). The model's weights are unchanged on return.
    """
    if cfg.vectorize and cfg.local_steps == 1 and deterministic_forward(model):
        return _raw_vectorized(model, clients, cfg, round_)
    return [_raw_one(model, c, cfg, round_) for c in clients]


def _raw_one(model: torch.nn.Module, data: ClientData, cfg: FLConfig, round_: int) -> tuple:
    enc = torch_gen(cfg.seed, "encode", round_, data.client)
    start = weights_of(model)
    batches = _minibatches(data, cfg, round_, cfg.local_steps)
    first = batches[0]
    try:
        w = {k: v.clone() for k, v in start.items()}
        for idx in batches:
            g = per_sample_gradients(model, data.x[idx], data.y[idx], generator=enc, group=len(idx))
            if cfg.strategy == "fedsgd":
                return g, len(idx), data.x[idx], data.y[idx]
            for name in w:
                grad = g[name][0]
                if cfg.strategy == "fedprox":
                    grad = grad + cfg.mu * (w[name] - start[name])
                w[name] = w[name] - cfg.lr * grad
            set_weights(model, w)
        delta = {k: (w[k] - start[k]).unsqueeze(0) for k in w}
        return delta, cfg.local_steps * len(first), data.x[first], data.y[first]
    finally:
        set_weights(model, start)


def _raw_vectorized(
    model: torch.nn.Module, clients: list[ClientData], cfg: FLConfig, round_: int
) -> list[tuple]:
    picks = [_minibatches(c, cfg, round_, 1)[0] for c in clients]
    out: list[tuple | None] = [None] * len(clients)
    for b in sorted({len(p) for p in picks}):  # one batched pass per batch size
        members = [i for i, p in enumerate(picks) if len(p) == b]
        x = torch.cat([clients[i].x[picks[i]] for i in members])
        y = torch.cat([clients[i].y[picks[i]] for i in members])
        g = per_sample_gradients(model, x, y, group=b)
        for j, i in enumerate(members):
            u = {k: v[j : j + 1] for k, v in g.items()}
            if cfg.strategy != "fedsgd":
                u = {k: -cfg.lr * v for k, v in u.items()}  # one SGD step from the global weights
            out[i] = (u, b, clients[i].x[picks[i]], clients[i].y[picks[i]])
    return out  # type: ignore[return-value]


def upload(update: Update, client: int, cfg: FLConfig, profile: HardwareProfile, round_: int) -> Update:
    """Apply the client-side defense, then the profile's upload quantization (under ``secagg``,
    then SecAgg+'s clipping to ``secagg_clip``, which Flower's ``secaggplus_mod`` applies itself)."""
    if cfg.defense == "dp":
        update = defenses.clip_and_noise(
            update, cfg.dp_clip, cfg.dp_noise, torch_gen(cfg.seed, "noise", round_, client)
        )
    elif cfg.defense == "prune":
        update = defenses.prune(update, cfg.prune_keep)
    gen = torch_gen(cfg.seed, "rounding", round_, client)
    out = {k: quantize_update(v.detach(), profile.update, generator=gen) for k, v in update.items()}
    if cfg.defense == "secagg":
        out = {k: v.clamp(-cfg.secagg_clip, cfg.secagg_clip) for k, v in out.items()}
    return out


def client_round(
    model: torch.nn.Module, clients: list[ClientData], cfg: FLConfig, profile: HardwareProfile, round_: int
) -> list[ClientResult]:
    """Every listed client's upload for ``round_`` (the model holds the global weights)."""
    raws = raw_updates(model, clients, cfg, round_)
    return [
        ClientResult(c.client, upload(u, c.client, cfg, profile, round_), n, xs, ys)
        for c, (u, n, xs, ys) in zip(clients, raws, strict=True)
    ]
