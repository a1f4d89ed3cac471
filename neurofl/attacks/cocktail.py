"""Cocktail Party Attack (Kariyappa et al., ICML 2023): unmix a batch update with ICA.

A fully connected first layer's batch update ``T = (1/B) sum_i D_i x_i^T`` (H rows of D pixels)
is, row by row, a linear mixture of the B inputs: read each pixel as one observation of H mixed
signals, whiten them to B components and find the rotation that makes the components most
non-Gaussian (FastICA, Hyvarinen 1999: log-cosh contrast, symmetric decorrelation). Natural images
are sparse and independent enough for their pixel distributions to be separated; the components
come back up to order, sign and scale. For an SNN with a rate or event input the first layer's
update mixes up to B*T spike frames; its top B components are their per-sample averages, so the
same unmixing reads rates.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from neurofl.attacks.inverting import Inversion, per_victim_generators
from neurofl.attacks.recipe import CocktailPartyRecipe
from neurofl.attacks.target import Target


def whiten(t: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` whitening of H mixtures of D samples. t: (V, H, D) float64 ->
    (z (V, k, D) whitened centered signals, w (V, k, H) the whitening matrix)."""
    centered = t - t.mean(-1, keepdim=True)
    cov = centered @ centered.transpose(1, 2) / t.shape[-1]
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(-1)[:, :k], evecs.flip(-1)[:, :, :k]
    w = (evecs / evals.clamp_min(1e-300).sqrt()[:, None, :]).transpose(1, 2)
    return w @ centered, w


def fastica(z: torch.Tensor, iterations: int, generators: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric FastICA with the log-cosh contrast on whitened signals, one start per victim.

    z : (V, k, D) -> (unmixing rotation (V, k, k), negentropy proxy (V,): the mean squared
    deviation of E[log cosh] from a Gaussian's, larger is more non-Gaussian)."""
    v, k, d = z.shape
    w = torch.stack([torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))[0] for g in generators])
    w = w.to(z.device)  # drawn (and orthonormalized) on the CPU: one seed, one start on any device
    for _ in range(iterations):
        y = w @ z
        g = torch.tanh(y)
        w_new = g @ z.transpose(1, 2) / d - (1 - g**2).mean(-1, keepdim=True) * w
        u, _, vh = torch.linalg.svd(w_new)
        w = u @ vh
    gauss = 0.3745672  # E[log cosh(nu)] for a standard normal nu
    contrast = ((torch.log(torch.cosh(w @ z)).mean(-1) - gauss) ** 2).mean(-1)
    return w, contrast


def cocktail_party(
    target: Target,
    recipe: CocktailPartyRecipe,
    labels: torch.Tensor,
    seed: int,
    on_step: Callable[[int], None] | None = None,
    typical_max: float = 1.0,
) -> Inversion:
    """Unmix each victim's first-layer update into its batch (see the module docstring).

    Each component's sign makes its mean positive (inputs are non-negative); its negative part is
    clipped and its maximum scaled to ``typical_max`` (the attacker's estimate from its auxiliary
    data). Returns images (victims * batch, *input_shape), loss (victims,) minus the best restart's
    contrast (NaN where the update is not finite) and the labels it was given.
    """
    b, v_count = target.batch, target.victims
    first = next(iter(target.gradients().values())).detach()
    t1 = first.reshape(v_count, first.shape[1], -1).double()
    finite = torch.isfinite(t1).flatten(1).all(1)
    t1 = torch.where(finite[:, None, None], t1, torch.zeros_like(t1))
    z, w_white = whiten(t1, b)
    best = torch.full((v_count,), -float("inf"), dtype=torch.float64, device=t1.device)
    unmix = torch.zeros(v_count, b, t1.shape[1], dtype=torch.float64, device=t1.device)
    gens = per_victim_generators(seed, v_count, recipe.restarts)
    for r in range(recipe.restarts):
        rot, contrast = fastica(z, recipe.ica_iterations, gens[r * v_count : (r + 1) * v_count])
        better = contrast > best
        best = torch.where(better, contrast, best)
        unmix = torch.where(better[:, None, None], rot @ w_white, unmix)
        if on_step is not None:
            on_step((r + 1) * recipe.ica_iterations)
    sources = unmix @ t1  # the rotation applied to the uncentered mixtures: (V, B, D)
    sources = sources * torch.where(sources.mean(-1, keepdim=True) < 0, -1.0, 1.0)
    sources = sources.clamp_min(0)
    sources = typical_max * sources / sources.amax(-1, keepdim=True).clamp_min(1e-300)
    images = torch.where(finite[:, None, None], sources, torch.full_like(sources, float("nan")))
    loss = torch.where(finite, -best, torch.full_like(best, float("nan")))
    return Inversion(images.float().clamp(0, 1).reshape(-1, *target.input_shape), loss.float(), labels)
