"""Gradient informativeness: how much of a batch's inputs a layer's update carries (issue #29, item 2).

A weight layer's FedSGD update is a sum of outer products of the layer's output gradient and its
input, ``U = (1/B) sum_i sum_t sum_p dz_i(t, p) a_i(t, p)^T`` (shape ``(out, in)``), over the
batch's ``B`` samples ``i``, the time steps ``t`` (``T = 1`` for an ANN) and, for a convolution,
the output positions ``p``. Its row space therefore lies in the span of the layer's input vectors
``a_i(t, p)``; the measures below say how much of that span the update actually carries:

- **rank** (numerical): singular values of ``U`` above a tolerance, ``max(rtol * s_max, noise)``
  (``rtol`` is :data:`RANK_RTOL`; ``noise`` is 0 for the exact float update and, for the quantized
  upload ``Q``, the spectral norm of its actual rounding error ``||Q - U||_2``: by Weyl's inequality
  a singular value of ``Q`` above it guarantees a nonzero one of ``U``, so rounding noise is never
  counted as a direction (``rank_uploaded`` is at most the exact update's rank without the
  ``rtol`` cut).
- **erank**: the entropy-based effective rank of Roy & Vetterli (2007, EUSIPCO, "The effective rank:
  a measure of effective dimensionality"): ``exp(H(p))`` with ``p_k = s_k / sum s`` over all
  singular values; a real number in ``[1, min(out, in)]`` that needs no tolerance (0 for ``U = 0``).
- **principal angles** between the update's row space (the right singular vectors kept by the
  numerical rank) and the span of the batch's inputs (the same tolerance rule on the inputs, noise
  0), summarised as ``cos2`` = the mean cos² over the ``k = dim(input span)`` angles (an input
  direction the update's row space cannot reach counts 0; so ``cos2 = 1`` iff the row space
  contains the whole input span), ``energy`` = the share of the inputs' energy captured by the
  update's row space ``||X P_U||_F² / ||X||_F²`` (inputs weighted by their norms), and ``in_span``
  = the share of the update's energy inside the input span ``||U P_X||_F² / ||U||_F²``.
- **step shares**: ``U = sum_t U_t``; ``step_share[t] = ||U_t||_F / sum_s ||U_s||_F`` (the norm
  share, in [0, 1], sums to 1) and ``step_contribution[t] = <U_t, U>_F / ||U||_F²`` (the signed
  share of the update along itself; sums to 1 exactly).

Which inputs. For a dense layer the input vectors are the layer's inputs per sample and step.
For a convolution they are the **unfolded patches** (``C * kh * kw`` values, one per output
position and step): the weight gradient, flattened to ``(out, C * kh * kw)``, is a sum of outer
products with those patches, so its row space lies in their span (which usually fills the whole
patch space: many positions per image). Two spans are reported:

- ``steps``: the ``B * T * P`` per-step vectors the layer actually received (for the SNN's first
  layer, the encoded input current or spikes of every step; for a deeper layer, hidden spikes);
- ``static``: one vector per sample (``B * P`` for a convolution): for the first layer the raw
  input ``x`` (flattened, or unfolded with the layer's geometry) when it has the shape of one
  step's input, else (a pooled or event input) the layer's input summed over time; for deeper
  layers the input summed over time (spike counts). With the direct (graded) encoding every step
  repeats ``x``, so both spans agree; with a rate code the static ``x`` need not lie in the span
  of the spikes.

Which update. The raw measures (no suffix) use the exact float update rebuilt from the per-step
terms (forward hooks on every weight layer, as :mod:`neurofl.leakage.gradients` does; their sum over
``t`` is the gradient :func:`neurofl.leakage.victims.shared_updates` computes). The ``_uploaded`` measures
use what the server receives: ``shared_updates``' output after the profile's upload quantizer,
with its rounding error in the rank tolerance (for a float upload the two agree). FedSGD only
(one local step).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from neurofl.leakage.victims import Victims, shared_updates
from neurofl.models.snn import every_input_step
from neurofl.profiles import HardwareProfile
from neurofl.runs.device import device_of

# Singular values below RANK_RTOL * the largest are not counted in a numerical rank: far above
# float32 round-off (~1e-7 relative: the updates are float32) and the Gram path's float64 floor
# (~1e-8, see row_space), far below the spread of real directions (the digits ANN's batch-16
# first-layer update: smallest of its 16 singular values ~2e-3 of the largest).
RANK_RTOL = 1e-4

# The measures of one (update, inputs) pair, in the order they are reported.
SPAN_KEYS = ("cos2", "energy", "in_span")


def singular_values(m: np.ndarray) -> np.ndarray:
    """Singular values, largest first.

    m : (rows, cols), any real dtype -> (min(rows, cols),) float64, >= 0
    """
    return np.linalg.svd(np.asarray(m, dtype=np.float64), compute_uv=False)


def effective_rank(s: np.ndarray) -> float:
    """Roy & Vetterli's (2007) entropy-based effective rank of singular values ``s``.

    s : (k,) singular values >= 0 -> exp(-sum p log p) with p = s / sum(s), in [1, k]; 0 if all are 0.

    >>> round(effective_rank(np.array([2.0, 2.0, 0.0])), 6)
    2.0
    """
    s = np.asarray(s, dtype=np.float64)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def row_space(m: np.ndarray, rtol: float = RANK_RTOL, atol: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Singular values and an orthonormal basis of the row space of ``m``, kept where
    ``s > max(rtol * s_max, atol)``.

    m : (rows, cols) -> (s (min(rows, cols),) float64, basis (cols, r) float64 with orthonormal columns).
    A tall ``m`` (many input vectors) goes through its (cols, cols) Gram matrix, float64.
    """
    m = np.asarray(m, dtype=np.float64)
    if m.shape[0] > 4 * m.shape[1]:
        lam, v = np.linalg.eigh(m.T @ m)
        order = np.argsort(lam)[::-1]
        s, v = np.sqrt(np.clip(lam[order], 0.0, None)), v[:, order]
    else:
        _, s, vt = np.linalg.svd(m, full_matrices=False)
        v = vt.T
    tol = max(rtol * (s[0] if s.size else 0.0), atol)
    keep = s > tol if s.size and s[0] > 0 else np.zeros(s.shape, dtype=bool)
    return s, v[:, keep]


