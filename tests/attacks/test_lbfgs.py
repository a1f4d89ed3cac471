"""The batched L-BFGS solves each row's problem independently."""

from __future__ import annotations

import torch

from neurofl.attacks.lbfgs import BatchedLBFGS


def _quadratics(rows: int, dim: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(rows, dim, dim, generator=g, dtype=torch.float64)
    hess = a @ a.transpose(1, 2) + dim * torch.eye(dim, dtype=torch.float64)
    b = torch.randn(rows, dim, generator=g, dtype=torch.float64)
    return hess, b


def _run(hess, b, steps, lr=1.0):
    opt = BatchedLBFGS(len(b), b.shape[1], lr=lr, history=10, dtype=torch.float64)
    z = torch.zeros_like(b)
    for _ in range(steps):
        z = opt.step(z, torch.einsum("rij,rj->ri", hess, z) - b)
    return z


def test_converges_to_each_quadratic_minimum():
    hess, b = _quadratics(4, 6, 0)
    z = _run(hess, b, 60)
    torch.testing.assert_close(z, torch.linalg.solve(hess, b), rtol=1e-6, atol=1e-8)


def test_rows_do_not_interact():
    hess, b = _quadratics(5, 4, 1)
    together = _run(hess, b, 7)
    for i in range(5):
        torch.testing.assert_close(_run(hess[i : i + 1], b[i : i + 1], 7), together[i : i + 1])


def test_non_finite_rows_are_frozen():
    opt = BatchedLBFGS(2, 3, lr=1.0, history=5)
    z = torch.ones(2, 3)
    out = opt.step(z, torch.tensor([[float("nan"), 0, 0], [1.0, 1.0, 1.0]]))
    torch.testing.assert_close(out[0], z[0])
    assert not torch.equal(out[1], z[1])
