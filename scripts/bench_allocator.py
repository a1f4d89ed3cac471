"""The default study's two heaviest steps under glibc's default allocator and with freed memory kept.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_allocator.py [--repeats 3] [--steps 5]
        [--victims 16] [--cases conv_matching_step,inverter_training_step] [--out results/bench_allocator.json]

Cases, at the default study's batch 16:

* ``conv_matching_step``: one gradient-matching step on the fashion-mnist conv SNN under loihi2
  (``scripts/bench_study_steps.py``'s case, as the library runs it), ``--victims`` x 16 candidates.
* ``inverter_training_step``: one optimizer step of the learned inverter of dvs-digits at batch 16
  (the study's: features 2,049 -> 1,024 -> 1,024 -> 16 codes of 256, each decoded through 1,024 to
  12,800 event values; 20.7M parameters), ``learned_inversion``'s recipe (bfloat16 products, Adam),
  on a minibatch of 128 random updates: 128 x 16 x 12,800 outputs, their targets and gradients.

The allocator policy is a process's (:mod:`neurofl.runs.allocator`: it cannot be undone), so each
variant runs in a fresh process: ``glibc_default`` (``NEUROFL_KEEP_FREED_MEMORY=0``) and ``kept``,
interleaved ``--repeats`` times. A process runs one untimed step, then ``--steps`` timed ones, and
reports per step the medians of wall, user and system CPU seconds and minor page faults, its peak
RSS, and a SHA-256 of what the last step computed (the input gradient; the inverter's parameters),
which must be equal across the variants. The JSON records the medians over repeats, the ratio of
wall seconds from this run, the thread settings and the load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

VARIANTS = ("glibc_default", "kept")
MEASURES = ("wall_seconds", "user_seconds", "system_seconds", "minor_faults")


def _matching_step(victims: int) -> Callable[[], torch.Tensor]:
    from bench_study_steps import _conv_matching_step  # the same case the step benchmark times

    step, _ = _conv_matching_step(victims)
    return step


def _inverter_step(_victims: int) -> Callable[[], torch.Tensor]:
    from neurofl.attacks.learned import Inverter, train_step
    from neurofl.attacks.recipe import LearnedInversionRecipe, load_attack

    _, (recipe,) = load_attack("learned_inversion", None)
    assert isinstance(recipe, LearnedInversionRecipe)
    batch, size = 16, 2 * 20 * 20 * 16  # dvs-digits: 2 polarities x 20 x 20 pixels x 16 time bins
    torch.manual_seed(0)
    net = Inverter(recipe.projection_dim + 1, batch, size, 10, recipe.hidden, recipe.layers)
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr, foreach=True)
    g = torch.Generator().manual_seed(1)
    m = recipe.batch_size
    f, x = torch.randn((m, recipe.projection_dim + 1), generator=g), torch.rand((m, batch, size), generator=g)
    y = torch.randint(0, 10, (m, batch), generator=g)

    def step() -> torch.Tensor:
        train_step(net, opt, recipe, f, None, x, y)
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    return step


CASES = {"conv_matching_step": _matching_step, "inverter_training_step": _inverter_step}


def child(case: str, variant: str, steps: int, victims: int) -> dict[str, object]:
    """One process's measurement (run with ``--child``): the policy, then the case's steps."""
    from neurofl.runs.allocator import keep_freed_memory

    torch.set_num_threads(1)
    kept = keep_freed_memory({"NEUROFL_KEEP_FREED_MEMORY": "1" if variant == "kept" else "0"})
    step = CASES[case](victims)
    out = step()  # untimed: the first allocations of every size
    per_step: dict[str, list[float]] = {m: [] for m in MEASURES}
    for _ in range(steps):
        r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        out = step()
        r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for m, v in zip(MEASURES, (w1 - w0, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime,
                                   r1.ru_minflt - r0.ru_minflt), strict=True):  # fmt: skip
            per_step[m].append(v)
    return {"kept": kept, **{m: statistics.median(v) for m, v in per_step.items()},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "output_sha256": hashlib.sha256(out.contiguous().numpy().tobytes()).hexdigest()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--victims", type=int, default=16)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--out", default="results/bench_allocator.json")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        case, variant = args.child
        print(json.dumps(child(case, variant, args.steps, args.victims)), flush=True)
        return
    from neurofl.report import write_json
    from neurofl.runs.timing import machine_info

    load_before = os.getloadavg()
    results = {}
    for case in args.cases.split(","):
        runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for _ in range(args.repeats):  # interleaved, so a change of load hits both alike
            for v in VARIANTS:
                cmd = [sys.executable, __file__, "--child", case, v, "--steps", str(args.steps),
                       "--victims", str(args.victims)]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                runs[v].append(json.loads(done.stdout.strip().splitlines()[-1]))
        row: dict[str, Any] = {
            f"{v}_{m}": statistics.median(r[m] for r in runs[v]) for v in VARIANTS for m in (*MEASURES, "peak_rss_mb")
        }
        kept = [r["kept"] for v in VARIANTS for r in runs[v]]
        row["policy_in_effect"] = kept == [v == "kept" for v in VARIANTS for _ in runs[v]]
        row["outputs_equal"] = len({r["output_sha256"] for v in VARIANTS for r in runs[v]}) == 1
        row["default_over_kept_wall"] = float(row["glibc_default_wall_seconds"]) / float(row["kept_wall_seconds"])
        results[case] = row
        print(case, row, flush=True)
    write_json(args.out, {
        "benchmark": "bench_allocator",
        "command": f"scripts/bench_allocator.py --repeats {args.repeats} --steps {args.steps} --victims {args.victims} "
                   f"--cases {args.cases}",
        "machine": machine_info(),
        "glibc": os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "results": results,
        **{f"ratio {name}, glibc default / kept (wall s)": r["default_over_kept_wall"] for name, r in results.items()},
    })  # fmt: skip
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