def principal_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosines of the principal angles between two subspaces given by orthonormal bases.

    a : (d, r), b : (d, k), orthonormal columns -> (min(r, k),) in [0, 1], largest first
    (an angle of 0 has cosine 1; orthogonal subspaces give 0).
    """
    if a.shape[1] == 0 or b.shape[1] == 0:
        return np.zeros(0)
    return np.clip(np.linalg.svd(a.T @ b, compute_uv=False), 0.0, 1.0)


def span_measures(
    update: np.ndarray, inputs: np.ndarray, rtol: float = RANK_RTOL, noise: float = 0.0
) -> dict[str, float]:
    """How much of the span of ``inputs`` the row space of ``update`` carries.

    Parameters
    ----------
    update : (out, in) one layer's update (any units)
    inputs : (m, in) the input vectors it was built from (any units)
    rtol : relative tolerance of both numerical ranks
    noise : absolute tolerance of the update's rank (its rounding error's spectral norm; 0 if exact)

    Returns
    -------
    rank, erank : of the update (see the module's docstring); input_rank : of the inputs;
    cos2 : mean cos² of the principal angles over the input span's dimensions, in [0, 1];
    energy : share of the inputs' energy in the update's row space, in [0, 1];
    in_span : share of the update's energy in the inputs' span, in [0, 1].
    Shares of an all-zero update or input set are 0.
    """
    update = np.asarray(update, dtype=np.float64)
    inputs = np.asarray(inputs, dtype=np.float64)
    s, qu = row_space(update, rtol, noise)
    _, qx = row_space(inputs, rtol)
    k = qx.shape[1]
    cos = principal_cosines(qu, qx)
    x_energy = float((inputs**2).sum())
    u_energy = float((update**2).sum())
    return {
        "rank": float(qu.shape[1]),
        "erank": effective_rank(s),
        "input_rank": float(k),
        "cos2": float((cos**2).sum() / k) if k else 0.0,
        "energy": float(((inputs @ qu) ** 2).sum() / x_energy) if x_energy > 0 else 0.0,
        "in_span": float(((update @ qx) ** 2).sum() / u_energy) if u_energy > 0 else 0.0,
    }


def step_shares(terms: np.ndarray) -> tuple[list[float], list[float]]:
    """Each time step's share of an update ``U = sum_t U_t``.

    terms : (T, out, in) the per-step terms ``U_t``
    -> (norm shares ``||U_t||_F / sum_s ||U_s||_F``, contributions ``<U_t, U>_F / ||U||_F²``), each (T,)
    and summing to 1 (all 0 for a zero update).
    """
    terms = np.asarray(terms, dtype=np.float64)
    flat = terms.reshape(terms.shape[0], -1)
    norms = np.sqrt((flat**2).sum(1))
    total = flat.sum(0)
    energy = float(total @ total)
    share = norms / norms.sum() if norms.sum() > 0 else np.zeros_like(norms)
    contribution = flat @ total / energy if energy > 0 else np.zeros_like(norms)
    return share.tolist(), contribution.tolist()


def layer_vectors(module: torch.nn.Module, a: torch.Tensor) -> torch.Tensor:
    """A weight layer's input as the vectors its weight gradient is built from.

    a : the layer's input: (n, in) Linear; (n, in, T) SLAYER Dense; (n, C, H, W) Conv2d;
        (n, C, H, W, T) SLAYER Conv (a kernel of one step)
    -> (n, T, P, d): per sample, step and output position (P = 1 for a dense layer), the input
    vector (d = in) or unfolded patch (d = C * kh * kw, in the order of ``weight.flatten(1)``).
    """
    if a.dim() == 2:
        return a[:, None, None, :]
    if a.dim() == 3:
        return a.permute(0, 2, 1)[:, :, None, :]
    if isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d)) and isinstance(module.padding, str):
        raise NotImplementedError(f"informativeness for a conv layer with padding={module.padding!r}")
    if a.dim() == 4 and isinstance(module, torch.nn.Conv2d):
        padding = tuple(module.padding)  # an int pair (a string padding was refused above)
        cols = F.unfold(a, module.kernel_size, module.dilation, padding, module.stride)  # type: ignore[arg-type]
        return cols.permute(0, 2, 1)[:, None]
    if a.dim() == 5 and isinstance(module, torch.nn.Conv3d):
        n, c, h, w, t = a.shape
        frames = a.permute(0, 4, 1, 2, 3).reshape(n * t, c, h, w)
        pad = tuple(module.padding)[:2]  # an int triple (a string padding was refused above)
        cols = F.unfold(frames, module.kernel_size[:2], module.dilation[:2], pad, module.stride[:2])  # type: ignore[arg-type]
        return cols.reshape(n, t, cols.shape[1], cols.shape[2]).permute(0, 1, 3, 2)
    raise NotImplementedError(f"informativeness for {type(module).__name__} inputs of shape {tuple(a.shape)}")


def output_vectors(g: torch.Tensor) -> torch.Tensor:
    """A weight layer's output gradient in the layout of :func:`layer_vectors`.

    g : (n, out), (n, out, T), (n, O, H', W') or (n, O, H', W', T) -> (n, T, P, out)
    """
    if g.dim() == 2:
        return g[:, None, None, :]
    if g.dim() == 3:
        return g.permute(0, 2, 1)[:, :, None, :]
    if g.dim() == 4:
        return g.flatten(2).permute(0, 2, 1)[:, None]
    n, o, _, _, t = g.shape
    return g.permute(0, 4, 2, 3, 1).reshape(n, t, -1, o)


def layer_signals(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
) -> list[tuple[str, torch.nn.Module, torch.Tensor, torch.Tensor]]:
    """Every weight layer's input ``a`` and loss gradient at its output ``dz`` (summed cross-entropy),
    captured by forward hooks exactly as :func:`neurofl.leakage.gradients.per_sample_gradients` does (same
    forward, same encoding randomness for the same ``generator``), detached; a direct input is run
    over all T steps (:func:`~neurofl.models.snn.every_input_step`), so the first layer's ``dz`` is
    per step.

    x : (n, *input_shape); y : (n,) int64 -> [(weight name, module, a, dz)] in ``model.weight_layers()`` order
    """
    layers = model.weight_layers()
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda _m, inp, out: captured.append((inp[0], out))) for _, m in layers]
    try:
        with torch.enable_grad(), every_input_step():
            logits = model(x, generator=generator)
            loss = F.cross_entropy(logits, y, reduction="sum")
            dz = torch.autograd.grad(loss, [z for _, z in captured], allow_unused=True)
    finally:
        for h in hooks:
            h.remove()
    return [
        (name, module, a.detach(), torch.zeros_like(z) if g is None else g.detach())
        for (name, module), (a, z), g in zip(layers, captured, dz, strict=True)
    ]


def per_step_updates(a_vec: torch.Tensor, g_vec: torch.Tensor, batch: int) -> torch.Tensor:
    """Each victim's update split by time step: ``U_t = (1/B) sum_i sum_p dz_i(t, p) a_i(t, p)^T``.

    a_vec : (n, T, P, d); g_vec : (n, T, P, out) (:func:`layer_vectors`, :func:`output_vectors`);
    batch : samples per victim (n a multiple of it) -> (n // batch, T, out, d), float64
    """
    n, t, p, d = a_vec.shape
    a = a_vec.double().reshape(n // batch, batch, t, p, d)
    g = g_vec.double().reshape(n // batch, batch, t, p, -1)
    return torch.einsum("vbtpo,vbtpd->vtod", g, a) / batch


def _static_vectors(module: torch.nn.Module, a: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
    """One vector (per position) per sample: ``x`` in the layer's geometry when it is one step's
    input, else the layer's input summed over time. -> (n, P, d)"""
    a_vec = layer_vectors(module, a)
    if x is not None:
        step = a if a.dim() in (2, 4) else a[..., 0]
        if x[0].numel() == step[0].numel():
            xs = x.to(a.dtype).reshape(step.shape)
            xs = xs.unsqueeze(-1) if a.dim() in (3, 5) else xs
            return layer_vectors(module, xs)[:, 0]
    return a_vec.sum(1)


def _mean(rows: Sequence[dict[str, float | list[float]]]) -> dict[str, float | list[float]]:
    out: dict[str, float | list[float]] = {}
    for key in rows[0]:
        vals = [r[key] for r in rows]
        out[key] = np.mean(np.asarray(vals, dtype=np.float64), axis=0).tolist()
    return out


def layer_informativeness(
    module: torch.nn.Module,
    a: torch.Tensor,
    g: torch.Tensor,
    batch: int,
    uploaded: torch.Tensor | None = None,
    x: torch.Tensor | None = None,
    rtol: float = RANK_RTOL,
) -> dict[str, float | list[float]]:
    """The measures of one weight layer, averaged over victims.

    Parameters
    ----------
    module : the weight layer; a, g : its input and output gradient (:func:`layer_signals`)
    batch : samples per victim
    uploaded : (victims, *weight_shape) what the victims uploaded (optional: adds ``*_uploaded``;
        its rank tolerance is its rounding error's spectral norm, see the module docstring)
    x : (n, *input_shape) the raw inputs, for the first layer's static span (see the module docstring)
    rtol : relative rank tolerance

    Returns
    -------
    rank, erank, input_rank_static, input_rank_steps, cos2_static, energy_static, in_span_static,
    cos2_steps, energy_steps, in_span_steps (exact update); the same with ``_uploaded`` (given
    ``uploaded``); step_share, step_contribution (lists of T); time_steps, positions. Counts
    (ranks) are means over victims, so they may be fractional.
    """
    a_vec, g_vec = layer_vectors(module, a), output_vectors(g)
    static = _static_vectors(module, a, x)
    n, t, p, d = a_vec.shape
    rows: list[dict[str, float | list[float]]] = []
    for v in range(n // batch):  # one victim at a time: a conv layer's patches over B * T steps are large
        own = slice(v * batch, (v + 1) * batch)
        terms = per_step_updates(a_vec[own], g_vec[own], batch)[0].cpu().numpy()
        steps_in = a_vec[own].double().reshape(-1, d).cpu().numpy()
        static_in = static[own].double().reshape(-1, d).cpu().numpy()
        row: dict[str, float | list[float]] = {}
        exact = terms.sum(0)
        versions = [("", exact, 0.0)]
        if uploaded is not None:  # the quantized upload: singular values under its rounding error do not count
            up = uploaded[v].detach().double().reshape(exact.shape).cpu().numpy()
            versions.append(("_uploaded", up, float(singular_values(up - exact)[0])))
        for suffix, mat, noise in versions:
            for span, vectors in (("static", static_in), ("steps", steps_in)):
                m = span_measures(mat, vectors, rtol, noise)
                row["rank" + suffix], row["erank" + suffix] = m["rank"], m["erank"]
                if not suffix:
                    row[f"input_rank_{span}"] = m["input_rank"]
                for key in SPAN_KEYS:
                    row[f"{key}_{span}{suffix}"] = m[key]
        row["step_share"], row["step_contribution"] = step_shares(terms)
        rows.append(row)
    out = _mean(rows)
    out["time_steps"], out["positions"] = float(t), float(p)
    return out


def first_layer_informativeness(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    profile: HardwareProfile,
    batch: int,
    seed: int,
    rtol: float = RANK_RTOL,
    deeper: bool = True,
    uploaded: dict[str, torch.Tensor] | None = None,
) -> dict[str, float | list[float]]:
    """Gradient informativeness of one row: the victims' first-layer updates (and deeper layers').

    Parameters
    ----------
    model : the row's global model (``weight_layers()``: MLP, SpikingMLP, conv models, chip networks
        whose layers :func:`layer_vectors` knows)
    inputs : (victims * batch, *input_shape) the victims' samples, victim by victim (``Victims.x``)
    labels : (victims * batch,) int64 (``Victims.y``)
    profile : the row's profile (arithmetic and upload format)
    batch : samples per victim (FedSGD batch size B)
    seed : the evaluation's seed (the clients' encoding and rounding randomness, as in
        :func:`neurofl.leakage.victims.shared_updates`)
    rtol : relative rank tolerance (:data:`RANK_RTOL`)
    deeper : also measure the other weight layers (their inputs: hidden activations or spikes)
    uploaded : the victims' uploads as :func:`neurofl.leakage.victims.shared_updates` returned them for
        this model, inputs, profile and seed (name -> (victims, *weight_shape)), to save recomputing
        them; None computes them here

    Returns
    -------
    A JSON-safe dict of floats and lists of floats, each the mean over victims: the first layer's
    measures (:func:`layer_informativeness`; ``_uploaded``: on the quantized upload the server
    sees), ``batch``, ``victims``, ``in_dim``, ``out_dim``, ``rank_rtol``, and with ``deeper``
    the same measures of layer ``i >= 1`` under ``layer{i}.<key>``.
    """
    n = inputs.shape[0]
    if batch < 1 or n % batch:
        raise ValueError(f"{n} inputs are not whole victims of batch {batch}")
    if uploaded is None:
        victims = Victims(inputs, labels, np.arange(n // batch), np.arange(n), batch)
        uploaded = shared_updates(model, victims, profile, seed)
    dev = device_of(model)
    enc = torch.Generator().manual_seed(seed + 1000)  # the same encoding draw as shared_updates'
    signals = layer_signals(model, inputs.to(dev), labels.to(dev), generator=enc)
    with threadpool_limits(limits=1):  # the SVDs round alike whatever the caller's BLAS threads
        return _informativeness(signals, uploaded, inputs.to(dev), batch, n, rtol, deeper)


def _informativeness(
    signals: list, uploaded: dict[str, torch.Tensor], inputs: torch.Tensor, batch: int, n: int, rtol: float,
    deeper: bool,
) -> dict[str, float | list[float]]:  # fmt: skip
    out: dict[str, float | list[float]] = {}
    for i, (name, module, a, g) in enumerate(signals if deeper else signals[:1]):
        m = layer_informativeness(module, a, g, batch, uploaded[name], inputs if i == 0 else None, rtol)
        if i == 0:
            out.update(m)
            w = module.weight
            out.update(batch=float(batch), victims=float(n // batch), out_dim=float(w.shape[0]),
                       in_dim=float(w[0].numel()), rank_rtol=rtol)  # fmt: skip
        else:
            out.update({f"layer{i}.{k}": v for k, v in m.items()})
    return out
