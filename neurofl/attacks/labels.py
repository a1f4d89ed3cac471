"""Label recovery from a shared update: iDLG (Zhao et al. 2020) at batch 1, a count estimate above."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls

from neurofl.leakage.gradients import per_sample_gradients
from neurofl.runs.device import device_of

CALIBRATION_CHUNK = 64  # probe samples per forward pass of count_labels' calibration (neurofl/runs/memory.py)


def idlg_labels(last_weight_grad: torch.Tensor) -> torch.Tensor:
    """Recover each victim's label from its last layer's weight gradient.

    With cross-entropy and non-negative inputs to the last layer (sigmoid activations or spike
    counts), the true class is the only row whose gradient is non-positive: its row sum is the
    minimum.

    last_weight_grad: (victims, classes, *fan_in) -> labels (victims,) int64
    """
    return last_weight_grad.reshape(last_weight_grad.shape[0], last_weight_grad.shape[1], -1).sum(-1).argmin(1)


def row_sums(last_weight_grad: torch.Tensor) -> torch.Tensor:
    """(victims, classes, *fan_in) -> (victims, classes)"""
    return last_weight_grad.reshape(last_weight_grad.shape[0], last_weight_grad.shape[1], -1).sum(-1)


def count_labels(
    model: torch.nn.Module,
    last_weight_grad: torch.Tensor,
    batch: int,
    input_shape: tuple[int, ...],
    seed: int,
    probes: int = 16,
    calibration: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Estimate each victim's label multiset from its batch-mean last-layer gradient.

    The attacker calibrates on its own inputs: ``R[c]`` is the mean last-layer row-sum vector of
    one sample of class ``c`` (``calibration``: the attacker's labelled auxiliary inputs, up to
    ``probes`` per class; without them, uniform random inputs). A batch's row sums are then about
    ``R^T n / batch`` for the label counts ``n``; non-negative least squares gives ``n``, rounded to
    ``batch`` labels by largest remainder (the idea of Wainakh et al. 2022's LLG+, calibrated on the
    attacker's own model).

    last_weight_grad : (victims, classes, *fan_in), the mean over each victim's ``batch`` samples
    Returns labels (victims * batch,) int64, sorted within each victim.
    """
    classes = last_weight_grad.shape[1]
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((probes * classes, *input_shape), generator=gen)
    y = torch.arange(classes).repeat(probes)
    if calibration is not None:
        cx, cy = calibration
        picks = [torch.nonzero(cy == c).flatten()[:probes] for c in range(classes)]
        if all(len(p) for p in picks):
            idx = torch.cat(picks)
            x, y = cx[idx], cy[idx]
    dev = device_of(model)
    x, y = x.to(dev), y.to(dev)
    parts = []
    for start in range(0, len(y), CALIBRATION_CHUNK):  # bounded memory: 1,600 probes of a CIFAR-100 SNN took >20 GB
        xs, ys = x[start : start + CALIBRATION_CHUNK], y[start : start + CALIBRATION_CHUNK]
        with torch.enable_grad():
            grads = per_sample_gradients(model, xs.clone().requires_grad_(True), ys, generator=gen)
        parts.append(row_sums(list(grads.values())[-1].detach()))
        del grads
    last = torch.cat(parts)  # (probes * classes, classes)
    calib = np.stack([last[y == c].mean(0).double().cpu().numpy() for c in range(classes)])  # R[c_true, c]
    sums = row_sums(last_weight_grad.detach()).double().cpu().numpy() * batch
    out = []
    for s in sums:
        n, _ = nnls(calib.T, s)
        n = n * batch / n.sum() if n.sum() > 0 else np.full(classes, batch / classes)
        counts = np.floor(n).astype(int)
        for c in np.argsort(-(n - counts))[: batch - counts.sum()]:
            counts[c] += 1
        out.append(np.repeat(np.arange(classes), counts))
    return torch.from_numpy(np.concatenate(out)).long().to(last_weight_grad.device)


