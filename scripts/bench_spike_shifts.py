"""The SNN's one-step shifts (the blocks' output delay and its adjoint) without ``F.pad``'s zero
fill, against ``F.pad``, on the study's two heaviest SNN uses.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_spike_shifts.py [--repeats 5] [--victims 16]
        [--out results/bench_spike_shifts.json]

Cases, at the default study's batch 16 under loihi2:

* ``conv_matching_step``: one gradient-matching step on the fashion-mnist conv SNN (1x28x28,
  12 channels, strides 2, 2, 1): ``--victims`` x 16 candidate samples, their per-client update
  kept differentiable, the cosine distance to a target update and its gradient w.r.t. the inputs
  (the attacks' second-order step);
* ``mlp_signal``: the backward signal at the digits MLP's first layer (1x8x8, 128 hidden) of
  ``--victims`` x 16 x 32 candidates, one generation of the disaggregation search (first order).

``fill_free`` is the library as shipped; ``padded`` runs the shifts and the delayed spike
comparison on ``F.pad`` (:func:`neurofl.models.cuba.padded_shifts`). Both results are first
checked equal bit for bit (``equal``). Each figure is the median over ``--repeats`` calls after one
untimed call, the variants interleaved; the JSON records CPU and wall seconds, their ratio from
this run, the thread settings and the load.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch

from neurofl.leakage.gradients import first_layer_signal, flatten, per_sample_gradients
from neurofl.models import Architecture, build_model, cuba
from neurofl.models.conv import ConvArchitecture
from neurofl.profiles import load_profile
from neurofl.runs.timing import Variant, compare_variants, variants_record

BATCH, POPULATION = 16, 32


def _variant(name: str) -> AbstractContextManager[None]:
    """The shifts of variant ``name`` (see the module docstring)."""
    return cuba.padded_shifts() if name == "padded" else nullcontext()


def _conv_matching_step(victims: int) -> Callable[[], torch.Tensor]:
    arch = ConvArchitecture((1, 28, 28), 10)
    model = build_model("snn", arch, load_profile("loihi2"), seed=0)
    g = torch.Generator().manual_seed(0)
    n = victims * BATCH
    x0, y = torch.rand((n, 1, 28, 28), generator=g), torch.randint(0, 10, (n,), generator=g)
    target = flatten(per_sample_gradients(model, torch.rand((n, 1, 28, 28), generator=g), y, group=BATCH)).detach()
    for p in model.parameters():  # the attack's: only the candidate inputs are differentiated
        p.requires_grad_(False)

    def step() -> torch.Tensor:
        x = x0.clone().requires_grad_(True)
        cand = flatten(per_sample_gradients(model, x, y, create_graph=True, group=BATCH))
        dist = 1 - torch.nn.functional.cosine_similarity(cand, target, dim=1)
        (dx,) = torch.autograd.grad(dist.sum(), x)
        return dx

    return step


def _mlp_signal(victims: int) -> Callable[[], torch.Tensor]:
    arch = Architecture((1, 8, 8), 10)
    model = build_model("snn", arch, load_profile("loihi2"), seed=0)
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    n = victims * BATCH * POPULATION
    x, y = torch.rand((n, 1, 8, 8), generator=g), torch.randint(0, 10, (n,), generator=g)
    return lambda: first_layer_signal(model, x, y)


CASES: dict[str, Callable[[int], Callable[[], torch.Tensor]]] = {
    "conv_matching_step": _conv_matching_step, "mlp_signal": _mlp_signal}  # fmt: skip
VARIANTS = ("fill_free", "padded")


def _case(build: Callable[[int], Callable[[], torch.Tensor]], victims: int) -> tuple[Callable[[], Any], Variant]:
    return build(victims), _variant


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--victims", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("results/bench_spike_shifts.json"))
    args = ap.parse_args()
    load_before = os.getloadavg()
    cases = {name: functools.partial(_case, build, args.victims) for name, build in CASES.items()}
    results = compare_variants(cases, VARIANTS, args.repeats, lambda a, b: {"equal": torch.equal(a, b)})
    command = "scripts/bench_spike_shifts.py " + f"--repeats {args.repeats} --victims {args.victims}"
    result = variants_record("bench_spike_shifts", command, VARIANTS, results, load_before, victims=args.victims,
                             batch=BATCH)  # fmt: skip
    from neurofl.report import write_json

    write_json(args.out, result)
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
