"""Client-side defenses on an update (the accounting of ``dp`` is :mod:`neurofl.federated.privacy`).

An update is ``name -> (1, *weight_shape)`` (one client). Order on the device: DP clip + noise or
pruning, then the profile's own upload quantization (``neurofl.profiles.quantize_update``).
"""

from __future__ import annotations

import torch

Update = dict[str, torch.Tensor]


def l2_norm(update: Update) -> float:
    """Euclidean norm of the whole update (all tensors together)."""
    return float(torch.sqrt(sum((t.double() ** 2).sum() for t in update.values())))


def clip(update: Update, clip: float) -> Update:
    """Scale the update to L2 norm at most ``clip`` (DP-FedAvg's client step, McMahan et al. 2018)."""
    factor = min(1.0, clip / max(l2_norm(update), 1e-12))
    return {name: t * factor for name, t in update.items()}


def clip_and_noise(update: Update, clip: float, noise: float, generator: torch.Generator) -> Update:
    """``dp_level = "local"``: scale the update to L2 norm at most ``clip``, then add Gaussian noise
    of standard deviation ``noise * clip`` to every entry (on the client)."""
    factor = min(1.0, clip / max(l2_norm(update), 1e-12))
    out = {}
    for name, t in update.items():
        z = torch.randn(t.shape, generator=generator, dtype=t.dtype)
        out[name] = t * factor + noise * clip * z
    return out


def prune(update: Update, keep: float) -> Update:
    """Keep the ``ceil(keep * size)`` largest-magnitude entries of each tensor, zero the rest
    (gradient pruning, the defense Zhu et al. 2019 found most effective against DLG)."""
    out = {}
    for name, t in update.items():
        flat = t.reshape(-1)
        k = max(1, int(-(-keep * flat.numel() // 1)))
        mask = torch.zeros_like(flat, dtype=torch.bool)
        mask[flat.abs().topk(k).indices] = True
        out[name] = (flat * mask).reshape(t.shape)
    return out


def dp_epsilon(noise: float, sample_rate: float, rounds: int, delta: float) -> float:
    """Epsilon after ``rounds`` steps of the subsampled Gaussian mechanism, from Opacus' RDP
    accountant used standalone (``inf`` without noise); :func:`neurofl.federated.privacy.epsilon`.

    noise : noise multiplier (std / clip); sample_rate : the subsampling rate of one step.
    """
    from neurofl.federated.privacy import epsilon

    return epsilon(noise, sample_rate, rounds, delta)
