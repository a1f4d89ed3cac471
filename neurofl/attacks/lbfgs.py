"""L-BFGS run independently for many problems at once (one per row).

``torch.optim.LBFGS`` treats all parameters as one problem, so a batch of victims would share
its curvature pairs and step sizes and the victims would interact. Here every row keeps its own
history; rows never mix, so a batched run equals running each row alone.
"""

from __future__ import annotations

import torch


class BatchedLBFGS:
    """Fixed-step L-BFGS (no line search) over ``rows`` independent problems of ``dim`` unknowns.

    The first step of each row is scaled by ``min(1, 1/|g|_1)`` (as ``torch.optim.LBFGS``); later
    steps take ``lr`` times the two-loop direction. A curvature pair is stored for a row only if
    ``y.s > 1e-10``; rows whose gradient is not finite are frozen.
    """

    def __init__(
        self,
        rows: int,
        dim: int,
        lr: float,
        history: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        self.lr = lr
        self.history = history
        self.s = torch.zeros(history, rows, dim, dtype=dtype, device=device)
        self.y = torch.zeros(history, rows, dim, dtype=dtype, device=device)
        self.rho = torch.zeros(history, rows, dtype=dtype, device=device)
        self.count = 0
        self.prev_grad: torch.Tensor | None = None
        self.prev_step: torch.Tensor | None = None
        self.gamma = torch.ones(rows, dtype=dtype, device=device)
        self.frozen = torch.zeros(rows, dtype=torch.bool, device=device)

    def step(self, z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """One step. z, grad: (rows, dim) -> the new z (rows, dim)."""
        grad = grad.detach()
        self.frozen |= ~torch.isfinite(grad).all(1)
        g = torch.where(self.frozen[:, None], torch.zeros_like(grad), grad)
        if self.prev_grad is None:
            t = (1.0 / g.abs().sum(1).clamp_min(1e-30)).clamp(max=1.0) * self.lr
            d = -g
        else:
            y = g - self.prev_grad
            s = self.prev_step
            assert s is not None  # set with prev_grad
            ys = (y * s).sum(1)
            ok = ys > 1e-10
            slot = self.count % self.history
            self.s[slot] = torch.where(ok[:, None], s, torch.zeros_like(s))
            self.y[slot] = torch.where(ok[:, None], y, torch.zeros_like(y))
            self.rho[slot] = torch.where(ok, 1.0 / ys.where(ok, torch.ones_like(ys)), torch.zeros_like(ys))
            self.gamma = torch.where(ok, ys / (y * y).sum(1).clamp_min(1e-30), self.gamma)
            self.count += 1
            d = -self._two_loop(g)
            t = torch.full_like(ys, self.lr)
        step = t[:, None] * d
        step = torch.where(self.frozen[:, None], torch.zeros_like(step), step)
        self.prev_grad, self.prev_step = g, step
        return z.detach() + step

    def _two_loop(self, g: torch.Tensor) -> torch.Tensor:
        n = min(self.count, self.history)
        order = [(self.count - 1 - k) % self.history for k in range(n)]  # newest first
        q = g.clone()
        alpha = {}
        for i in order:
            alpha[i] = self.rho[i] * (self.s[i] * q).sum(1)
            q -= alpha[i][:, None] * self.y[i]
        r = self.gamma[:, None] * q
        for i in reversed(order):
            beta = self.rho[i] * (self.y[i] * r).sum(1)
            r += self.s[i] * (alpha[i] - beta)[:, None]
        return r
