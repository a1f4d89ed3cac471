"""What a client does in one round: train on its private data in the profile's arithmetic and
produce the update it uploads (defended, then quantized in the profile's update format).

The model's forward already runs in the profile's arithmetic (weights on the chip's grid through
the straight-through pre-hook, the chip's input encoding). Gradients come from
:func:`neurofl.leakage.gradients.per_sample_gradients`, so a client's update is exactly what the attack
code differentiates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from neurofl.federated import defenses
from neurofl.federated.rng import numpy_rng, torch_gen
from neurofl.federated.settings import FLConfig
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.profiles import HardwareProfile, quantize_update
from neurofl.runs.device import device_of

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
    num_examples: its aggregation weight (the batch; FedAvg: local steps x the batch of a step);
    inputs, labels: the samples the update was computed on, in step order (:func:`trained_batch`;
    kept only to score leakage); minibatch: samples per local step when the steps walk ``inputs``
    in consecutive minibatches (None: every step on all of ``inputs``)."""

    client: int
    update: Update
    num_examples: int
    inputs: torch.Tensor
    labels: torch.Tensor
    minibatch: int | None = None


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


def dp_sgd(cfg: FLConfig) -> bool:
    """Whether clients train with DP-SGD (``defense = "dp"`` at ``dp_level = "sample"``)."""
    return cfg.defense == "dp" and cfg.dp_level == "sample"


