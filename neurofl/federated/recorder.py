"""Server-side bookkeeping shared by both backends: capture, evaluation, history, checkpoints."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from neurofl.errors import UserError
from neurofl.federated import history
from neurofl.federated.capture import CapturedUpdate, save_captured
from neurofl.federated.client import ClientResult, Update, dp_sgd, set_weights, weights_of
from neurofl.federated.privacy import epsilon
from neurofl.federated.server import evaluate
from neurofl.federated.task import FLTask
from neurofl.runs.device import on_cpu


def _data_identity(task: FLTask) -> dict[str, Any]:
    """The content identity of the task's data: the loaded dataset's, or (a task built by hand)
    the digest of every client's and the test split's arrays."""
    if task.data_identity is not None:
        return task.data_identity
    from neurofl.runs.identity import arrays_digest

    arrays = [a.numpy() for c in task.clients for a in (c.x, c.y)] + [task.test_x.numpy(), task.test_y.numpy()]
    n = sum(len(c.y) for c in task.clients) + len(task.test_y)
    return {
        "name": task.dataset,
        "shape": [n, *task.test_x.shape[1:]],
        "classes": int(task.arch.classes),
        "sha256": arrays_digest(*arrays),
    }


def identity(task: FLTask) -> dict[str, Any]:
    """What makes two runs the same run (a resume must match it): the settings, and the content of
    the profile and the data (their digests; an edited profile TOML with the same name is another run)."""
    from neurofl.runs.identity import config_identity

    settings = dataclasses.asdict(task.cfg)
    if task.cfg.defense != "dp":  # keys added with dp levels: absent, runs recorded before them still resume
        del settings["dp_level"], settings["dp_epsilon"]
    ident = {
        "dataset": _data_identity(task),
        "model": task.model_kind,
        "profile": config_identity(task.profile),
        **settings,
    }
    if task.cfg.local_steps > 1 and task.cfg.strategy != "fedsgd" and not dp_sgd(task.cfg):
        # local steps walk disjoint minibatches of one draw (client.epoch_walk); runs recorded when each
        # step drew its own minibatch are other runs
        ident["minibatches"] = "epoch"
    if task.initial_state is not None:  # a run from given weights (fl --model MODEL.pt)
        ident["initial_model"] = task.initial_identity
    from neurofl.runs.device import identity_entry

    ident.update(identity_entry(task.device))  # nothing for the CPU: CPU runs recorded before still resume
    return ident


def run_fingerprint(task: FLTask) -> dict[str, Any]:
    """The identity without the settings a resumed run may change (``--rounds``, capture options):
    what the run folder and every captured update are keyed by."""
    return {k: v for k, v in identity(task).items() if k not in history.RESUMABLE}


def run_digest(task: FLTask) -> str:
    """SHA-256 of :func:`run_fingerprint` (stored in each captured update as ``run``)."""
    from neurofl.runs.identity import table_digest

    return table_digest(run_fingerprint(task))


class Recorder:
    """Follows a run round by round; with ``out`` it persists everything after each round."""

    def __init__(
        self, task: FLTask, out: Path | None, on_round: Callable[[dict[str, Any]], None] | None = None
    ):
        self.task = task
        self.on_round = on_round
        self.out = Path(out) if out is not None else None
        self.ident = identity(task)
        self.run = run_digest(task)
        self.rows: list[dict[str, Any]] = []
        self.start_round = 0
        self.clock = time.perf_counter()

    def resume(self, model: torch.nn.Module) -> int:
        """Load the last completed round into ``model`` (or evaluate the initial model as round 0).
        Returns the last completed round."""
        shapes = {k: tuple(v.shape) for k, v in weights_of(model).items()}
        state = history.load_checkpoint(self.out, self.ident, shapes) if self.out else None
        if state is not None:
            if state["round"] > self.task.cfg.rounds:
                raise UserError(
                    f"{self.out} holds {state['round']} rounds, more than --rounds {self.task.cfg.rounds}; "
                    f"ask for {state['round']} or more to continue it, or use another --out"
                )
            set_weights(model, state["weights"])
            self.rows = list(state["rows"])
            self.start_round = state["round"]
        else:
            self.rows = [
                {"round": 0, **evaluate(model, self.task.test_x, self.task.test_y, self.task.cfg.seed)}
            ]
        self.clock = time.perf_counter()
        return self.start_round

    def captures(self, round_: int) -> bool:
        """Whether :meth:`capture` records anything in ``round_``."""
        cfg = self.task.cfg
        return self.out is not None and round_ in cfg.capture_rounds and cfg.capture_clients > 0

    def capture(
        self, round_: int, results: list[ClientResult], global_state: dict[str, torch.Tensor]
    ) -> None:
        """Record the chosen clients' uploads of ``round_`` (under secagg: only the aggregate).

        Each capture holds the samples its update was computed on (``ClientResult.inputs``: a
        FedAvg client's every local step, in step order, with its ``minibatch``). The secagg
        aggregate holds every summed client's samples, concatenated in client order, as one batch
        with ``minibatch`` None: the mean of k clients' deltas is not one client's local steps on
        any ordering of their samples (each client steps from the global model on its own), so an
        attack models it as k clients' samples in one batch, every step on all of them (exact for
        one local step, an approximation for several)."""
        cfg, task = self.task.cfg, self.task
        if not self.captures(round_):
            return
        assert self.out is not None  # captures() is False without an output folder
        folder = self.out / "updates"
        from neurofl.models.checkpoint import profile_to_dict

        captured = partial(
            CapturedUpdate,
            round=round_,
            profile=task.profile.name,
            seed=cfg.seed,
            profile_table=profile_to_dict(task.profile),
            dataset_identity=_data_identity(task),
            run=self.run,
            dataset=task.dataset,
            model_kind=task.model_kind,
            arch=task.arch,
            state_dict=on_cpu(global_state),
            kind=cfg.update_kind,
            local_steps=cfg.local_steps,
            lr=cfg.lr,
        )  # every field the uploads share
        if cfg.defense == "secagg":
            from neurofl.federated.server import weighted_mean

            agg = weighted_mean([r.update for r in results], [r.num_examples for r in results])
            item = captured(
                client=-1,
                update=agg,
                batch=sum(len(r.labels) for r in results),
                true_inputs=torch.cat([r.inputs for r in results]),
                true_labels=torch.cat([r.labels for r in results]),
                minibatch=None,  # no one client's walk (above)
            )
            save_captured(folder, item)
            return
        # A client whose first DP-SGD Poisson sample was empty uploaded noise alone: no sample to
        # score an attack against, so the next client is recorded in its place.
        for r in [r for r in sorted(results, key=lambda r: r.client) if len(r.labels)][: cfg.capture_clients]:
            item = captured(
                client=r.client,
                update=r.update,
                batch=len(r.labels),
                true_inputs=r.inputs,
                true_labels=r.labels,
                minibatch=r.minibatch,
            )
            save_captured(folder, item)

    def end_round(
        self, round_: int, model: torch.nn.Module, participants: list[int], uploads: list[Update]
    ) -> dict:
        """Evaluate the new global model, append the round's row, persist. Returns the row."""
        cfg = self.task.cfg
        norms = [float(torch.sqrt(sum((t.double() ** 2).sum() for t in u.values()))) for u in uploads]
        row: dict[str, Any] = {
            "round": round_,
            **evaluate(model, self.task.test_x, self.task.test_y, cfg.seed),
            "clients": len(participants),
            "mean_update_norm": sum(norms) / max(len(norms), 1),
            "seconds": time.perf_counter() - self.clock,
        }
        if cfg.defense == "dp":
            from neurofl.federated.task import dp_schedule

            sch = dp_schedule(cfg, [len(c.y) for c in self.task.clients])
            row["epsilon"] = epsilon(cfg.dp_noise, sch.sample_rate, sch.steps(round_), cfg.dp_delta)
            row["delta"] = cfg.dp_delta
            row["dp_level"] = cfg.dp_level
            row["dp_unit"] = sch.unit
            row["noise_multiplier"] = cfg.dp_noise
        self.rows.append(row)
        self.clock = time.perf_counter()
        if self.out is not None:
            # The checkpoint is written last: a run killed before it redoes this round identically.
            history.write_history(self.out, self.ident, self.rows)
            history.save_checkpoint(self.out, self.ident, round_, on_cpu(weights_of(model)), self.rows)
        if self.on_round is not None:
            self.on_round(row)
        return row

    def finish(self, model: torch.nn.Module) -> None:
        """Final model and plot."""
        if self.out is None:
            return
        from neurofl.federated.files import write_torch

        t = self.task
        write_torch(
            self.out / "model.pt",
            {
                "model": t.model_kind,
                "profile": t.profile.name,
                "dataset": t.dataset,
                "arch": dataclasses.asdict(t.arch),
                "state_dict": on_cpu(model.state_dict()),
            },
        )
        history.write_history(self.out, self.ident, self.rows)
        title = (
            f"{t.model_kind.upper()} on {t.dataset}, profile {t.profile.name}, "
            f"{t.cfg.strategy}, defense {t.cfg.defense}"
        )
        history.plot_accuracy(self.out, self.rows, title)