def recover_labels(
    model: torch.nn.Module,
    target: dict[str, torch.Tensor],
    batch: int,
    input_shape: tuple[int, ...],
    seed: int,
    calibration: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """iDLG at batch 1, the count estimate above (calibrated on ``calibration`` inputs and labels
    where given). target: name -> (victims, ...) -> (victims * batch,)"""
    last = target[[k for k in target if k.endswith("weight")][-1]]
    if batch == 1:
        return idlg_labels(last)
    return count_labels(model, last, batch, input_shape, seed, calibration=calibration)


def reduced_nnls(a: np.ndarray, b: np.ndarray, maxiter: int | None = None) -> np.ndarray:
    """``argmin_{x >= 0} |a x - b|`` solved on the triangular factor of ``[a | b]``.

    With ``[a | b] = Q R`` (``Q``'s columns orthonormal), ``|a x - b| = |R[:, :n] x - R[:, n]|``
    for every ``x``, so both problems have the same minimizer; the factor has at most ``n + 1``
    rows, so the active-set iterations no longer run over ``a``'s ``m`` rows (a label solve's
    ``m`` is the model's parameter count).

    a : (m, n); b : (m,) -> x (n,) non-negative

    >>> a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> reduced_nnls(a, np.array([1.0, -1.0, 0.0])).round(6).tolist()
    [0.5, 0.0]
    """
    n = a.shape[1]
    r: np.ndarray = np.linalg.qr(np.column_stack([a, b]), mode="r")  # type: ignore[assignment]  # mode "r": R alone
    x, _ = nnls(r[:, :n], r[:, n], maxiter=maxiter)
    return x


def solve_labels(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: dict[str, torch.Tensor],
    batch: int,
    classes: int,
    generator: torch.Generator | None = None,
    simplex_weight: float = 10.0,
) -> torch.Tensor:
    """Labels that best explain a batch update once its inputs are known (or estimated).

    For a fixed input the cross-entropy gradient is linear in the one-hot label (the backward
    pass is linear in ``softmax - onehot``, for an SNN too: its surrogate derivatives are set by
    the forward pass): ``g(x, y) = sum_c y_c g(x, e_c)``. So the batch update
    ``T = (1/B) sum_i g(x_i, y_i)`` is a linear function of the ``B x C`` label matrix; non-negative
    least squares over the whole flattened update (each row's labels summing to one, enforced with
    weight ``simplex_weight``) gives it, and each sample takes its largest entry.

    x : (victims * batch, *input_shape); target : name -> (victims, ...) the victims' updates
    (gradients, not deltas). Returns (victims * batch,) int64.
    """
    from neurofl.leakage.gradients import flatten

    n = x.shape[0]
    victims = n // batch
    xr = x.detach().repeat_interleave(classes, 0)
    yr = torch.arange(classes, device=x.device).repeat(n)
    with torch.enable_grad():
        grads = per_sample_gradients(model, xr.requires_grad_(True), yr, generator=generator)
    per_class = flatten({k: v.detach() for k, v in grads.items()}).double().reshape(victims, batch * classes, -1)
    tgt = flatten({k: v.detach() for k, v in target.items()}).double() * batch
    cons = np.kron(np.eye(batch), np.ones((1, classes)))
    out = []
    for v in range(victims):
        a, t = per_class[v].T.cpu().numpy(), tgt[v].cpu().numpy()
        scale = np.linalg.norm(t) / np.sqrt(batch)
        if not (np.isfinite(a).all() and np.isfinite(t).all()) or scale == 0:
            out.append(np.zeros(batch, dtype=np.int64))
            continue
        coef = reduced_nnls(
            np.vstack([a / scale, simplex_weight * cons]),
            np.concatenate([t / scale, simplex_weight * np.ones(batch)]),
            maxiter=50 * batch * classes,
        )
        out.append(coef.reshape(batch, classes).argmax(-1))
    return torch.from_numpy(np.concatenate(out)).long().to(x.device)
