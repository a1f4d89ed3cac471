"""Privacy vs utility of each defense, ANN vs SNN, on real federated training of digits.

For every (model, defense setting): train with ``neurofl fl``'s in-process engine, capture
updates of the first and last round, attack them with the attack suite and score them on the
evaluation core (``neurofl attack --updates``: the same oracle, pairing and worst case as
``evaluate``; chance 0.1). Writes JSON, Markdown and a plot.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/privacy_utility.py [--out results/privacy_utility]

``--dp-grid``: DP at target epsilons (``--epsilons 1,4,8``, sample level and client level at the
largest) on the converging schedule ``configs/fl_digits_fedavg.toml`` (loihi2), ANN and SNN,
reporting final accuracy, the calibrated noise multiplier and the epsilon spent; no attacks.
Writes ``privacy_utility_dp.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from neurofl.data import load_dataset
from neurofl.federated import fl_config, load_captured
from neurofl.federated.engine import run_local
from neurofl.federated.files import write_bytes, write_json
from neurofl.federated.task import make_task
from neurofl.profiles import load_profile

# (label, profile, settings): the profile's upload quantization is itself a defense setting.
SETTINGS = [
    ("none", "float32", {"defense": "none"}),
    ("quantization (loihi2 int8)", "loihi2", {"defense": "none"}),
    ("dp sigma=0.01", "float32", {"defense": "dp", "dp_clip": 1.0, "dp_noise": 0.01}),
    ("dp sigma=0.1", "float32", {"defense": "dp", "dp_clip": 1.0, "dp_noise": 0.1}),
    ("prune keep 10%", "float32", {"defense": "prune", "prune_keep": 0.1}),
    ("secagg k=4", "float32", {"defense": "secagg"}),
]


def attack(run_dir: Path, model_kind: str, attack_name: str, iterations: int, seed: int) -> dict:
    """The captured updates of a run, attacked and scored on the evaluation core (``neurofl attack
    --updates``): worst case over the suite, every attack's ASR, the same judge as ``evaluate``."""
    from neurofl.attack_run import AttackConfig, run_attack

    cfg = AttackConfig(recipe=attack_name, model=model_kind, dataset="digits", iterations=iterations, seed=seed,
                       updates=run_dir / "updates")  # fmt: skip
    return run_attack(cfg, out=run_dir / "attack")


CONVERGING = Path(__file__).resolve().parent.parent / "configs" / "fl_digits_fedavg.toml"


