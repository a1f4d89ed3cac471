"""How much faster attacking many victims at once is than attacking them one at a time.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_attacks.py [--victims 32] [--iterations 50]
        [--recipe inverting_gradients_plain] [--out bench_attacks.json]

For the float ANN and the SNN (loihi2 profile) the same victims are attacked with the same recipe,
iterations and per-victim seeds, once in one vectorized optimization and once in a Python loop
of single-victim attacks. The two runs must give the same reconstructions (their PSNRs are
reported side by side). Prints one JSON object (and writes it to --out): victims per second,
the batched/sequential speed-up, and seconds per attack iteration of the SNN relative to the ANN.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import torch

from neurofl.attacks import invert, load_recipe
from neurofl.data import load_dataset, split_dataset
from neurofl.gradients import per_sample_gradients
from neurofl.metrics import psnr
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile, quantize_update
from neurofl.report import write_json


def bench(kind: str, profile_name: str, victims: int, recipe, seed: int) -> dict:
    prof = load_profile(profile_name)
    clients = split_dataset(load_dataset("digits"), seed).clients
    x, y = torch.from_numpy(clients.x[:victims]), torch.from_numpy(clients.y[:victims])
    model = build_model(kind, Architecture((1, 8, 8), 10), prof, seed=seed)
    target = {k: quantize_update(v.detach(), prof.update) for k, v in per_sample_gradients(model, x, y).items()}

    t = time.perf_counter()
    batched = invert(model, target, y, (1, 8, 8), recipe, seed=seed, profile=prof)
    t_batched = time.perf_counter() - t

    t = time.perf_counter()
    single = [
        invert(model, {k: v[i : i + 1] for k, v in target.items()}, y[i : i + 1], (1, 8, 8), recipe, seed=seed + i,
               profile=prof).images
        for i in range(victims)
    ]
    t_seq = time.perf_counter() - t
    seq_images = torch.cat(single)
    p_b = psnr(batched.images.numpy(), x.numpy()).clip(max=100)
    p_s = psnr(seq_images.numpy(), x.numpy()).clip(max=100)
    return {
        "model": kind,
        "profile": profile_name,
        "victims": victims,
        "iterations": recipe.iterations,
        "batched_seconds": t_batched,
        "sequential_seconds": t_seq,
        "batched_victims_per_second": victims / t_batched,
        "sequential_victims_per_second": victims / t_seq,
        "speedup": t_seq / t_batched,
        "batched_seconds_per_iteration": t_batched / recipe.iterations,
        "psnr_batched": float(p_b.mean()),
        "psnr_sequential": float(p_s.mean()),
        "max_abs_image_difference": float((batched.images - seq_images).abs().max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--victims", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--recipe", default="inverting_gradients_plain")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    recipe = dataclasses.replace(load_recipe(args.recipe), iterations=args.iterations)
    models = [("ann", "float32"), ("snn", "loihi2")]
    rows = [bench(kind, prof, args.victims, recipe, args.seed) for kind, prof in models]
    ann, snn = rows
    result = {
        "benchmark": "bench_attacks",
        "recipe": recipe.name,
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "torch": torch.__version__,
        "rows": rows,
        "snn_over_ann_seconds_per_iteration": snn["batched_seconds_per_iteration"]
        / ann["batched_seconds_per_iteration"],
        "snn_over_ann_seconds_per_iteration_single_victim": snn["sequential_seconds"] / ann["sequential_seconds"],
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
