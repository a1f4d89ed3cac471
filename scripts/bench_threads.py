"""Which torch thread count to use: the attack and a short evaluate at 1 and 2 threads, on an idle
machine and with one CPU-bound process beside them.

    .venv/bin/python scripts/bench_threads.py [--victims 16] [--iterations 100] [--out results/bench_threads.json]
        [--device auto|cpu|cuda]

Each measurement runs in a fresh subprocess with OMP_NUM_THREADS and ``torch.set_num_threads`` set to
the thread count (so nothing is shared between them; ``evaluate`` runs with ``--workers 1``); the
"busy" measurements first start a CPU-bound Python loop (one process) and stop exactly that process
afterwards. Writes one JSON object with the seconds of each and the ratios 2-thread / 1-thread.
``--device`` (default auto: CUDA when available; recorded in the JSON) is where the attack and the
evaluate compute; the thread counts are the CPU's either way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ATTACK = """
import time, torch
torch.set_num_threads({threads})
from neurofl.attacks.recipe import load_recipe
from neurofl.attacks.inverting import invert
from neurofl.data import load_dataset, split_dataset
from neurofl.models import architecture_for, build_model
from neurofl.profiles import load_profile
from neurofl.leakage.victims import draw_victims, shared_updates
import dataclasses
ds = load_dataset("digits"); s = split_dataset(ds, 0)
v = draw_victims(s.clients, {victims}, 1, 8, 0)
p = load_profile("loihi2")
out = {{}}
for kind in ("ann", "snn"):
    prof = p if kind == "snn" else load_profile("float32")
    m = build_model(kind, architecture_for(ds.input_shape, ds.classes), prof, 0).to("{device}")
    u = shared_updates(m, v, prof, 0)
    r = dataclasses.replace(load_recipe("inverting_gradients_plain"), iterations={iterations})
    t = time.perf_counter(); invert(m, u, v.y, (1, 8, 8), r, 1)
    if torch.device("{device}").type == "cuda": torch.cuda.synchronize()
    out[kind] = time.perf_counter() - t
print(out)
"""

BUSY = "while True: pass"


def run(code: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return eval(res.stdout.strip().splitlines()[-1])  # noqa: S307 - our own subprocess's dict


def evaluate_seconds(threads: int, tmp: Path, device: str) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = tmp / f"eval-{threads}-{time.monotonic_ns()}"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "neurofl", "evaluate", "--victims", "8", "--attack", "inverting_gradients",
                    "--iterations", "100", "--train-epochs", "2", "--workers", "1", "--device", device,
                    "--out", str(out)],
                   capture_output=True, env=env, check=True)  # fmt: skip
    return time.perf_counter() - t


def main() -> None:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--victims", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N.")
    args = ap.parse_args()
    from neurofl.runs.device import describe, resolve_device

    device = resolve_device(args.device)
    code = ATTACK.format(victims=args.victims, iterations=args.iterations, threads="{threads}", device=device)
    result: dict = {"benchmark": "bench_threads", "cpus": os.cpu_count(), "machine": platform.machine(),
                    **describe(device), "victims": args.victims, "iterations": args.iterations,
                    "runs": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for load in ("idle", "busy"):
            busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load == "busy" else None
            try:
                for threads in (1, 2):
                    attack = run(code.replace("{threads}", str(threads)), threads)
                    result["runs"][f"{load}_{threads}"] = {
                        "attack_ann_seconds": attack["ann"], "attack_snn_seconds": attack["snn"],
                        "evaluate_seconds": evaluate_seconds(threads, Path(tmp), str(device)),
                    }  # fmt: skip
                    print(json.dumps({load: threads, **result["runs"][f"{load}_{threads}"]}), flush=True)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    r = result["runs"]
    result["two_over_one"] = {
        load: {k: r[f"{load}_2"][k] / r[f"{load}_1"][k] for k in r[f"{load}_1"]} for load in ("idle", "busy")
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        from neurofl.report import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