def dp_grid(out: Path, epsilons: list[float], delta: float) -> None:
    """Final accuracy and epsilon spent of DP training at each target epsilon, on the converging
    schedule (no attacks: the reduced grid of issue 14)."""
    from dataclasses import replace

    from neurofl.config import read_toml

    base = fl_config(dict(read_toml(CONVERGING)), CONVERGING)
    ds, profile = load_dataset("digits"), load_profile("loihi2")
    grid = [("none", None, None)] + [("dp", "sample", e) for e in epsilons] + [("dp", "client", max(epsilons))]
    rows = []
    for kind in ("ann", "snn"):
        for defense, level, eps in grid:
            t0 = time.perf_counter()
            cfg = base if defense == "none" else replace(base, defense="dp", dp_level=level, dp_epsilon=eps,
                                                         dp_delta=delta)  # fmt: skip
            task = make_task(ds, kind, profile, cfg)
            res = run_local(task)
            last = res.rows[-1]
            row = {
                "model": kind,
                "defense": defense if level is None else f"dp {level}",
                "target_epsilon": eps,
                "noise_multiplier": task.cfg.dp_noise if defense == "dp" else None,
                "epsilon": last.get("epsilon"),
                "delta": delta if defense == "dp" else None,
                "dp_unit": last.get("dp_unit"),
                "final_accuracy": last["accuracy"],
                "best_accuracy": max(r["accuracy"] for r in res.rows),
                "seconds": time.perf_counter() - t0,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    meta = {"config": str(CONVERGING.relative_to(CONVERGING.parent.parent)), "settings": vars(base),
            "profile": "loihi2", "dataset": "digits", "torch_threads": torch.get_num_threads()}  # fmt: skip
    write_json(out / "privacy_utility_dp.json", {**meta, "results": rows})
    md = ["| model | defense | target epsilon | noise multiplier | epsilon spent (unit) | final accuracy | seconds |",
          "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        spent = "" if r["epsilon"] is None else f"{r['epsilon']:.3f} ({r['dp_unit']})"
        md.append(
            f"| {r['model']} | {r['defense']} | {r['target_epsilon'] or ''} | "
            f"{'' if r['noise_multiplier'] is None else format(r['noise_multiplier'], '.4g')} | {spent} | "
            f"{r['final_accuracy']:.3f} | {r['seconds']:.0f} |"
        )
    write_bytes(out / "privacy_utility_dp.md", ("\n".join(md) + "\n").encode())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dp-grid", action="store_true", help="DP at target epsilons on the converging schedule.")
    ap.add_argument("--epsilons", default="1,4,8", help="--dp-grid: target epsilons.")
    ap.add_argument("--delta", type=float, default=1e-5, help="--dp-grid: delta.")
    ap.add_argument("--out", type=Path, default=Path("results/privacy_utility"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=300, help="Gradient-matching iterations.")
    ap.add_argument("--attack", default="suite", help="Attack suite or recipe (scored on the core).")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.dp_grid:
        dp_grid(args.out, [float(e) for e in args.epsilons.split(",")], args.delta)
        return
    # The server's FedSGD step: 0.5 trains the ANN; the SNN's spike-count logits diverge above ~0.05.
    FEDSGD_LR = {"ann": 0.5, "snn": 0.03}  # noqa: N806
    ds = load_dataset("digits")
    rows = []
    for model_kind in ("ann", "snn"):
        for label, profile, extra in SETTINGS:
            t0 = time.perf_counter()
            run_dir = (
                args.out / "runs" / f"{model_kind}-{label.split()[0]}-{profile}-{extra.get('dp_noise', '')}"
            )
            cfg = fl_config(
                {
                    "clients": 40,
                    "rounds": args.rounds,
                    "fraction": 0.1,
                    "strategy": "fedsgd",
                    "batch": 1,
                    "lr": FEDSGD_LR[model_kind],
                    "capture_rounds": [1, args.rounds],
                    "capture_clients": 4,
                    "seed": args.seed,
                    **extra,
                }
            )
            res = run_local(make_task(ds, model_kind, load_profile(profile), cfg), run_dir)
            items = load_captured(run_dir / "updates")
            report = attack(run_dir, model_kind, args.attack, args.iterations, args.seed)
            scored = report["results"][0]
            row = {
                "model": model_kind,
                "defense": label,
                "profile": profile,
                "final_accuracy": res.rows[-1]["accuracy"],
                "asr": scored["asr"],
                "asr_ci95": scored["asr_ci95"],
                "per_attack": {k: v.get("asr") for k, v in scored["per_attack"].items() if v["applicable"]},
                "samples": scored["samples"],
                "updates_attacked": len(items),
                "samples_per_update": items[0].batch,
                "psnr": scored["psnr"],
                "epsilon": res.rows[-1].get("epsilon"),
                "seconds": time.perf_counter() - t0,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {
        "dataset": "digits",
        "chance": 0.1,
        "rounds": args.rounds,
        "clients": 40,
        "per_round": 4,
        "attack": f"{args.attack} (worst case per sample), gradient matching {args.iterations} iterations",
        "seed": args.seed,
        "results": rows,
    }
    write_json(args.out / "privacy_utility.json", result)
    md = [
        "| model | defense | profile | final accuracy | worst-case ASR [95% CI] (chance 0.10) | samples | PSNR dB "
        "| epsilon |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        eps = "" if r["epsilon"] is None else f"{r['epsilon']:.3g}"
        md.append(
            f"| {r['model']} | {r['defense']} | {r['profile']} | {r['final_accuracy']:.3f} | {r['asr']:.2f} "
            f"[{r['asr_ci95'][0]:.2f}, {r['asr_ci95'][1]:.2f}] | {r['samples']} | "
            f"{'–' if r['psnr'] is None else format(r['psnr'], '.1f')} | {eps} |"
        )
    write_bytes(args.out / "privacy_utility.md", ("\n".join(md) + "\n").encode())
    plot(rows, args.out / "privacy_utility.png")


def plot(rows: list[dict], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, marker in (("ann", "o"), ("snn", "s")):
        sel = [r for r in rows if r["model"] == kind]
        ax.scatter(
            [r["final_accuracy"] for r in sel], [r["asr"] for r in sel], marker=marker, label=kind.upper()
        )
        for r in sel:
            ax.annotate(r["defense"], (r["final_accuracy"], r["asr"]), fontsize=6)
    ax.axhline(0.1, color="gray", ls="--", lw=0.8, label="chance")
    ax.set_xlabel("final global test accuracy")
    ax.set_ylabel("attack success rate")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buf.getvalue())
    _ = np


if __name__ == "__main__":
    main()
