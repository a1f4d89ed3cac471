"""R-GAP (Zhu & Blaschko, ICLR 2021): recursive closed-form recovery of a batch-1 input.

For a float network of bias-free layers ``z_l = W_l a_{l-1}`` (fully connected or convolution),
``a_l = sigmoid(z_l)``, ``logits = z_L``, the weight gradient is ``dW_l = delta_l (x) a_{l-1}``:
linear in the layer's input once ``delta_l`` (the loss gradient at ``z_l``) is known. Going from the
output down:

- the last layer's gradient ``(p - y) a_{L-1}^T`` is rank one: ``a_{L-1}`` is its right singular
  vector, its scale the one whose softmax reproduces the gradient (a 1-D search), ``delta_L = p - y``;
- each lower layer's input solves the stacked linear system ``W_l a = z_l`` (the next layer's
  pre-activation, ``z_l = logit(a_l)``) and ``delta_l (x) a = dW_l`` by ridge least squares, then
  ``delta_{l-1} = sigmoid'(z_{l-1}) * W_l^T delta_l``.

It needs each system to have at least as many equations as unknowns; it does not apply to spiking
layers (a spike map does not determine the membrane input that produced it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from neurofl.attacks.inverting import Inversion
from neurofl.attacks.recipe import RgapRecipe
from neurofl.attacks.target import Target


@dataclass(frozen=True)
class Stage:
    """One weight layer in float64: its weight, its convolution settings (None: fully connected),
    its input's shape and its output's shape (both without batch)."""

    weight: torch.Tensor
    conv: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None  # stride, padding, dilation
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def unknowns(self) -> int:
        return int(torch.tensor(self.in_shape).prod())

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """(m, *in_shape) -> (m, out_numel)"""
        if self.conv is not None:
            stride, padding, dilation = self.conv
            return F.conv2d(a, self.weight, None, stride, padding, dilation).flatten(1)
        return a.reshape(a.shape[0], -1) @ self.weight.T

    def backward(self, delta: torch.Tensor) -> torch.Tensor:
        """W^T delta: the gradient at this layer's input of <z, delta>. (out_numel,) -> (in_numel,)"""
        a = torch.zeros(1, *self.in_shape, dtype=torch.float64, requires_grad=True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad((self.forward(a) * delta).sum(), a)
        return g.flatten()

    def weight_grad(self, a: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """dW for inputs a (m, *in_shape) and one output gradient delta (out_numel,) -> (m, weight_numel)"""
        if self.conv is not None:
            stride, padding, dilation = self.conv
            cols = F.unfold(a, self.weight.shape[2:], dilation, padding, stride)  # (m, C*k*k, L)
            return torch.einsum("ol,mkl->mok", delta.reshape(self.weight.shape[0], -1), cols).flatten(1)
        return torch.einsum("o,mi->moi", delta, a.reshape(a.shape[0], -1)).flatten(1)


def stages(model: torch.nn.Module) -> list[Stage] | None:
    """The layers of a sigmoid MLP or LeNet-style ConvANN with static input; None otherwise."""
    from neurofl.models.ann import MLP
    from neurofl.models.conv import ConvANN

    def weight(m: torch.nn.Module) -> torch.Tensor:  # R-GAP's small float64 systems run on the CPU
        return m.weight.detach().double().cpu()

    if isinstance(model, MLP):
        return [Stage(weight(m), None, (m.in_features,), (m.out_features,)) for m in model.layers]
    if isinstance(model, ConvANN) and not model.arch.is_events:
        out = []
        shape = tuple(model.arch.input_shape)
        for conv, fmap in zip(model.convs, model.arch.feature_maps(), strict=True):
            out.append(Stage(weight(conv), (conv.stride, conv.padding, conv.dilation), shape, fmap))
            shape = fmap
        out.append(Stage(weight(model.fc), None, (model.arch.features,), (model.fc.out_features,)))
        return out
    return None


def _matrix(fn: Callable[[torch.Tensor], torch.Tensor], in_shape: tuple[int, ...], chunk: int = 256) -> torch.Tensor:
    """The matrix of a linear map of inputs of ``in_shape``: (outputs, inputs), float64."""
    n = int(torch.tensor(in_shape).prod())
    cols = []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        basis = torch.zeros(m, n, dtype=torch.float64)
        basis[torch.arange(m), torch.arange(start, start + m)] = 1.0
        cols.append(fn(basis.reshape(m, *in_shape)).T)
    return torch.cat(cols, 1)


def why_not(model: torch.nn.Module) -> str | None:
    """Why R-GAP cannot run on ``model``, or None."""
    layers = stages(model)
    if layers is None:
        return "R-GAP inverts the sigmoid layers of a float ANN with image input; this model is not one"
    for st in layers[:-1]:
        equations = st.weight.numel() + int(torch.tensor(st.out_shape).prod())
        if equations < st.unknowns:
            shape = st.in_shape
            return f"R-GAP's system for an input of shape {shape} is underdetermined ({equations} < {st.unknowns})"
    return None


def _last_layer(stage: Stage, grad: torch.Tensor, label: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Candidate (a_{L-1}, delta_L) pairs from the rank-one last-layer gradient (classes, features),
    one per local minimum of the scale's residual (the scale can have two solutions)."""
    w = stage.weight
    _, _, vh = torch.linalg.svd(grad, full_matrices=False)
    u = vh[0] if vh[0].sum() >= 0 else -vh[0]
    onehot = F.one_hot(torch.tensor(label), grad.shape[0]).double()

    def err(s: torch.Tensor) -> torch.Tensor:  # s: (m,) scales -> (m,) squared residuals
        a = s[:, None] * u[None]
        delta = torch.softmax(a @ w.T, -1) - onehot
        return ((delta[:, :, None] * a[:, None, :] - grad[None]) ** 2).flatten(1).sum(1)

    scales = torch.logspace(-3, 3, 601, dtype=torch.float64)
    e = err(scales)
    minima = [i for i in range(len(e)) if e[i] <= e[max(i - 1, 0)] and e[i] <= e[min(i + 1, len(e) - 1)]]
    out = []
    for i in sorted(minima, key=lambda j: float(e[j]))[:3]:
        left, right = scales[max(i - 1, 0)], scales[min(i + 1, len(scales) - 1)]
        for _ in range(60):  # golden-section refinement
            m1, m2 = left + 0.382 * (right - left), left + 0.618 * (right - left)
            e1, e2 = err(torch.stack([m1, m2]))
            left, right = (left, m2) if e1 < e2 else (m1, right)
        a = (left + right) / 2 * u
        out.append((a, torch.softmax(a @ w.T, -1) - onehot))
    return out


def _descend(
    layers: list[Stage], fwd: list[torch.Tensor], g: list[torch.Tensor], a: torch.Tensor, delta: torch.Tensor,
    ridge: float,
) -> tuple[torch.Tensor, float]:
    """From the last layer's input down to the network's input; returns (input, worst residual)."""
    eps = 1e-6
    worst = 0.0
    for i in range(len(layers) - 2, -1, -1):
        st = layers[i]
        a_out = a.clamp(eps, 1 - eps)  # this layer's sigmoid output
        delta = a_out * (1 - a_out) * layers[i + 1].backward(delta)
        grd = _matrix(partial(st.weight_grad, delta=delta), st.in_shape)
        z = torch.log(a_out) - torch.log1p(-a_out)
        wf, wg = 1.0 / z.norm().clamp_min(1e-300), 1.0 / g[i].norm().clamp_min(1e-300)
        a_mat = torch.cat([wf * fwd[i], wg * grd])
        rhs = torch.cat([wf * z, wg * g[i]])
        gram = a_mat.T @ a_mat
        lam = ridge * gram.diagonal().max()
        a = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), a_mat.T @ rhs)
        worst = max(worst, float((a_mat @ a - rhs).norm() / rhs.norm().clamp_min(1e-300)))
    return a, worst


def rgap(
    target: Target, recipe: RgapRecipe, labels: torch.Tensor, seed: int, on_step: Callable[[int], None] | None = None
) -> Inversion:
    """Recover each victim's single input (batch 1) layer by layer; see the module docstring.

    labels : (victims,) the label each victim's update was computed with (recovered by iDLG).
    Where the last layer's scale has several solutions, each is followed down and the one whose
    systems fit best is kept. Returns images (victims, *input_shape) in [0, 1], loss (victims,) the
    largest relative residual of its systems (NaN where the update is not finite), and the labels.
    """
    layers = stages(target.model)
    if layers is None or target.batch != 1:
        raise ValueError("rgap needs a sigmoid ANN and batch 1 (check why_not first)")
    grads = target.gradients()
    fwd = [_matrix(st.forward, st.in_shape) for st in layers[:-1]]  # the same for every victim
    out, losses = [], []
    for v in range(target.victims):
        g = [t[v].detach().double().flatten().cpu() for t in grads.values()]
        if not all(bool(torch.isfinite(t).all()) for t in g):
            out.append(torch.full(target.input_shape, float("nan")))
            losses.append(float("nan"))
            continue
        candidates = _last_layer(layers[-1], g[-1].reshape(layers[-1].weight.shape), int(labels[v]))
        a, residual = min(
            (_descend(layers, fwd, g, a0, d0, recipe.ridge) for a0, d0 in candidates), key=lambda r: r[1]
        )
        out.append(a.reshape(target.input_shape).clamp(0, 1).float())
        losses.append(residual)
        if on_step is not None:
            on_step(1)
    return Inversion(torch.stack(out), torch.tensor(losses, dtype=torch.float32), labels)
