"""Attack costs at the field's shapes, from random data (nothing is downloaded): seconds per
iteration per victim, measured peak memory per chunk of victims against the estimate of
neurofl/runs/memory.py, the largest chunk under a memory budget, and the attacks that do not fit.

    OMP_NUM_THREADS=1 nice .venv/bin/python scripts/bench_scale.py [--device cpu|cuda]
        [--shapes cifar100,dvs128-gesture,lfw,digits] [--rows ann,snn] [--batches 1,4] [--chunks 1,2,4]
        [--iterations 2] [--budget 4G] [--out results/bench_scale.json]

Shapes (``SHAPES``): CIFAR-100 3x32x32, 100 classes, a conv net of 64 channels in 3 layers
(kernel 3, strides 1, 2, 2: the project's :class:`~neurofl.models.conv.ConvArchitecture` has one
width for every conv layer, so 64 stands for a 32-64-128 VGG's middle); DVS128 Gesture as the
reader frames it (2 polarities, 128x128 downsampled to 32x32, 16 time bins, 11 classes,
``neurofl/data/tonic_layouts.py``), the conv SNN ``architecture_for`` builds; LFW faces as
``neurofl/data/lfw.py`` crops them (1x31x23 grey, 62 people at ``min_faces`` 20), the conv model
``architecture_for`` builds; digits (1x8x8 MLP, the calibration's small end). The SNN runs under
loihi2 (the study's chip, direct encoding), the ANN in float32.

Per (shape, row, attack of the ``suite_study`` suite): each attack runs on chunks of ``--chunks``
victims with ``--iterations`` iterations (disaggregation: as many ALS steps and search generations;
learned inversion: 128 simulated updates, one epoch, and the estimate is made for those settings
too, then for the suite's). Memory is the peak above the RSS at the attack's start (Linux:
``/proc/self/clear_refs`` resets the high-water mark, glibc's ``malloc_trim`` returns freed memory
first; on CUDA ``torch.cuda.max_memory_allocated``). Memory does not grow with the iteration count.
Writes one JSON file with the machine's thread settings; numbers in the docs are read from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SHAPES: dict[str, dict[str, Any]] = {
    "cifar100": {"input_shape": (3, 32, 32), "classes": 100, "kind": "image",
                 "conv": {"channels": 64, "kernel": 3, "strides": (1, 2, 2)}},
    "dvs128-gesture": {"input_shape": (2, 32, 32, 16), "classes": 11, "kind": "events", "conv": {}},
    "lfw": {"input_shape": (1, 31, 23), "classes": 62, "kind": "faces", "conv": {}},
    "digits": {"input_shape": (1, 8, 8), "classes": 10, "kind": "image", "conv": None},
}


QUICK_UPDATES = 128  # learned inversion's simulated updates in the measured run (the suite's: 2048)


def _status(key: str) -> int:
    """A ``/proc/self/status`` field in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _settle() -> int:
    """Free what can be freed and reset the peak; returns the RSS the measurement starts from."""
    from neurofl.runs.allocator import release_freed_memory

    gc.collect()
    release_freed_memory()
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _peak_above(start: int, device: Any) -> int:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return max(0, _status("VmHWM") - start)


def _machine() -> dict[str, Any]:
    import torch

    return {
        "host_cpus": os.cpu_count(), "machine": platform.machine(), "python": sys.version.split()[0],
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NEUROFL_THREADS")},
        "nice": os.nice(0), "load_average": list(os.getloadavg()),
    }


