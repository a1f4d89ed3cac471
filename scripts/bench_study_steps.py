"""The default study's two heaviest steps, as the library runs them and as it ran them before.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_study_steps.py [--repeats 5] [--victims 16]
        [--out results/bench_study_steps.json]

Cases, at the default study's batch 16 under loihi2:

* ``conv_matching_step``: one gradient-matching step on the fashion-mnist conv SNN (1x28x28,
  12 channels, strides 2, 2, 1): ``--victims`` x 16 candidate samples, their per-client update
  kept differentiable, the cosine distance to a target update and its gradient w.r.t. the inputs.
  ``before``: SLAYER's own Conv synapses (autograd's convolution backward) on the direct input
  materialized over all T steps; ``library``: the first synapse run once on the one-step input,
  the Conv synapses' input gradient a transposed convolution.
* ``label_solve``: :func:`neurofl.attacks.labels.solve_labels` on the digits MLP SNN for
  ``--victims`` x 16 candidates, as disaggregation and Cocktail Party's refinement call it every
  few generations. ``before``: scipy's NNLS on the full system (the model's parameters as rows);
  ``library``: on its triangular factor.

Each case first runs both variants once, untimed, and records how far apart their results are
(``max_relative_difference`` of the input gradients; ``labels_equal``). Each figure is the median
over ``--repeats`` calls, the variants interleaved; the JSON records CPU and wall seconds, their
ratio from this run, the thread settings and the load.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import numpy as np
import torch
from lava.lib.dl.slayer.synapse import layer as slayer_synapse
from scipy.optimize import nnls

from neurofl.attacks import labels as label_module
from neurofl.leakage.gradients import flatten, per_sample_gradients
from neurofl.models import Architecture, build_model
from neurofl.models.conv import ConvArchitecture
from neurofl.models.snn import every_input_step
from neurofl.models.synapses import TransposedGradConv
from neurofl.profiles import load_profile
from neurofl.runs.timing import compare_variants, variants_record

BATCH = 16
Case = tuple[Callable[[], torch.Tensor], Callable[[str], AbstractContextManager[None]]]  # the call, its variants
VARIANTS = ("library", "before")
REDUCED = label_module.reduced_nnls  # the library's label solve, put back after each "before" call


def _conv_matching_step(victims: int) -> Case:
    arch = ConvArchitecture((1, 28, 28), 10)
    model = build_model("snn", arch, load_profile("loihi2"), seed=0)
    g = torch.Generator().manual_seed(0)
    n = victims * BATCH
    x0, y = torch.rand((n, 1, 28, 28), generator=g), torch.randint(0, 10, (n,), generator=g)
    target = flatten(per_sample_gradients(model, torch.rand((n, 1, 28, 28), generator=g), y, group=BATCH)).detach()
    for p in model.parameters():  # the attack's: only the candidate inputs are differentiated
        p.requires_grad_(False)

    @contextmanager
    def variant(name: str) -> Iterator[None]:
        convs = [b.synapse for b in model.blocks if isinstance(getattr(b, "synapse", None), TransposedGradConv)]
        if name != "before":
            yield
            return
        for syn in convs:
            syn.__class__ = slayer_synapse.Conv
        try:
            with every_input_step():
                yield
        finally:
            for syn in convs:
                syn.__class__ = TransposedGradConv

    def step() -> torch.Tensor:
        x = x0.clone().requires_grad_(True)
        cand = flatten(per_sample_gradients(model, x, y, create_graph=True, group=BATCH))
        dist = 1 - torch.nn.functional.cosine_similarity(cand, target, dim=1)
        (dx,) = torch.autograd.grad(dist.sum(), x)
        return dx

    return step, variant


def _full_nnls(a: np.ndarray, b: np.ndarray, maxiter: int | None = None) -> np.ndarray:
    return nnls(a, b, maxiter=maxiter)[0]


def _label_solve(victims: int) -> Case:
    arch = Architecture((1, 8, 8), 10)
    model = build_model("snn", arch, load_profile("loihi2"), seed=0)
    g = torch.Generator().manual_seed(1)
    n = victims * BATCH
    x, y = torch.rand((n, 1, 8, 8), generator=g), torch.randint(0, 10, (n,), generator=g)
    target = {k: v.detach() for k, v in per_sample_gradients(model, x, y, group=BATCH).items()}
    for p in model.parameters():
        p.requires_grad_(False)
    guess = (x + 0.1 * torch.rand(x.shape, generator=g)).clamp(0, 1)  # a nearby estimate, as the search has

    @contextmanager
    def variant(name: str) -> Iterator[None]:
        if name == "before":
            label_module.reduced_nnls = _full_nnls  # type: ignore[assignment]
        try:
            yield
        finally:
            label_module.reduced_nnls = REDUCED

    return lambda: label_module.solve_labels(model, guess, target, BATCH, 10, torch.Generator().manual_seed(2)), variant


CASES = {"conv_matching_step": _conv_matching_step, "label_solve": _label_solve}


def _difference(library: torch.Tensor, before: torch.Tensor) -> dict[str, float | bool]:
    """How far apart the variants' outputs are: input gradients by their largest relative
    difference, labels by equality."""
    if library.is_floating_point():
        return {"max_relative_difference": float((library - before).abs().max() / before.abs().max())}
    return {"labels_equal": bool(torch.equal(library, before))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--victims", type=int, default=16)
    ap.add_argument("--out", default="results/bench_study_steps.json")
    args = ap.parse_args()
    load_before = os.getloadavg()
    cases = {name: functools.partial(build, args.victims) for name, build in CASES.items()}
    results = compare_variants(cases, VARIANTS, args.repeats, _difference)
    command = f"scripts/bench_study_steps.py --repeats {args.repeats} --victims {args.victims}"
    result = variants_record("bench_study_steps", command, VARIANTS, results, load_before, victims=args.victims,
                             batch=BATCH)  # fmt: skip
    from neurofl.report import write_json

    write_json(args.out, result)
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
