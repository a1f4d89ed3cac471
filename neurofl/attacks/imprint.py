"""The imprint module of a malicious server (Fowl et al., ICLR 2022, "Robbing the Fed").

The server ships a model whose first layer reads ``[x, c]`` (the flattened input and one constant
channel of value ``c``): every one of its ``k`` neurons measures the input along the same direction
``m`` and is active above its own threshold ``b_i`` (weights ``[m, -b_i / c]``), thresholds
increasing at quantiles of ``m . x`` over the attacker's auxiliary data. The next layer gives every
imprint neuron the same outgoing weights, so a sample's backward signal ``g_n`` is the same at every
imprint neuron it reaches. Row ``i`` of the first layer's batch update is then
``sum_{n: m.x_n > b_i} g_n [x_n, c]``, and the difference of rows ``i`` and ``i + 1`` holds only the
samples whose measurement lies between the two thresholds: one sample, read exactly as
``c * D[:d] / D[d]``, when it is alone there.

For the SNN the imprint neurons are integrate-and-fire (no current memory, no leak) CUBA neurons
on the chip's weight grid and the constant channel is a graded input of value ``c``; a neuron's
backward signal is the spike surrogate's, a soft step in ``m . x - b_i`` rather than ReLU's
exact one, so thresholds are spread ``span`` current units wide to keep neighbours apart.

>>> import numpy as np, torch
>>> from neurofl.attacks.recipe import ImprintRecipe
>>> from neurofl.profiles import load_profile
>>> aux = np.random.default_rng(0).random((200, 16), dtype=np.float32)
>>> recipe = ImprintRecipe(name="imprint", attack="imprint", bins=32, span=10.0, constant_input=16.0)
>>> layout = imprint_layout(aux, recipe, load_profile("float32"), seed=0)
>>> model = ImprintMLP(layout, classes=3, seed=0)
>>> x = torch.tensor(aux[:2]); y = torch.tensor([0, 2])
>>> from neurofl.leakage.gradients import per_sample_gradients
>>> g = per_sample_gradients(model, x, y, group=2)["l1.weight"]
>>> rec = read_imprint(g, batch=2, constant=layout.constant)
>>> bool(np.allclose(np.sort(rec.numpy().sum(1)), np.sort(aux[:2].sum(1)), atol=1e-4))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurofl.attacks.recipe import ImprintRecipe
from neurofl.errors import UserError
from neurofl.profiles import HardwareProfile

# readout: a candidate whose cosine similarity with an earlier pick exceeds this is the same sample
# read from a neighbouring difference (the SNN's soft onset spreads one sample over a few rows)
_SAME_SAMPLE_COSINE = 0.98


@dataclass(frozen=True)
class ImprintLayout:
    """The imprint layer the server designs.

    direction : (d,) the measurement ``m`` (on the chip's weight grid)
    thresholds : (k,) increasing ``b_i`` in current units (each ``b_i / constant`` on the grid)
    constant : the constant input channel's value ``c``
    """

    direction: np.ndarray
    thresholds: np.ndarray
    constant: float

    @property
    def inputs(self) -> int:
        return len(self.direction) + 1

    def weight(self) -> torch.Tensor:
        """(k, d + 1) the first layer's weights ``[m, -b_i / c]``."""
        w = np.concatenate([np.tile(self.direction, (len(self.thresholds), 1)),
                            -(self.thresholds / self.constant)[:, None]], axis=1)  # fmt: skip
        return torch.tensor(w, dtype=torch.float32)


def _on_grid(v: np.ndarray, profile: HardwareProfile) -> np.ndarray:
    if not profile.weights.quantized:
        return v
    lo, hi = profile.weight_range
    step = profile.weight_step
    return np.clip(np.round(v / step) * step, lo, hi)


def imprint_layout(aux: np.ndarray, recipe: ImprintRecipe, profile: HardwareProfile, seed: int) -> ImprintLayout:
    """Place the imprint layer from the attacker's auxiliary inputs ``aux`` (n, *input_shape).

    The direction is a seeded Gaussian scaled so that ``max |m . x| = span`` over ``aux``; the
    thresholds sit at the quantiles 0, 1/bins, ... of ``m . x`` (the lowest moved one mean spacing
    down, so that a sample below every auxiliary one still reaches a neuron). On a quantized profile both are put
    on the weight grid (thresholds as ``b / c``), and thresholds that the grid merges are kept once.
    """
    flat = np.asarray(aux, np.float64).reshape(len(aux), -1)
    if len(flat) < 2:
        raise UserError("the imprint attack needs auxiliary data (at least 2 samples) to place its thresholds")
    m = np.random.default_rng(seed).standard_normal(flat.shape[1])
    scale = np.abs(flat @ m).max()
    m = _on_grid(m * recipe.span / max(scale, 1e-12), profile)
    q = np.quantile(flat @ m, np.linspace(0.0, 1.0, recipe.bins + 1)[:-1])
    q[0] -= (q[-1] - q[0]) / recipe.bins  # the lowest threshold one spacing below every auxiliary sample
    c = recipe.constant_input
    b = np.unique(_on_grid(q / c, profile) * c)
    return ImprintLayout(m.astype(np.float32), b.astype(np.float64), float(c))


def _outgoing(classes: int, k: int, seed: int, gain: float) -> torch.Tensor:
    """(classes, k): every imprint neuron's outgoing weights equal, one seeded value per class (a
    sample's signal at the imprint layer is then sum_j c_j dL/dz_j, not zero as with equal c_j)."""
    c = torch.randn(classes, generator=torch.Generator().manual_seed(seed + 7)) * gain
    return c[:, None].repeat(1, k)


class ImprintMLP(torch.nn.Module):
    """The malicious ANN: ``[x, c]`` -> imprint layer (ReLU) -> equal-column readout.

    forward: x (batch, *input_shape) -> logits (batch, classes)
    """

    def __init__(self, layout: ImprintLayout, classes: int, seed: int):
        super().__init__()
        k = len(layout.thresholds)
        self.constant = layout.constant
        self.l1 = torch.nn.Linear(layout.inputs, k, bias=False)
        self.l2 = torch.nn.Linear(k, classes, bias=False)
        with torch.no_grad():
            self.l1.weight.copy_(layout.weight())
            self.l2.weight.copy_(_outgoing(classes, k, seed, 0.1))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        flat = x.reshape(len(x), -1)
        inp = torch.cat([flat, torch.full((len(x), 1), self.constant, dtype=flat.dtype, device=flat.device)], 1)
        return self.l2(torch.relu(self.l1(inp)))

    def weight_layers(self) -> list[tuple[str, torch.nn.Module]]:
        return [("l1.weight", self.l1), ("l2.weight", self.l2)]


def imprint_snn(layout: ImprintLayout, classes: int, profile: HardwareProfile, seed: int) -> torch.nn.Module:
    """The malicious SNN on ``profile``'s chip: SLAYER CUBA blocks with the profile's weight
    quantizer, graded-input arithmetic and encoding; the imprint neurons integrate and fire
    (current decay 1, voltage decay 0), the readout neurons are the standard model's.

    Raises UserError for a profile whose neurons are not SLAYER's CUBA (the imprint layer is built
    from lava-dl blocks)."""
    from lava.lib.dl import slayer

    from neurofl.data.encoding import encode
    from neurofl.models.arch import NeuronParams
    from neurofl.models.cuba import fuse_neurons
    from neurofl.models.snn import SlayerNetwork, require_slayer_grids

    require_slayer_grids(profile)
    standard = NeuronParams()
    readout = standard.as_slayer()
    iaf = {**readout, "current_decay": 1.0, "voltage_decay": 0.0}
    k = len(layout.thresholds)

    class ImprintSNN(SlayerNetwork):
        def __init__(self) -> None:
            super().__init__()
            first = slayer.block.cuba.Dense(iaf, layout.inputs, k, weight_norm=False,
                                            pre_hook_fx=profile.quantize_weight, delay_shift=True)  # fmt: skip
            second = slayer.block.cuba.Dense(readout, k, classes, weight_norm=False,
                                             pre_hook_fx=profile.quantize_weight, delay_shift=True)  # fmt: skip
            self.blocks = torch.nn.ModuleList([first, second])
            fuse_neurons(torch.nn.ModuleList([first]), iaf)
            fuse_neurons(torch.nn.ModuleList([second]), readout)
            with torch.no_grad():
                first.synapse.weight.copy_(layout.weight().reshape(first.synapse.weight.shape))
                second.synapse.weight.copy_(_outgoing(classes, k, seed, 0.5).reshape(second.synapse.weight.shape))
            self.time_steps = profile.simulation.time_steps
            self.encoding = profile.spikes.input_encoding
            self.constant = layout.constant
            self.floor_graded_input(profile)

        def input_steps(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
            s = encode(x, self.encoding, self.encoded_steps, generator)
            const = torch.full((len(x), 1, s.shape[-1]), self.constant, dtype=s.dtype, device=s.device)
            return self.graded_payload(torch.cat([s, const], 1))

    return ImprintSNN()


def read_imprint(update: torch.Tensor, batch: int, constant: float) -> torch.Tensor:
    """Read a batch out of the imprint layer's update.

    update : (victims, k, d + 1) the first layer's update (rows in increasing threshold order)
    -> (victims * batch, d): per victim, the ``batch`` consecutive-row differences with the largest
    constant-channel entry, each divided by it (times ``constant``), clipped to [0, 1]; a difference
    that repeats an earlier pick (cosine above 0.98) is skipped. Victims with fewer distinct
    differences than ``batch`` get blank (zero) images for the rest.
    """
    u = update.detach().double()
    d = u.shape[2] - 1
    diff = torch.cat([u[:, :-1] - u[:, 1:], u[:, -1:]], 1)  # the last row: everything above the top threshold
    out = torch.zeros((u.shape[0], batch, d), dtype=torch.float64)
    for v in range(u.shape[0]):
        den = diff[v, :, d]
        picked: list[torch.Tensor] = []
        for i in torch.argsort(den.abs(), descending=True).tolist():
            if len(picked) == batch or den[i].abs() <= 1e-12 * den.abs().max().clamp_min(1e-300):
                break
            r = (diff[v, i, :d] / den[i] * constant).clamp(0.0, 1.0)
            if any(torch.nn.functional.cosine_similarity(r, p, 0) > _SAME_SAMPLE_COSINE for p in picked):
                continue
            picked.append(r)
        if picked:
            out[v, : len(picked)] = torch.stack(picked)
    return out.reshape(-1, d).float()
