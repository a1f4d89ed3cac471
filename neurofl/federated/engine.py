"""The in-process backend: all clients of a round in this process, vectorized where exact."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neurofl.federated.client import client_round
from neurofl.federated.recorder import Recorder
from neurofl.federated.rng import sample_clients
from neurofl.federated.server import aggregate, apply_update
from neurofl.federated.task import FLTask


@dataclass(frozen=True)
class FLResult:
    """A finished run: the final global model and one history row per round (round 0 = initial)."""

    model: torch.nn.Module
    rows: list[dict[str, Any]]
    resumed_from: int


def run_local(
    task: FLTask,
    out: Path | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    stop_after: int | None = None,
) -> FLResult:
    """Run ``task.cfg.rounds`` rounds (resuming from ``out``'s checkpoint if there is one).

    on_round : called with each finished round's history row (progress)
    stop_after : stop once this round is done (simulates an interruption; for tests)
    """
    cfg = task.cfg
    model = task.new_model()
    rec = Recorder(task, out, on_round)
    start = rec.resume(model)
    for r in range(start + 1, cfg.rounds + 1):
        ids = sample_clients(cfg.seed, r, cfg.clients, cfg.per_round)
        global_state = {k: v.clone() for k, v in model.state_dict().items()}
        results = client_round(model, [task.clients[i] for i in ids], cfg, task.profile, r)
        rec.capture(r, results, global_state)
        # Under secagg the server is handed only this sum (Flower's SecAgg+ computes it masked).
        agg = aggregate([res.update for res in results], [res.num_examples for res in results], cfg, r)
        apply_update(model, agg, cfg)
        rec.end_round(r, model, ids, [res.update for res in results])
        if stop_after is not None and r >= stop_after:
            return FLResult(model, rec.rows, start)
    rec.finish(model)
    return FLResult(model, rec.rows, start)
