"""How much memory an attack takes, estimated before it runs, and the budget it must fit.

One concept: an attack task's **working memory** (bytes it allocates above what the process
already holds when it starts: the model, the dataset and the interpreter are not counted) is
estimated from the model's size, the time steps, the batch, the victims attacked together (a
chunk) and the recipe's family, as ``fixed + per_victim * victims`` (:class:`Estimate`). The
per-family factors (:data:`FACTORS`) were calibrated by measuring peak RSS on real configurations
(``scripts/bench_scale.py``: every family at the CIFAR-100, DVS128 Gesture, LFW and digits shapes,
``results/bench_scale.json`` records measured vs estimated) and rounded up, so the estimate stays
above what was measured. What the calibration did not reach: disaggregation and Cocktail Party
apply only to a fully connected first layer, so they were measured on digits alone; learned
inversion's training at the suite's settings was measured where it fits (its simulated-update call
of 512 samples at the CIFAR-100 SNN shape is extrapolated from 16 and 32 samples: 43 MiB each); CUDA
memory has not been measured (no GPU where this was written).

The budget (``--max-memory``, :func:`parse_size`) defaults to :data:`DEFAULT_SHARE` of the memory
the machine has available when the command starts (``MemAvailable``; the physical memory where that
cannot be read). Commands set it with :func:`set_budget`, which keeps it in the environment
variable :data:`ENV` so that forked row workers and a local Ray instance's task processes inherit
it; work split over ``N`` processes gives each ``1/N`` of it (:func:`divided`).

:func:`chunk_size` picks the largest chunk of victims whose estimate fits (at most the caller's
cap), and refuses in one line (:class:`~neurofl.errors.UserError`) naming what to lower when even
one victim does not fit.

``train``, ``fl`` and ``verify`` are estimated alike before they start (the section at the end:
:func:`training_step`, :func:`fl_round`, :func:`lava_chunk`): ``train`` evaluates in chunks that fit
and ``verify`` runs its samples through Lava in chunks that fit; what cannot be split (a training
step, a federated round) is refused in one line naming the option to lower (:func:`check_fits`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from neurofl.errors import UserError

if TYPE_CHECKING:  # torch and the attacks are imported where an estimate is made
    import torch

    from neurofl.attacks.recipe import Recipe
    from neurofl.attacks.target import Target

ENV = "NEUROFL_MAX_MEMORY"
DEFAULT_SHARE = 0.8  # of MemAvailable at start: the rest is left to the machine's other work
FLOAT = 4  # bytes of a float32 value
DOUBLE = 8

#: Per-family factors, in stored values per value of the model (calibrated, rounded up).
#: ``act``: values kept per activation value (one sample, every layer and time step) of each
#: candidate sample (the forward's graph, the backward's, and with the full backward the
#: double-backward's); ``par``: values per model parameter per candidate update (the simulated
#: update, its graph, the target's copy, the distance's temporaries).
FACTORS: dict[str, dict[str, float]] = {
    # the detached backward saves little: its forward graph is kept per candidate all the same
    # (measured: 18 MiB per victim of a DVS128-shaped SNN for detached spike IG, 15 for the full one)
    "matching_full": {"act": 24.0, "par": 10.0},
    "matching_detached": {"act": 24.0, "par": 10.0},
    "disaggregation": {"act": 6.0, "par": 2.0, "label_par": 3.0},
    "simulate": {"act": 8.0, "par": 3.0},
    "rgap": {"par": 2.5},  # on the float64 matrices' values (the allocator keeps one victim's after it)
    # on the sum of projection, training data, simulation or training (1.5 refused dvs-digits batch 16,
    # whose inverter peaked at 6.6 GB of process RSS, under a budget of 15 GB)
    "learned": {"scale": 1.0},
}
SLACK = 1.25  # the estimate is this much above the calibrated factors' sum
FLOOR = 32 << 20  # added once: the allocator's and the first call's own buffers (24 MiB measured, memory kept)
PER_VICTIM_FLOOR = 1 << 20  # added per victim: small temporaries the factors do not count


@dataclass(frozen=True)
class Footprint:
    """What a model holds, counted once on one zero sample.

    params : trainable parameters (values); activations : values every leaf module outputs for
    one sample over all time steps (an SNN's encoded input included); input_size : values of one
    input sample; time_steps : T (1 for an ANN); first_layer : (neurons, inputs) of the first
    weight layer's update, flattened.
    """

    params: int
    activations: int
    input_size: int
    time_steps: int
    first_layer: tuple[int, int]


def footprint(model: torch.nn.Module, input_shape: tuple[int, ...]) -> Footprint:
    """Count ``model``'s parameters and one sample's activations (a no-grad forward pass of a zero
    input of ``input_shape`` on the model's device, with forward hooks on its leaf modules)."""
    import torch

    from neurofl.runs.device import device_of

    sizes: list[int] = []

    def hook(_m: torch.nn.Module, _i: object, out: object) -> None:
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                sizes.append(t.numel())

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        # a rate code draws its spikes from the global generator when given none: leave it as it was
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model(torch.zeros(1, *input_shape, device=device_of(model)))
    finally:
        for h in handles:
            h.remove()
    steps = int(getattr(model, "time_steps", 1) or 1)
    input_size = math.prod(input_shape)
    encoded = input_size * steps if len(input_shape) < 4 and steps > 1 else input_size
    weights = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() > 1]
    first = weights[0] if weights else next(iter(model.parameters()))
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Footprint(params, sum(sizes) + encoded, input_size, steps, (first.shape[0], first[0].numel()))


@dataclass(frozen=True)
class Estimate:
    """Working memory in bytes: ``fixed`` once per task (per row: a learned inverter's training)
    plus ``per_victim`` for each victim attacked together (for ``train``'s evaluation and ``verify``:
    for each sample of a chunk)."""

    fixed: int
    per_victim: int

    def bytes(self, victims: int) -> int:
        """The estimate for a chunk of ``victims`` victims, in bytes."""
        return self.fixed + self.per_victim * victims


def _matching(fp: Footprint, batch: int, restarts: int, detached: bool, local_steps: int) -> int:
    f = FACTORS["matching_detached" if detached else "matching_full"]
    per = f["act"] * batch * fp.activations + f["par"] * fp.params + 4 * batch * fp.input_size
    return int(restarts * per * max(1, local_steps) * FLOAT)


def _disaggregation(fp: Footprint, batch: int, population: int, classes: int) -> int:
    f = FACTORS["disaggregation"]
    h, d = fp.first_layer
    candidates = batch * (population + 1)
    signals = candidates * (f["act"] * fp.activations * FLOAT + 3 * h * DOUBLE + 2 * d * DOUBLE)
    svd = 3 * h * d * DOUBLE  # the first layer's update, float64, and its factors
    labels = batch * classes * (f["label_par"] * fp.params + f["act"] * fp.activations) * FLOAT  # solve_labels
    return int(signals + svd + labels + f["par"] * fp.params * FLOAT)


def _rgap(model: torch.nn.Module) -> int:
    """R-GAP's float64 systems (neurofl/attacks/rgap.py): every hidden layer's forward matrix
    (outputs x inputs), kept for all victims, and the largest layer's system while one victim is
    solved (weight-gradient and stacked matrices, their Gram matrix); victims are solved one by one,
    so none of it grows with the chunk."""
    from neurofl.attacks.rgap import stages

    layers = stages(model) or []
    dims = [(st.unknowns, math.prod(st.out_shape), st.weight.numel()) for st in layers[:-1]]
    forward = sum(n_in * n_out for n_in, n_out, _ in dims)
    work = max((2 * (n_out + w) * n_in + w * n_in + 2 * n_in * n_in for n_in, n_out, w in dims), default=0)
    return int(FACTORS["rgap"]["par"] * (forward + work) * DOUBLE)


def estimate(target: Target, recipe: Recipe, fp: Footprint | None = None) -> Estimate:
    """The working memory of ``recipe`` on ``target`` (see the module docstring).

    Parameters
    ----------
    target : what is attacked (model, batch, input shape, local steps)
    recipe : the recipe; its family picks the formula
    fp : the model's :class:`Footprint` (computed when None)

    Returns
    -------
    Estimate
        ``fixed`` and ``per_victim``, bytes; conservative (above the measured peaks).
    """
    from neurofl.attacks.recipe import (
        AttackRecipe,
        CocktailPartyRecipe,
        DisaggregationRecipe,
        LearnedInversionRecipe,
        RgapRecipe,
        feature_projection,
        load_recipe,
        readout_width,
    )

    fp = footprint(target.model, target.input_shape) if fp is None else fp
    b = target.batch
    fixed, per = 0, 0
    if isinstance(recipe, AttackRecipe):
        per = _matching(fp, b, recipe.restarts, recipe.backward == "detached", target.local_steps)
    elif isinstance(recipe, DisaggregationRecipe):
        per = _disaggregation(fp, b, recipe.population, target.classes)
    elif isinstance(recipe, CocktailPartyRecipe):
        h, d = fp.first_layer
        per = int(recipe.restarts * 4 * (h * d + b * d) * DOUBLE)
        if recipe.refine != "none":
            inner = estimate(target, load_recipe(recipe.refine), fp)
            fixed, per = inner.fixed, max(per, inner.per_victim)
    elif isinstance(recipe, LearnedInversionRecipe):
        f = FACTORS["simulate"]
        update = fp.first_layer[0] * fp.first_layer[1] if recipe.features == "first_layer" else fp.params
        dim = min(update, recipe.projection_dim) + 1
        # learned.SIMULATE_CHUNK = 512 samples per simulated-update call: 512 // b updates of the model's
        # size (each group's update is summed in one contraction, no per-sample copy) and 512 samples'
        # activations
        calls = min(max(1, 512 // b), recipe.training_updates)
        samples = min(512, recipe.training_updates * b)
        simulate = (calls * f["par"] * fp.params + samples * f["act"] * fp.activations) * FLOAT
        # past its dense limit a projection is a count sketch (two arrays of the update's size), and the
        # trunk sees the readouts through one
        kind = feature_projection(update, recipe.projection_dim)
        projection = {"sketch": 2 * update, "gaussian": update * recipe.projection_dim, "none": 0}[kind] * FLOAT
        data = recipe.training_updates * (dim + 3 * b * fp.input_size + b) * FLOAT
        width = dim + readout_width(b, fp.input_size, recipe.hidden, recipe.projection_dim)
        net = recipe.hidden * (width + recipe.hidden * recipe.layers + 256 * b) + 256 * (fp.input_size + target.classes)
        training = 4 * net * FLOAT + 4 * recipe.batch_size * (recipe.hidden + b * (256 + fp.input_size)) * FLOAT
        fixed = int(FACTORS["learned"]["scale"] * (projection + data + max(simulate, training)))
        per = int((2 * dim + 4 * b * fp.input_size) * FLOAT)
    elif isinstance(recipe, RgapRecipe):
        fixed = _rgap(target.model)
        per = 4 * fp.input_size * DOUBLE
    return Estimate(FLOOR + int(fixed * SLACK), PER_VICTIM_FLOOR + int(per * SLACK))


def label_estimate(fp: Footprint, batch: int) -> int:
    """Working memory of the row's label recovery, bytes: nothing at batch 1 (iDLG reads the last
    layer's update), above it the count estimate's calibration, per-sample gradients of
    ``CALIBRATION_CHUNK`` probe samples at a time (:func:`neurofl.attacks.labels.count_labels`)."""
    if batch == 1:
        return 0
    f = FACTORS["simulate"]
    samples = 64  # neurofl.attacks.labels.CALIBRATION_CHUNK (not imported: torch stays unloaded here)
    return FLOOR + int(SLACK * samples * (f["par"] * fp.params + f["act"] * fp.activations) * FLOAT)


# ---------------------------------------------------------------------------------------------
# The budget


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([KMGT]?)(i?B?)?\s*$", re.IGNORECASE)
_UNIT = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str, what: str = "--max-memory") -> int:
    """``4G``, ``512M``, ``1.5GiB``, ``2000000`` (bytes) -> bytes (binary units: ``K`` = 1024).

    Raises
    ------
    UserError
        One line naming ``what`` for anything else: ``0``, a negative or non-numeric value, NaN,
        infinity, or less than 1 MiB.

    >>> parse_size("4G"), parse_size("512M"), parse_size("1.5k")
    (4294967296, 536870912, 1536)
    """
    shown = " ".join(str(text).split())[:40]
    m = _SIZE.match(str(text))
    if m is None:
        raise UserError(f"{what} {shown!r}: expected a size such as 4G, 512M or 2000000 (bytes)")
    value = float(m.group(1)) * _UNIT[m.group(2).upper()]
    if not math.isfinite(value) or value < 1 << 20:
        raise UserError(f"{what} {shown!r}: expected at least 1M")
    if value > 1 << 60:
        raise UserError(f"{what} {shown!r}: larger than any machine's memory")
    return int(value)


def available_memory() -> int:
    """Bytes the machine has available now (``MemAvailable``; the physical memory where
    ``/proc/meminfo`` cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def default_budget() -> int:
    """:data:`DEFAULT_SHARE` of :func:`available_memory`, in bytes."""
    return int(DEFAULT_SHARE * available_memory())


def budget() -> int:
    """The budget in effect: the one :func:`set_budget` (or a parent process) put in
    :data:`ENV`, else :func:`default_budget`; bytes."""
    raw = os.environ.get(ENV, "").strip()
    return parse_size(raw, ENV) if raw else default_budget()


def set_budget(limit: int | None, workers: int = 1) -> int:
    """Make ``limit`` bytes (None: :func:`default_budget`), divided among ``workers`` processes
    that work side by side, the budget of this process and the processes it starts; returns it."""
    value = (default_budget() if limit is None else int(limit)) // max(1, workers)
    os.environ[ENV] = str(value)
    return value


@contextlib.contextmanager
def divided(workers: int) -> Iterator[None]:
    """Within the block each of ``workers`` processes started here gets ``1/workers`` of the
    budget (they inherit :data:`ENV`)."""
    before = os.environ.get(ENV)
    total = budget()
    os.environ[ENV] = str(max(1, total // max(1, workers)))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def mib(n: float) -> str:
    """Bytes as a short human size (``1.5 GiB``, ``300 MiB``)."""
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MiB"


def chunk_size(
    target: Target, recipe: Recipe, limit: int, cap: int, fp: Footprint | None = None, fixed_chunk: str | None = None
) -> int:
    """The largest number of victims (at most ``cap``) whose estimate fits ``limit`` bytes.

    ``fixed_chunk``: why the recipe is attacked on the whole chunk (``min(cap, victims)``) or not
    at all (None: any chunk); the refusal quotes it.

    Raises
    ------
    UserError
        One line naming the settings to lower when not even one victim (or, with ``fixed_chunk``,
        the whole chunk) fits.
    """
    est = estimate(target, recipe, fp)
    need = min(cap, target.victims) if fixed_chunk else 1
    if est.bytes(need) > limit:
        what = f"{need} victims together" if need > 1 else "one victim"
        extra = f" ({fixed_chunk})" if fixed_chunk and need > 1 else ""
        raise UserError(
            f"attack {recipe.name!r} on {what} needs about {mib(est.bytes(need))} (batch {target.batch}, "
            f"{footprint_steps(target, fp)} time steps), more than the memory budget of {mib(limit)}{extra}; "
            "lower --batch-size or the profile's time steps, or raise --max-memory"
        )
    if fixed_chunk:
        return need
    fit = (limit - est.fixed) // max(1, est.per_victim)
    return int(max(1, min(cap, fit)))


def footprint_steps(target: Target, fp: Footprint | None) -> int:
    """T of ``target``'s model (1 for an ANN)."""
    return fp.time_steps if fp is not None else int(getattr(target.model, "time_steps", 1) or 1)


def stochastic_encoding(target: Target) -> bool:
    """Whether the attacked model draws its input encoding at random (``rate``). Gradient matching,
    disaggregation and Cocktail Party (whose refinement is one of those) draw it from one generator
    per chunk of victims (``seed + 1`` of the chunk), so on such a model their results depend on
    the chunk; learned inversion and R-GAP do not."""
    if target.kind != "snn" or target.events:
        return False
    encoding = getattr(target.model, "encoding", None) or target.profile.spikes.input_encoding
    return encoding != "direct"


# ---------------------------------------------------------------------------------------------
# Training, federated rounds and Lava verification (``train``, ``fl``, ``verify``)
#
# Calibrated as FACTORS were (peak RSS above what the process held before the step, one fresh process
# per measurement, one thread): SLAYER SNNs at the digits (MLP), faces and dvs-digits (conv) shapes
# under loihi1 and loihi2, and the ANNs at the digits and faces shapes; each factor is the largest ratio
# measured, rounded up, and SLACK and FLOOR are added as for the attacks.

#: Stored values per activation value of each sample in a pass (``Footprint.activations``: one
#: sample, every layer and time step) and per model parameter. ``train``: one optimizer step on a
#: batch, forward, backward and Adam's update (measured: 6.4 values per activation, digits SNN; the
#: gradient and Adam's two moments per parameter); ``infer``: a no-grad forward pass (measured 3.2);
#: ``client``: a client's per-sample gradients (:func:`neurofl.leakage.gradients.per_sample_gradients`,
#: measured 6.6), whose per-sample weight gradients hold one parameter-sized tensor per sample.
STEP_FACTORS: dict[str, dict[str, float]] = {
    "train": {"act": 8.0, "par": 4.0},
    "infer": {"act": 4.0, "par": 3.0},  # par: the optimizer's state, still held while train evaluates
    "client": {"act": 8.0, "par": 1.0},
}
#: Lava's runtime for one run of a network (its processes, compiled network and channels), bytes:
#: measured 11 MiB (digits MLP) and 45 MiB (faces conv SNN) of proportional set size of the process
#: and its Lava processes, polled every 50 ms, one sample each.
LAVA_FIXED = 64 << 20
#: Bytes per input and output value (one neuron at one time step) of each sample in one Lava run: its
#: payload conversions, the ring buffers and their copies in Lava's processes (measured 117 B on digits,
#: 74 B on faces, above the SLAYER reference's pass).
LAVA_VALUE = 160


def training_step(fp: Footprint, batch: int) -> int:
    """Working memory of one training step (forward, backward, Adam's update) on ``batch`` samples.

    Returns
    -------
    int
        Bytes.
    """
    f = STEP_FACTORS["train"]
    return FLOOR + int(SLACK * (f["act"] * batch * fp.activations + f["par"] * fp.params) * FLOAT)


def inference(fp: Footprint) -> Estimate:
    """Working memory of a no-grad forward pass (an evaluation): ``fixed`` bytes once (the
    optimizer's state a training run still holds), ``per_victim`` bytes per sample of the pass."""
    f = STEP_FACTORS["infer"]
    return Estimate(FLOOR + int(SLACK * f["par"] * fp.params * FLOAT), int(SLACK * f["act"] * fp.activations * FLOAT))


def client_pass(fp: Footprint, samples: int, dp_sgd: bool = False) -> int:
    """Working memory of one per-sample-gradient pass over ``samples`` samples (one client's local
    step, or a round's clients computed together), bytes; ``dp_sgd``: plus DP-SGD's float64 copies
    of the per-sample gradients (clipping, noise)."""
    f = STEP_FACTORS["client"]
    per = f["act"] * fp.activations + f["par"] * fp.params + (4 * fp.params if dp_sgd else 0)
    return int(SLACK * samples * per * FLOAT)


def fl_round(fp: Footprint, pass_samples: int, uploads: int, eval_samples: int, dp_sgd: bool = False) -> int:
    """Working memory of one federated round in one process (the local engine, or a Flower node).

    Parameters
    ----------
    fp : the model's footprint
    pass_samples : samples of the largest per-sample-gradient pass (one client's batch; every
        client's of the round where they are computed together)
    uploads : client updates the process holds at once (each with its defended and quantized
        copies: 4 model sizes)
    eval_samples : samples of one pass of the test evaluation (0: none in this process)
    dp_sgd : the clients train with DP-SGD (:func:`client_pass`)

    Returns
    -------
    int
        Bytes: the round's held updates and model copies (global state, a client's start and
        weights: 6 model sizes), plus the larger of the gradient pass and the evaluation.
    """
    held = (4 * uploads + 6) * fp.params * FLOAT
    evaluation = inference(fp).per_victim * eval_samples
    return FLOOR + int(SLACK * held) + max(client_pass(fp, pass_samples, dp_sgd), evaluation)


def lava_chunk(fp: Footprint, inputs: int, outputs: int) -> Estimate:
    """Working memory of running a chunk of samples through Lava and the SLAYER reference (``neurofl
    verify``): ``fixed``, Lava's runtime (:data:`LAVA_FIXED`); ``per_victim``, per sample of the
    chunk, its Lava payloads and buffers (:data:`LAVA_VALUE` per input and output neuron and time
    step) and the reference's no-grad pass. ``inputs``, ``outputs``: neurons of the network's input
    and output layer; bytes."""
    per = LAVA_VALUE * (inputs + outputs) * fp.time_steps + inference(fp).per_victim
    return Estimate(FLOOR + LAVA_FIXED, int(SLACK * per))


def verify_held(inputs: int, outputs: int, time_steps: int) -> int:
    """Bytes ``neurofl verify`` holds per sample for the whole run, whatever the chunk: the encoded
    input (float32) and the output spikes of both simulators and their comparisons (8 bytes per
    output neuron and step)."""
    return (FLOAT * inputs + 8 * outputs) * time_steps


def check_fits(need: int, limit: int, what: str, lower: str) -> None:
    """Refuse work that needs ``need`` bytes under a budget of ``limit`` bytes.

    Raises
    ------
    UserError
        One line: ``what`` needs about ``need``, the budget, and ``lower`` (the options that shrink
        the work) or ``--max-memory`` to raise.
    """
    if need > limit:
        raise UserError(f"{what} needs about {mib(need)}; --max-memory is {mib(limit)}: lower {lower} or raise "
                        "--max-memory")  # fmt: skip


def units_that_fit(est: Estimate, limit: int, cap: int, what: str, lower: str) -> int:
    """The largest number of units (samples of a chunk), at most ``cap``, whose ``est`` fits ``limit``
    bytes; refused (:func:`check_fits`, ``what`` naming one unit's work) when one does not."""
    check_fits(est.bytes(1), limit, what, lower)
    return int(max(1, min(cap, (limit - est.fixed) // max(1, est.per_victim))))
