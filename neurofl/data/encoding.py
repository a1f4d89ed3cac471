"""Input encodings: how a static image enters a spiking network over T time steps."""

from __future__ import annotations

import torch


def direct(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Inject the analog input as a current every step (needs graded spikes).

    x: (batch, *shape) -> (batch, prod(shape), steps)
    """
    flat = x.reshape(x.shape[0], -1)
    return flat.unsqueeze(-1).expand(-1, -1, steps)


def rate(x: torch.Tensor, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli rate code: a pixel of intensity p spikes with probability p each step.

    The gradient is straight-through (d spikes / d x = 1 per step), so gradient inversion can
    optimize intensities. x: (batch, *shape) in [0, 1] -> (batch, prod(shape), steps) in {0, 1}.
    """
    p = direct(x, steps).clamp(0, 1)
    # drawn where the generator lives (neurofl's are CPU generators: one seed, one draw on any device)
    where = generator.device if generator is not None else p.device
    u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=where).to(p.device)
    spikes = (u < p).to(p.dtype)
    return p + (spikes - p).detach()


def regular(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Deterministic rate code: a pixel of intensity p emits ``floor((t + 1) p) - floor(t p)`` spikes
    at step t, i.e. ``floor(p * steps)`` spikes evenly spaced, the same every time.

    The gradient is straight-through, as :func:`rate`'s. x: (batch, *shape) in [0, 1] ->
    (batch, prod(shape), steps) in {0, 1}.
    """
    p = direct(x, steps).clamp(0, 1)
    t = torch.arange(steps + 1, dtype=p.dtype, device=p.device)
    counts = torch.floor(p[..., :1] * t)  # (batch, inputs, steps + 1): spikes emitted before each step
    spikes = counts[..., 1:] - counts[..., :-1]
    return p + (spikes - p).detach()


def encode(x: torch.Tensor, encoding: str, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dispatch on the encoding name (``direct``, ``rate`` or ``regular``)."""
    if encoding == "direct":
        return direct(x, steps)
    if encoding == "rate":
        return rate(x, steps, generator)
    if encoding == "regular":
        return regular(x, steps)
    raise ValueError(f"unknown encoding {encoding!r}")