def epoch_walk(n: int, cfg: FLConfig) -> tuple[int, int]:
    """How a client of ``n`` samples takes its local steps outside DP-SGD: ``(m, j)``, ``j``
    disjoint minibatches of ``m`` samples, step k on minibatch k mod j.

    m = min(batch, n) (a client with fewer samples than a batch: one minibatch of all of them);
    j = min(local_steps, n // m): one local epoch over K * batch samples when the client holds that
    many, else the floor(n / batch) disjoint minibatches it holds, walked cyclically (the n mod
    batch samples left over sit out the round; the draw changes every round). FedSGD: (m, 1).
    """
    m = min(cfg.batch, n)
    return m, (min(cfg.local_steps, n // m) if m else 1)


def _epoch(data: ClientData, cfg: FLConfig, round_: int) -> list[np.ndarray]:
    """The distinct minibatches a client outside DP-SGD walks in ``round_``, in step order
    (:func:`epoch_walk`): one draw of ``j * m`` of its samples without replacement, cut into ``j``
    consecutive minibatches, each sorted. With one minibatch (FedSGD, one local step, or a client
    holding fewer than two batches) this is the draw FedSGD has always made."""
    n = len(data.y)
    rng = numpy_rng(cfg.seed, "batch", round_, data.client)
    m, j = epoch_walk(n, cfg)
    idx = rng.choice(n, m * j, replace=False)
    return [np.sort(idx[i * m : (i + 1) * m]) for i in range(j)]


def _minibatches(data: ClientData, cfg: FLConfig, round_: int) -> list[np.ndarray]:
    """The sample indices of each of the client's ``local_steps`` steps in ``round_``.

    Outside DP-SGD, step k takes minibatch k mod j of :func:`_epoch` (the steps walk j disjoint
    minibatches of ``batch`` samples, as :func:`neurofl.attacks.fedavg.local_update` unrolls them
    with ``minibatch = batch``). Under DP-SGD each step is an independent Poisson sample at rate
    ``batch / n`` (what the accountant assumes; it may be empty)."""
    if dp_sgd(cfg):
        n = len(data.y)
        rng = numpy_rng(cfg.seed, "batch", round_, data.client)
        q = min(1.0, cfg.batch / n)
        return [np.flatnonzero(rng.random(n) < q) for _ in range(cfg.local_steps)]
    parts = _epoch(data, cfg, round_)
    return [parts[k % len(parts)] for k in range(cfg.local_steps)]


def first_batch(data: ClientData, cfg: FLConfig, round_: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples of the client's first local step in ``round_``: (b, *input_shape), (b,)."""
    idx = _minibatches(data, cfg, round_)[0]
    return data.x[idx], data.y[idx]


def _trained(steps: list[np.ndarray], n: int, cfg: FLConfig) -> np.ndarray:
    """:func:`trained_batch`'s sample indices, from the ``steps`` of :func:`_minibatches` of a
    client of ``n`` samples: the first step's under DP-SGD, else the distinct minibatches the steps
    walk (the first j of them, :func:`epoch_walk`), in step order."""
    return steps[0] if dp_sgd(cfg) else np.concatenate(steps[: epoch_walk(n, cfg)[1]])


def step_minibatch(n: int, cfg: FLConfig) -> int | None:
    """:func:`trained_batch`'s ``minibatch`` for a client of ``n`` samples (None: every step on
    all of its trained samples)."""
    if dp_sgd(cfg):
        return None
    m, j = epoch_walk(n, cfg)
    return m if j > 1 else None


def trained_batch(data: ClientData, cfg: FLConfig, round_: int) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """The samples the client's update of ``round_`` was computed on, to score an attack against:
    ``(x, y, minibatch)``, x: (B, *input_shape), y: (B,).

    Outside DP-SGD: the B = j * m distinct samples of its steps (:func:`epoch_walk`) in step order,
    with ``minibatch`` m when j > 1 (step k on ``[(k mod j) m, (k mod j + 1) m)``, exactly
    :func:`neurofl.attacks.fedavg.local_update` with ``minibatch=m``), else None (every step on all
    B). Under DP-SGD: the first step's Poisson sample and None (the later steps' samples are other,
    independent draws)."""
    idx = _trained(_minibatches(data, cfg, round_), len(data.y), cfg)
    return data.x[idx], data.y[idx], step_minibatch(len(data.y), cfg)


def deterministic_forward(model: torch.nn.Module) -> bool:
    """True when the forward pass draws no random numbers (so clients can share one batch)."""
    return getattr(model, "encoding", "direct") == "direct"


def raw_updates(model: torch.nn.Module, clients: list[ClientData], cfg: FLConfig, round_: int) -> list[tuple]:
    """Undefended updates of ``clients`` starting from the model's current weights.

    Returns one ``(update, num_examples, inputs, labels)`` per client, update: name -> (1, *shape):
    the mean batch gradient (FedSGD) or the weight delta after ``local_steps`` SGD steps (FedAvg,
    FedProx); inputs, labels: :func:`trained_batch`'s samples. The model's weights are unchanged on
    return.
    """
    if cfg.vectorize and cfg.local_steps == 1 and deterministic_forward(model) and not dp_sgd(cfg):
        return _raw_vectorized(model, clients, cfg, round_)
    return [_raw_one(model, c, cfg, round_) for c in clients]


def _raw_one(model: torch.nn.Module, data: ClientData, cfg: FLConfig, round_: int) -> tuple:
    dev = device_of(model)  # the client's data stays on the CPU; each batch is moved to the model
    enc = torch_gen(cfg.seed, "encode", round_, data.client)
    start = weights_of(model)
    batches = _minibatches(data, cfg, round_)
    first = batches[0]
    trained = _trained(batches, len(data.y), cfg)  # the first step's samples, or every step's (in step order)
    private = dp_sgd(cfg)
    noise = torch_gen(cfg.seed, "noise", round_, data.client) if private else None
    weight = min(cfg.batch, len(data.y)) if private else len(first)  # DP-SGD: the expected batch
    try:
        w = {k: v.clone() for k, v in start.items()}
        for idx in batches:
            x, y = data.x[idx].to(dev), data.y[idx].to(dev)
            if private:
                assert noise is not None  # drawn for every DP-SGD client above
                g = private_gradient(model, x, y, cfg, weight, enc, noise)
            else:
                g = per_sample_gradients(model, x, y, generator=enc, group=len(idx))
            if cfg.strategy == "fedsgd":
                return g, weight, data.x[idx], data.y[idx]
            for name in w:
                grad = g[name][0]
                if cfg.strategy == "fedprox":
                    grad = grad + cfg.mu * (w[name] - start[name])
                w[name] = w[name] - cfg.lr * grad
            set_weights(model, w)
        delta = {k: (w[k] - start[k]).unsqueeze(0) for k in w}
        return delta, cfg.local_steps * weight, data.x[trained], data.y[trained]
    finally:
        set_weights(model, start)


def private_gradient(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: FLConfig,
    expected: int,
    encoding: torch.Generator,
    noise: torch.Generator,
) -> Update:
    """One DP-SGD gradient (Abadi et al. 2016, as Opacus computes it): every sample's gradient
    clipped to L2 norm ``dp_clip`` (all tensors together), summed, plus N(0, (dp_noise *
    dp_clip)^2) per entry, divided by the expected batch size ``expected``.

    x: (m, *input_shape), y: (m,); m may be 0 (an empty Poisson sample: the result is noise).
    Returns name -> (1, *weight_shape).
    """
    shapes = {k: v.shape for k, v in weights_of(model).items()}
    dev = device_of(model)
    if len(y):
        per = per_sample_gradients(model, x, y, generator=encoding, group=1)  # name -> (m, *shape)
        # (a model has at least one weight tensor: the sum is a tensor, never the start value 0)
        norms = torch.sqrt(cast(torch.Tensor, sum(g.double().flatten(1).pow(2).sum(1) for g in per.values())))
        factor = (cfg.dp_clip / norms.clamp_min(1e-12)).clamp(max=1.0)
        total = {k: torch.einsum("n,n...->...", factor, g.double()) for k, g in per.items()}
    else:
        total = {k: torch.zeros(s, dtype=torch.float64, device=dev) for k, s in shapes.items()}
    std = cfg.dp_noise * cfg.dp_clip
    return {  # the noise is drawn on the CPU (one seed, one draw on any device)
        k: ((total[k] + std * torch.randn(shapes[k], generator=noise, dtype=torch.float64).to(dev)) / expected)
        .float()
        .unsqueeze(0)
        for k in shapes
    }


def _raw_vectorized(
    model: torch.nn.Module, clients: list[ClientData], cfg: FLConfig, round_: int
) -> list[tuple]:
    picks = [_minibatches(c, cfg, round_)[0] for c in clients]  # local_steps == 1: the one minibatch
    out: list[tuple | None] = [None] * len(clients)
    for b in sorted({len(p) for p in picks}):  # one batched pass per batch size
        members = [i for i, p in enumerate(picks) if len(p) == b]
        dev = device_of(model)
        x = torch.cat([clients[i].x[picks[i]] for i in members]).to(dev)
        y = torch.cat([clients[i].y[picks[i]] for i in members]).to(dev)
        g = per_sample_gradients(model, x, y, group=b)
        for j, i in enumerate(members):
            u = {k: v[j : j + 1] for k, v in g.items()}
            if cfg.strategy != "fedsgd":
                u = {k: -cfg.lr * v for k, v in u.items()}  # one SGD step from the global weights
            out[i] = (u, b, clients[i].x[picks[i]], clients[i].y[picks[i]])
    return out  # type: ignore[return-value]


def upload(update: Update, client: int, cfg: FLConfig, profile: HardwareProfile, round_: int) -> Update:
    """Apply the client-side defense, then the profile's upload quantization (under ``secagg``,
    then SecAgg+'s clipping to ``secagg_clip``, which Flower's ``secaggplus_mod`` applies itself).

    DP: at ``dp_level`` ``local`` the client clips its update and adds the noise; at ``client`` it
    only clips (the server adds the noise, :func:`neurofl.federated.server.aggregate`); at
    ``sample`` the update already is DP-SGD's (:func:`private_gradient`). All of it runs on the
    CPU (the update is moved there first), where the defenses' and rounding's noise is drawn."""
    update = {k: v.cpu() for k, v in update.items()}
    if cfg.defense == "dp" and cfg.dp_level == "local":
        update = defenses.clip_and_noise(
            update, cfg.dp_clip, cfg.dp_noise, torch_gen(cfg.seed, "noise", round_, client)
        )
    elif cfg.defense == "dp" and cfg.dp_level == "client":
        update = defenses.clip(update, cfg.dp_clip)
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
        ClientResult(c.client, upload(u, c.client, cfg, profile, round_), n, xs, ys, step_minibatch(len(c.y), cfg))
        for c, (u, n, xs, ys) in zip(clients, raws, strict=True)
    ]