def _target(shape: str, kind: str, batch: int, victims: int, device: Any, seed: int = 0):
    import torch

    from neurofl.attacks.target import Target
    from neurofl.data.base import Dataset
    from neurofl.leakage.victims import Victims, shared_updates
    from neurofl.models import architecture_for, build_model
    from neurofl.models.conv import ConvArchitecture
    from neurofl.profiles import load_profile

    spec = SHAPES[shape]
    shp, classes = tuple(spec["input_shape"]), int(spec["classes"])
    arch = architecture_for(shp, classes)
    if spec["conv"]:
        arch = ConvArchitecture(shp, classes, **spec["conv"])
    profile = load_profile("loihi2" if kind == "snn" else "float32")
    model = build_model(kind, arch, profile, seed=seed).to(device)  # type: ignore[arg-type]  # ann or snn
    rng = np.random.default_rng(seed)
    events = spec["kind"] == "events"

    def data(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = (rng.random((n, *shp)) < 0.1) if events else rng.random((n, *shp))
        return x.astype(np.float32), rng.integers(0, classes, n).astype(np.int64)

    x, y = data(victims * batch)
    v = Victims(torch.from_numpy(x), torch.from_numpy(y), np.zeros(victims, np.int64), np.arange(len(y)), batch)
    update = shared_updates(model, v, profile, seed)
    ax, ay = data(256)
    aux = Dataset(f"{shape}-random", ax, ay, classes, spec["kind"], "random data at the shape")
    t = Target(model, update, batch, shp, classes, kind, events, profile, aux)
    params = sum(p.numel() for p in model.parameters())
    return t, v, params


def _quick(recipe: Any, iterations: int) -> Any:
    from neurofl.attacks.recipe import AttackRecipe, DisaggregationRecipe, LearnedInversionRecipe

    if isinstance(recipe, AttackRecipe):
        return dataclasses.replace(recipe, iterations=iterations)
    if isinstance(recipe, DisaggregationRecipe):
        return dataclasses.replace(recipe, als_iterations=iterations, search_generations=iterations)
    if isinstance(recipe, LearnedInversionRecipe):
        return dataclasses.replace(recipe, training_updates=QUICK_UPDATES, epochs=1)
    return recipe


def _iterations(recipe: Any) -> int:
    from neurofl.attacks.recipe import AttackRecipe, DisaggregationRecipe, LearnedInversionRecipe

    if isinstance(recipe, AttackRecipe):
        return recipe.iterations * recipe.restarts
    if isinstance(recipe, DisaggregationRecipe):
        return recipe.als_iterations + recipe.search_generations
    if isinstance(recipe, LearnedInversionRecipe):
        return recipe.epochs
    return 1


def measure(shape: str, kind: str, args: argparse.Namespace, device: Any, budget: int) -> list[dict[str, Any]]:
    """Every attack of the suite on one (shape, row): a list of result records."""
    import torch

    from neurofl.attacks.labels import recover_labels
    from neurofl.attacks.recipe import load_attack
    from neurofl.leakage.rows import CHUNK
    from neurofl.runs import memory

    chunks = sorted(int(c) for c in args.chunks.split(","))
    t_all, v, params = _target(shape, kind, args.batch, max(chunks), device)
    fp = memory.footprint(t_all.model, t_all.input_shape)
    _, recipes = load_attack(args.attack)
    if args.batch == 1:  # iDLG reads the last layer's update: no forward pass, nothing to measure
        labels = recover_labels(t_all.model, t_all.gradients(), 1, t_all.input_shape, 0).to(device)
        out: list[dict[str, Any]] = [{"shape": shape, "row": kind, "attack": "(label recovery)", "batch": 1,
                                      "applicable": False, "reason": "iDLG at batch 1: no forward pass"}]
        return out + _attacks(shape, kind, args, device, budget, t_all, fp, params, chunks, labels)
    start = _settle()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    labels = recover_labels(t_all.model, t_all.gradients(), t_all.batch, t_all.input_shape, 0).to(device)
    sec, peak, est = time.perf_counter() - t0, _peak_above(start, device), memory.label_estimate(fp, args.batch)
    first: list[dict[str, Any]] = [{
        "shape": shape, "row": kind, "attack": "(label recovery)", "batch": args.batch, "params": params,
        "activations_per_sample": fp.activations, "time_steps": fp.time_steps, "applicable": True,
        "estimate_full_settings_mib": {"fixed": est / 2**20, "per_victim": 0.0, "chunk_16": est / 2**20},
        "largest_chunk_under_budget": CHUNK if est <= budget else 0, "feasible": est <= budget,
        "runs": [{"victims": max(chunks), "seconds": sec, "seconds_per_iteration_per_victim": sec / max(chunks),
                  "peak_mib": peak / 2**20, "estimate_mib": est / 2**20,
                  "estimate_over_peak": est / peak if peak > 0 else None, "under_estimate": peak <= est}],
    }]  # fmt: skip
    print(f"{shape} {kind} label recovery: {sec:.2f} s, peak {peak / 2**20:.0f} MiB, estimate {est / 2**20:.0f} MiB",
          file=sys.stderr, flush=True)  # fmt: skip
    return first + _attacks(shape, kind, args, device, budget, t_all, fp, params, chunks, labels)


def _attacks(shape: str, kind: str, args: argparse.Namespace, device: Any, budget: int, t_all: Any, fp: Any,
             params: int, chunks: list[int], labels: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Every recipe of the suite on the group's target (see :func:`measure`)."""
    import tempfile

    import torch

    from neurofl.attacks.recipe import load_attack
    from neurofl.attacks.registry import prepare, run_recipe, why_not
    from neurofl.errors import UserError
    from neurofl.leakage.rows import CHUNK, whole_chunk
    from neurofl.runs import memory

    _, recipes = load_attack(args.attack)
    out: list[dict[str, Any]] = []
    for full in recipes:
        rec: dict[str, Any] = {"shape": shape, "row": kind, "attack": full.name, "batch": args.batch,
                               "params": params, "activations_per_sample": fp.activations,
                               "time_steps": fp.time_steps}  # fmt: skip
        reason = why_not(t_all, full)
        if reason is not None:
            out.append({**rec, "applicable": False, "reason": reason})
            print(f"{shape} {kind} {full.name}: n/a", file=sys.stderr, flush=True)
            continue
        quick = _quick(full, args.iterations)
        whole = whole_chunk(full, memory.stochastic_encoding(t_all))
        est_full = memory.estimate(t_all, full, fp)
        rec.update({"applicable": True, "estimate_full_settings_mib": {
            "fixed": est_full.fixed / 2**20, "per_victim": est_full.per_victim / 2**20,
            "chunk_16": est_full.bytes(CHUNK) / 2**20}})  # fmt: skip
        t16 = dataclasses.replace(t_all, update={k: u[:1].expand(CHUNK, *u.shape[1:]) for k, u in t_all.update.items()})
        try:  # of a saved chunk of 16 victims, as evaluate attacks them
            rec["largest_chunk_under_budget"] = memory.chunk_size(t16, full, budget, CHUNK, fp, fixed_chunk=whole)
            rec["feasible"] = True
        except UserError as e:
            rec.update({"largest_chunk_under_budget": 0, "feasible": False, "infeasible_because": str(e),
                        "would_need_mib": est_full.bytes(CHUNK if whole else 1) / 2**20})  # fmt: skip
        runs = []
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "state.pt"
            est_quick = memory.estimate(t_all, quick, fp)
            if est_quick.bytes(1) > budget:
                rec["runs"] = []
                rec["skipped"] = f"one victim's estimate {memory.mib(est_quick.bytes(1))} is over the budget"
                out.append(rec)
                continue
            start = _settle()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            prepare(t_all, quick, 0, cache)  # learned inversion's training; nothing for the others
            prep_s = time.perf_counter() - t0
            prep_peak = _peak_above(start, device)
            # a recipe kept whole (learned inversion) costs the same for any chunk: its ends suffice
            for c in (chunks[:1] + chunks[-1:] if whole and len(chunks) > 1 else chunks):
                t = t_all.chunk(0, c)
                start = _settle()
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    base = torch.cuda.memory_allocated(device)
                t0 = time.perf_counter()
                run_recipe(t, quick, labels[: c * args.batch], 1, cache=cache)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                sec = time.perf_counter() - t0
                peak = _peak_above(start, device) - (base if device.type == "cuda" else 0)
                est = est_quick.bytes(c)
                runs.append({
                    "victims": c, "seconds": sec,
                    "seconds_per_iteration_per_victim": sec / max(1, _iterations(quick)) / c,
                    "peak_mib": peak / 2**20, "estimate_mib": est / 2**20,
                    "estimate_over_peak": est / peak if peak > 0 else None,
                    "under_estimate": peak <= est,
                })  # fmt: skip
                print(f"{shape} {kind} {full.name} x{c}: {sec:.2f} s, peak {peak / 2**20:.0f} MiB, "
                      f"estimate {est / 2**20:.0f} MiB", file=sys.stderr, flush=True)  # fmt: skip
        if prep_s > 0.01:
            print(f"{shape} {kind} {full.name} training: {prep_s:.1f} s, peak {prep_peak / 2**20:.0f} MiB, "
                  f"estimate {est_quick.fixed / 2**20:.0f} MiB", file=sys.stderr, flush=True)  # fmt: skip
            rec["prepare"] = {"seconds": prep_s, "peak_mib": prep_peak / 2**20, "simulated_updates": QUICK_UPDATES,
                              "epochs": 1, "estimate_fixed_mib": est_quick.fixed / 2**20,
                              "under_estimate": prep_peak <= est_quick.fixed}  # fmt: skip
        rec["runs"] = runs
        out.append(rec)
    return out


HEADROOM = 6 << 30  # address space a child may use beyond the budget (torch's and lava's own mappings)


def _child(args: argparse.Namespace, group: str, budget: int, device: Any) -> list[dict[str, Any]]:
    """Measure one (shape, row, batch) in a fresh process: its peaks start from the same baseline,
    and on the CPU its address space is capped at budget + :data:`HEADROOM` (``RLIMIT_AS``), so an
    estimate that falls short ends in a recorded MemoryError, not in the kernel's OOM killer."""
    import resource
    import subprocess

    argv = [sys.executable, __file__, "--group", group, "--device", args.device, "--chunks", args.chunks,
            "--iterations", str(args.iterations), "--attack", args.attack, "--budget", str(budget)]  # fmt: skip

    def cap() -> None:
        if device.type == "cpu":  # CUDA reserves large address ranges: no cap there
            resource.setrlimit(resource.RLIMIT_AS, (budget + HEADROOM, resource.RLIM_INFINITY))

    proc = subprocess.run(argv, capture_output=True, text=True, preexec_fn=cap)
    sys.stderr.write("\n".join(ln for ln in proc.stderr.splitlines() if ln.startswith(group.split(":")[0])) + "\n")
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [""]
        return [{"shape": group, "failed": f"exit {proc.returncode}: {tail[0][:300]}"}]
    records: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shapes", default="cifar100,dvs128-gesture,lfw,digits")
    ap.add_argument("--rows", default="ann,snn")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--chunks", default="1,2,4")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--attack", default="suite_study")
    ap.add_argument("--budget", default=None, help="memory budget (4G) [neurofl's default: half of MemAvailable]")
    ap.add_argument("--out", type=Path, default=Path("results/bench_scale.json"))
    ap.add_argument("--group", default=None, help=argparse.SUPPRESS)  # SHAPE:ROW:BATCH, in a child process
    args = ap.parse_args()

    from neurofl.runs import memory
    from neurofl.runs.allocator import keep_freed_memory
    from neurofl.runs.device import resolve_device
    from neurofl.runs.threads import apply_thread_policy

    apply_thread_policy(None)
    keep_freed_memory()  # the commands' allocator: its peaks are the ones the estimates must cover
    device = resolve_device(args.device)
    budget = memory.parse_size(args.budget) if args.budget else memory.default_budget()
    t0 = time.perf_counter()
    if args.group is not None:  # one group, in this (child) process: its records as JSON on stdout
        shape, kind, batch = args.group.split(":")
        args.batch = int(batch)
        print(json.dumps(measure(shape, kind, args, device, budget), default=float))
        return
    results: list[dict[str, Any]] = []
    for batch in (int(b) for b in args.batches.split(",")):
        for shape in args.shapes.split(","):
            for kind in args.rows.split(","):
                if kind == "ann" and SHAPES[shape]["kind"] == "events":
                    continue  # the event shape is measured for the SNN (its matched ANN sees C*T channels)
                records = _child(args, f"{shape}:{kind}:{batch}", budget, device)
                results.append({"shape": shape, "row": kind, "batch": batch, "records": records})
                _write(args, device, budget, results, t0, done=False)  # a partial file after each group
    report = _write(args, device, budget, results, t0, done=True)
    print(f"wrote {args.out} ({report['wall_seconds']:.0f} s; every peak under its estimate: "
          f"{report['every_peak_under_its_estimate']})", file=sys.stderr)  # fmt: skip


def _write(args: argparse.Namespace, device: Any, budget: int, results: list[dict[str, Any]], t0: float,
           done: bool) -> dict[str, Any]:  # fmt: skip
    import torch

    from neurofl.runs import memory

    runs = [r for s in results for rec in s["records"] for r in rec.get("runs", [])]
    preps = [rec["prepare"] for s in results for rec in s["records"] if "prepare" in rec]
    report = {
        "benchmark": "bench_scale",
        "command": "OMP_NUM_THREADS=1 nice .venv/bin/python scripts/bench_scale.py " + " ".join(sys.argv[1:]),
        "complete": done,
        "device": str(device), "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "machine": _machine(),
        "budget_mib": budget / 2**20, "budget_source": "--budget" if args.budget else "half of MemAvailable",
        "settings": {"batches": args.batches, "chunks": args.chunks, "iterations": args.iterations,
                     "attack": args.attack, "learned_inversion_simulated_updates": QUICK_UPDATES,
                     "shapes": {k: {**v, "input_shape": list(v["input_shape"])} for k, v in SHAPES.items()}},
        "memory_factors": memory.FACTORS, "slack": memory.SLACK,
        "every_peak_under_its_estimate": all(r["under_estimate"] for r in runs)
        and all(p["under_estimate"] for p in preps),
        "smallest_estimate_over_peak": min((r["estimate_over_peak"] for r in runs if r["estimate_over_peak"]),
                                           default=None),
        "failed_groups": [rec["failed"] for g in results for rec in g["records"] if "failed" in rec],
        "wall_seconds": time.perf_counter() - t0,
        "results": results,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    return report


if __name__ == "__main__":
    main()
