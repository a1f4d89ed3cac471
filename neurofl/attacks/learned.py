"""Learned inversion (Wu et al., UAI 2023, "Learning to Invert"): a network trained to map an update
to the batch it came from.

The server simulates clients itself: it draws batches from its auxiliary data (public, disjoint
from every client and from the oracle), computes their updates through the global model in the
device's arithmetic and upload format (:func:`neurofl.leakage.victims.shared_updates`, with the attacker's
own randomness), and fits an MLP from update features to inputs. It takes no derivative through
the attacked model at attack time, so it works the same for any architecture, encoding, profile or
defense the server can simulate; it is the attack-independent check of "obscurity vs security".

Features: the flattened update through a fixed seeded Gaussian projection (a count sketch where
the Gaussian matrix would be too large; or the first tensor alone), scaled to unit norm, plus its
log norm. The network: a trunk of ReLU layers to B latent codes, one shared decoder from a code to
an input (sigmoid) and its label. For B > 1 the loss pairs the B outputs with the B inputs by best
assignment (a batch update does not order its samples).

Readout residual (``readout = "residual"``): where the first layer is fully connected over the raw
input, its update already holds the input (a batch-1 weight gradient is ``dz x^T``; a batch's rows
span its inputs), so the first-layer readout (:func:`neurofl.attacks.analytic.first_layer_readout`)
gives a start ``x0`` per output slot. The trunk then sees ``[features, x0]`` (x0 sketched where all
B readouts would make too wide a trunk: :func:`neurofl.attacks.recipe.readout_width`), each slot's decoder
its own ``x0_i`` too, and the image head (zero-initialized) predicts a correction: the output is
``clamp(x0 + correction, 0, 1)``, exactly the readout before training. Without a readout (a
convolutional first layer, a pooled input) the plain inverter runs.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from neurofl.attacks.analytic import first_layer_readout, readable
from neurofl.attacks.inverting import Inversion
from neurofl.attacks.recipe import LearnedInversionRecipe, feature_projection, readout_width
from neurofl.attacks.target import Target
from neurofl.io.atomic import atomic_write_bytes
from neurofl.leakage.gradients import flatten
from neurofl.runs.allocator import release_freed_memory
from neurofl.runs.device import device_of, on_cpu

LATENT = 256  # per-sample code width between the trunk and the shared decoder
SIMULATE_CHUNK = 512  # samples per simulated-update call (bounds memory)


class CountSketch:
    """A seeded count sketch (Charikar, Chen and Farach-Colton 2002), (n, size) -> (n, dim):
    coordinate ``i`` adds ``sign_i * u_i`` to bucket ``h(i)``, so inner products are kept in
    expectation at O(size) work and memory, where a dense Gaussian projection needs size * dim.

    >>> CountSketch(5, 3, seed=0)(torch.eye(5)).abs().sum(1)
    tensor([1., 1., 1., 1., 1.])
    """

    def __init__(self, size: int, dim: int, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.bucket = torch.randint(0, dim, (size,), generator=gen)
        self.sign = torch.randint(0, 2, (size,), generator=gen).float().mul_(2).sub_(1)
        self.dim = dim

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        out = u.new_zeros(u.shape[0], self.dim)
        return out.index_add_(1, self.bucket.to(u.device), u * self.sign.to(u.device, u.dtype))


class Inverter(torch.nn.Module):
    """features (n, F) -> images (n, batch, D) in (0, 1) and label logits (n, batch, classes).

    residual: the network also takes the readout x0 (n, batch, D) and returns ``x0 + correction``
    (unclamped; the correction head starts at zero, so the untrained output is the readout)."""

    def __init__(
        self, features: int, batch: int, size: int, classes: int, hidden: int, layers: int, residual: bool = False,
        sketch: CountSketch | None = None,
    ):  # fmt: skip
        super().__init__()
        extra = size if residual else 0
        self.sketch = sketch  # the readouts as the trunk sees them (None: all of them)
        dims = [features + (sketch.dim if sketch is not None else batch * extra)] + [hidden] * layers
        trunk: list[torch.nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            trunk += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        trunk.append(torch.nn.Linear(dims[-1], batch * LATENT))
        self.trunk = torch.nn.Sequential(*trunk)
        self.decoder = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(LATENT + extra, hidden), torch.nn.ReLU())
        self.image = torch.nn.Linear(hidden, size)
        self.label = torch.nn.Linear(hidden, classes)
        self.batch = batch
        self.residual = residual
        if residual:
            with torch.no_grad():
                self.image.weight.zero_()
                self.image.bias.zero_()

    def forward(self, f: torch.Tensor, x0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.residual:
            h = self.decoder(self.trunk(f).reshape(f.shape[0], self.batch, LATENT))
            return torch.sigmoid(self.image(h)), self.label(h)
        assert x0 is not None, "a residual inverter needs the readout"
        seen = x0.flatten(1) if self.sketch is None else self.sketch(x0.flatten(1))
        code = self.trunk(torch.cat([f, seen], 1)).reshape(f.shape[0], self.batch, LATENT)
        h = self.decoder(torch.cat([code, x0], -1))  # the decoder's leading ReLU leaves x0 >= 0 as it is
        return x0 + self.image(h), self.label(h)


def uses_readout(target: Target, recipe: LearnedInversionRecipe) -> bool:
    """Whether the inverter is the readout-residual one: the recipe asks for it and the first layer
    is fully connected over the raw input (otherwise there is no readout; the plain inverter runs)."""
    return recipe.readout == "residual" and readable(target.update, target.input_size)


class Readout:
    """Update -> the residual inverter's start (n, batch, D): :func:`readout` (``unmix = "svd"``,
    and at batch 1 for either), or with ``unmix = "als"`` at batch > 1 disaggregation's alternating
    least squares from it (the row's seed, the same in training and at attack time)."""

    def __init__(self, target: Target, recipe: LearnedInversionRecipe, seed: int):
        self.target, self.unmix, self.seed = target, recipe.unmix, seed

    def __call__(self, update: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.unmix == "als" and self.target.batch > 1:
            return self._als(update)
        return readout(update, self.target.batch, self.target.input_size)

    def _als(self, update: dict[str, torch.Tensor]) -> torch.Tensor:
        """Disaggregation's alternating least squares (no search) from the SVD readout, with the
        labels recovered from the update as the row recovers them."""
        from dataclasses import replace

        from neurofl.attacks.disaggregation import disaggregate
        from neurofl.attacks.labels import recover_labels
        from neurofl.attacks.recipe import DisaggregationRecipe

        t = replace(self.target, update={k: v.detach() for k, v in update.items()})
        aux = t.auxiliary
        calibration = (torch.from_numpy(aux.x), torch.from_numpy(aux.y)) if aux is not None and len(aux.y) else None
        labels = recover_labels(t.model, t.gradients(), t.batch, t.input_shape, self.seed, calibration)
        als = DisaggregationRecipe(name="readout", attack="disaggregation", search_generations=0)
        inv = disaggregate(t, als, labels.to(device_of(t.model)), self.seed)
        rows = torch.nan_to_num(inv.images.reshape(t.victims, t.batch, t.input_size), nan=0.0)
        return rows.clamp(0, 1)


def readout(update: dict[str, torch.Tensor], batch: int, input_size: int) -> torch.Tensor:
    """The first-layer readout of every update as (n, batch, D) in [0, 1] (0 where not finite):
    sample slot ``i`` gets the update's ``i``-th right singular vector, made non-negative (at
    batch 1 the input itself, up to its scale; :func:`neurofl.attacks.analytic.first_layer_readout`)."""
    rows, _ = first_layer_readout({k: v.detach() for k, v in update.items()}, batch, input_size)
    n = next(iter(update.values())).shape[0]
    return torch.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0).clamp(0, 1).reshape(n, batch, input_size)


class Features:
    """Update -> features: a fixed projection of the flattened update (seeded), unit-normed, plus
    its log norm. The projection is Gaussian where it has at most ``recipe.DENSE_PROJECTION``
    entries, a :class:`CountSketch` of the same width beyond (a 1.6M-weight update would need 13 GB)."""

    def __init__(self, target: Target, recipe: LearnedInversionRecipe, seed: int):
        sizes = [t[0].numel() for t in target.update.values()]
        self.first_only = recipe.features == "first_layer"
        total = sizes[0] if self.first_only else sum(sizes)
        self.proj: torch.Tensor | CountSketch | None = None
        kind = feature_projection(total, recipe.projection_dim)
        if kind == "sketch":
            self.proj = CountSketch(total, recipe.projection_dim, seed)
        elif kind == "gaussian":
            gen = torch.Generator().manual_seed(seed)
            # scaled in place: one (total, dim) array at a time, not two
            self.proj = torch.randn(total, recipe.projection_dim, generator=gen).div_(recipe.projection_dim**0.5)
        self.dim = (recipe.projection_dim if self.proj is not None else total) + 1

    def __call__(self, update: dict[str, torch.Tensor]) -> torch.Tensor:
        u = next(iter(update.values())).flatten(1) if self.first_only else flatten(update)
        u = torch.nan_to_num(u.detach().float(), nan=0.0, posinf=0.0, neginf=0.0)
        if isinstance(self.proj, CountSketch):
            u = self.proj(u)
        elif self.proj is not None:
            u = u @ self.proj.to(u.device)  # drawn on the CPU: the same projection on any device
        norm = u.norm(dim=1, keepdim=True)
        return torch.cat([u / norm.clamp_min(1e-30), torch.log(norm.clamp_min(1e-30))], 1)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shifts of up to one pixel (zero fill) and contrast in [0.8, 1]; (n, C, H, W[, T])."""
    n = x.shape[0]
    out = torch.zeros_like(x)
    shifts = torch.randint(-1, 2, (n, 2), generator=gen)
    for i in range(n):
        dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
        src = x[i, :, max(0, -dy) : x.shape[2] - max(0, dy), max(0, -dx) : x.shape[3] - max(0, dx)]
        out[i, :, max(0, dy) : max(0, dy) + src.shape[1], max(0, dx) : max(0, dx) + src.shape[2]] = src
    contrast = 0.8 + 0.2 * torch.rand((n,) + (1,) * (x.dim() - 1), generator=gen)
    return out if x.dim() == 5 else out * contrast


def simulate(
    target: Target, recipe: LearnedInversionRecipe, features: Features, seed: int, reader: Readout | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``training_updates`` updates of auxiliary batches, as the device would upload them.

    Returns (features (N, F), inputs (N, batch, D), labels (N, batch), readouts (N, batch, D), or
    None without ``reader``)."""
    from neurofl.leakage.victims import Victims, shared_updates

    aux = target.auxiliary
    assert aux is not None, "learned inversion needs auxiliary data"  # the registry says why it cannot run
    b = target.batch
    gen = torch.Generator().manual_seed(seed)
    if recipe.auxiliary_samples is not None:
        aux = aux.subset(torch.randperm(len(aux.y), generator=gen)[: recipe.auxiliary_samples].numpy())
    xs, ys, fs, rs = [], [], [], []
    per_call = max(1, SIMULATE_CHUNK // b)
    for start in range(0, recipe.training_updates, per_call):
        count = min(per_call, recipe.training_updates - start)
        idx = torch.randint(0, len(aux.y), (count * b,), generator=gen)
        x = torch.from_numpy(aux.x[idx.numpy()])
        if recipe.augment:
            x = _augment(x, gen)
        y = torch.from_numpy(aux.y[idx.numpy()])
        v = Victims(x, y, np.zeros(count, dtype=np.int64), idx.numpy(), b)
        upd = shared_updates(target.model, v, target.profile, seed + 7919 * (start + 1),
                             target.local_steps, target.local_lr, target.minibatch)  # fmt: skip
        fs.append(features(upd).cpu())
        if reader is not None:
            rs.append(reader(upd).cpu())
        xs.append(x.reshape(count, b, -1))
        ys.append(y.reshape(count, b))
    return torch.cat(fs), torch.cat(xs), torch.cat(ys), torch.cat(rs) if reader is not None else None


def _matched_loss(img: torch.Tensor, logit: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error (plus label cross-entropy) under the best pairing of outputs and inputs."""
    if img.shape[1] > 1:
        a = img.detach()
        # |a - x|^2 = |a|^2 + |x|^2 - 2 a.x: one (n, out, in) product, not an (n, out, in, D) difference
        # (at batch 16 on events that difference was 1.7 GB per step); the sum's order changes the cost
        # only by rounding, so a pairing changes only where two of its costs tie to rounding
        cost = (a * a).sum(-1)[:, :, None] + (x * x).sum(-1)[:, None, :] - 2 * torch.bmm(a, x.transpose(1, 2))
        perm = np.stack([linear_sum_assignment(c)[1] for c in cost.cpu().numpy()])
        order = torch.from_numpy(perm).to(x.device)
        x = torch.gather(x, 1, order[..., None].expand_as(x))
        y = torch.gather(y, 1, order)
    return F.mse_loss(img, x) + 0.01 * F.cross_entropy(logit.flatten(0, 1), y.flatten())


def train_inverter(
    target: Target, recipe: LearnedInversionRecipe, seed: int, on_step: Callable[[int], None] | None = None
) -> tuple[Inverter, Features]:
    """Simulate the training updates and fit the inverter (seeded; no global RNG is touched), on
    the attacked model's device (initialized and shuffled on the CPU, then moved)."""
    dev = device_of(target.model)
    feats = Features(target, recipe, seed)
    reader = Readout(target, recipe, seed) if uses_readout(target, recipe) else None
    f, x, y, r = simulate(target, recipe, feats, seed + 1, reader)
    # the simulation's freed memory back to the kernel: kept (neurofl.runs.allocator), the training's
    # blocks may not fit in it and the heap would grow past the larger of the two phases
    release_freed_memory()
    f, x, y = f.to(dev), x.to(dev), y.to(dev)
    r = None if r is None else r.to(dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _inverter(target, recipe, feats, seed)
    net = net.to(dev)
    # foreach: the same arithmetic as the per-tensor loop, in fewer passes (its steps were 40% of training)
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr, foreach=True)
    gen = torch.Generator().manual_seed(seed + 2)
    n = len(f)
    for epoch in range(recipe.epochs):
        order = torch.randperm(n, generator=gen)
        order = order.to(dev)
        for start in range(0, n, recipe.batch_size):
            i = order[start : start + recipe.batch_size]
            train_step(net, opt, recipe, f[i], None if r is None else r[i], x[i], y[i])
        if on_step is not None:
            on_step(epoch + 1)
    net.eval()
    return net, feats


def train_step(
    net: Inverter, opt: torch.optim.Optimizer, recipe: LearnedInversionRecipe, f: torch.Tensor,
    x0: torch.Tensor | None, x: torch.Tensor, y: torch.Tensor,
) -> None:  # fmt: skip
    """One optimizer step of the inverter on a minibatch: features f (m, F), readouts x0 (m, B, D)
    or None, inputs x (m, B, D), labels y (m, B); its products in ``recipe.precision``, the matched
    loss in float32."""
    with _precision(recipe, f.device):
        img, logit = net(f, x0)
    loss = _matched_loss(img.float(), logit.float(), x, y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def _precision(recipe: LearnedInversionRecipe, dev: torch.device) -> torch.autocast:
    """The inverter's arithmetic: ``recipe.precision = "bfloat16"`` runs its linear layers under
    autocast (float32 weights, bfloat16 products); float32 leaves everything as it is."""
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=recipe.precision == "bfloat16")


def _inverter(target: Target, recipe: LearnedInversionRecipe, feats: Features, seed: int) -> Inverter:
    residual = uses_readout(target, recipe)
    full = target.batch * target.input_size
    width = readout_width(target.batch, target.input_size, recipe.hidden, recipe.projection_dim)
    sketch = CountSketch(full, width, seed + 3) if residual and width < full else None
    return Inverter(feats.dim, target.batch, target.input_size, target.classes, recipe.hidden, recipe.layers,
                    residual=residual, sketch=sketch)  # fmt: skip


def _load(cache: Path, target: Target, recipe: LearnedInversionRecipe) -> tuple[Inverter, Features, Readout]:
    state = torch.load(cache, weights_only=True, map_location="cpu")
    feats = Features(target, recipe, int(state["seed"]))
    reader = Readout(target, recipe, int(state["seed"]))
    with torch.random.fork_rng(devices=[]):  # the layers' initialization is overwritten below
        net = _inverter(target, recipe, feats, int(state["seed"]))
    net.load_state_dict(state["net"])
    net.eval()
    return net.to(device_of(target.model)), feats, reader


def prepare_inverter(
    target: Target, recipe: LearnedInversionRecipe, seed: int, cache: Path, on_step: Callable[[int], None] | None
) -> None:
    """Train the row's inverter into ``cache`` (a file, written atomically) unless it is there.

    The inverter depends on the row (model, profile, batch), the recipe and ``seed``, not on the
    victims, so every chunk of victims and every resumed run reuses it."""
    if Path(cache).is_file():
        return
    net, _ = train_inverter(target, recipe, seed, on_step)
    buf = io.BytesIO()
    torch.save({"seed": seed, "net": on_cpu(net.state_dict())}, buf)
    atomic_write_bytes(Path(cache), buf.getvalue())


def learned_inversion(target: Target, recipe: LearnedInversionRecipe, cache: Path) -> Inversion:
    """Invert every victim's update with the inverter :func:`prepare_inverter` left in ``cache``.

    Returns images (victims * batch, *input_shape), loss (victims,): 0 where the update is finite,
    NaN elsewhere, and the predicted labels (or None)."""
    net, feats, reader = _load(Path(cache), target, recipe)
    finite = torch.stack([torch.isfinite(t.flatten(1)).all(1) for t in target.update.values()]).all(0)
    x0 = reader(target.update) if net.residual else None
    with torch.no_grad(), _precision(recipe, device_of(target.model)):
        img, logit = net(feats(target.update), x0)
    img, logit = img.float(), logit.float()
    images = (img.clamp(0, 1) if net.residual else img).reshape(-1, *target.input_shape)
    per_sample = finite.repeat_interleave(target.batch)
    images = torch.where(per_sample.reshape(-1, *([1] * len(target.input_shape))), images, torch.nan)
    labels = logit.argmax(-1).reshape(-1) if recipe.predict_labels else None
    loss = torch.where(finite, 0.0, float("nan"))
    return Inversion(images, loss.float(), labels)
