"""The Flower backend: the same client and server logic as a Flower ``ClientApp`` / ``ServerApp``.

Clients upload their defended, quantized update (not their weights) as the Flower parameters;
the server strategy is Flower's own ``FedAvg`` (``FedProx`` for fedprox), whose weighted average
of the uploads is the round's aggregate, and steps the global model with it exactly as the local
engine does. Under ``secagg`` the fit round runs Flower's SecAgg+ workflow, so the strategy only
ever receives the masked sum. The server picks the same clients as the local engine (seeded), so
both backends train the same model.

``run_flower`` runs the apps on Flower's simulation engine (Ray). The same ``client_app`` /
``server_app`` objects run on a Ray cluster (``backend_config={"init_args": {"address": ...}}``)
or under Flower's deployment engine (``flwr run`` with real SuperNodes); see docs/federated.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # offline: Flower must not phone home

import numpy as np
import torch

from neurofl.federated.client import ClientResult, client_round, first_batch, set_weights, weights_of
from neurofl.federated.engine import FLResult
from neurofl.federated.recorder import Recorder
from neurofl.federated.rng import sample_clients
from neurofl.federated.server import apply_update
from neurofl.federated.task import FLTask

_MODELS: dict[int, torch.nn.Module] = {}  # one model per task per (Ray worker) process


def _model(task: FLTask) -> torch.nn.Module:
    key = id(task)
    if key not in _MODELS:
        torch.set_num_threads(1)
        _MODELS.clear()
        _MODELS[key] = task.new_model()
    return _MODELS[key]


def _names(task: FLTask, model: torch.nn.Module) -> list[str]:
    return [name for name, _ in model.weight_layers()]


def _to_update(arrays: list[np.ndarray], names: list[str]) -> dict[str, torch.Tensor]:
    return {
        n: torch.from_numpy(np.array(a, dtype=np.float32, copy=True))
        for n, a in zip(names, arrays, strict=True)
    }


def make_client_app(task: FLTask) -> Any:
    """A Flower ``ClientApp`` whose node with ``partition-id`` k is client k of ``task``."""
    from flwr.client import ClientApp, NumPyClient
    from flwr.client.mod import secaggplus_mod

    class NeuroflClient(NumPyClient):
        def __init__(self, partition: int):
            self.partition = partition

        def get_properties(self, config: dict) -> dict:
            return {"partition": self.partition}

        def fit(self, parameters: list[np.ndarray], config: dict) -> tuple[list[np.ndarray], int, dict]:
            model = _model(task)
            names = _names(task, model)
            set_weights(model, {n: w[0] for n, w in _to_update(parameters, names).items()})
            res = client_round(
                model, [task.clients[self.partition]], task.cfg, task.profile, int(config["round"])
            )[0]
            return [res.update[n].numpy() for n in names], res.num_examples, {"client": self.partition}

    def client_fn(context: Any) -> Any:
        return NeuroflClient(int(context.node_config["partition-id"])).to_client()

    mods = [secaggplus_mod] if task.cfg.defense == "secagg" else []
    return ClientApp(client_fn=client_fn, mods=mods)


def _strategy_class(task: FLTask) -> type:
    from flwr.common import FitIns, GetPropertiesIns, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import FedAvg, FedProx

    base = FedProx if task.cfg.strategy == "fedprox" else FedAvg

    class NeuroflStrategy(base):  # type: ignore[misc, valid-type]
        """Flower's FedAvg/FedProx aggregation of uploaded updates, plus neurofl's bookkeeping."""

        def __init__(self, model: torch.nn.Module, rec: Recorder, start: int):
            cfg = task.cfg
            kw = {"proximal_mu": cfg.mu} if base is FedProx else {}
            super().__init__(
                fraction_fit=1.0,
                fraction_evaluate=0.0,
                min_fit_clients=1,
                min_available_clients=cfg.clients,
                accept_failures=False,
                **kw,
            )
            self.model, self.rec, self.start = model, rec, start
            self.names = _names(task, model)
            self.node_of: dict[int, Any] = {}

        def _params(self) -> Any:
            return ndarrays_to_parameters([w.numpy()[None] for w in weights_of(self.model).values()])

        def initialize_parameters(self, client_manager: Any) -> Any:
            return self._params()

        def _map_nodes(self, client_manager: Any) -> None:
            client_manager.wait_for(task.cfg.clients, timeout=600)
            proxies = list(client_manager.all().values())

            def ask(p: Any) -> tuple[int, Any]:
                res = p.get_properties(GetPropertiesIns({}), timeout=None, group_id=0)
                return int(res.properties["partition"]), p

            with ThreadPoolExecutor(8) as pool:
                self.node_of = dict(pool.map(ask, proxies))

        def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> list:
            if not self.node_of:
                self._map_nodes(client_manager)
            r = self.start + server_round
            ids = sample_clients(task.cfg.seed, r, task.cfg.clients, task.cfg.per_round)
            self.global_state = {k: v.clone() for k, v in self.model.state_dict().items()}
            ins = FitIns(self._params(), {"round": r, **self.on_fit_config(r)})
            return [(self.node_of[i], ins) for i in ids]

        def on_fit_config(self, r: int) -> dict:
            return {"proximal_mu": task.cfg.mu} if base is FedProx else {}

        def aggregate_fit(self, server_round: int, results: list, failures: list) -> tuple:
            if failures:
                raise RuntimeError(
                    f"round {self.start + server_round}: {len(failures)} client(s) failed: {failures[0]}"
                )
            r = self.start + server_round
            cfg = task.cfg
            ids = sorted(int(res.metrics["client"]) for _, res in results)
            uploads = []
            for _, res in sorted(results, key=lambda cr: int(cr[1].metrics["client"])):
                cid = int(res.metrics["client"])
                xs, ys = first_batch(task.clients[cid], cfg, r)
                upd = _to_update(parameters_to_ndarrays(res.parameters), self.names)
                uploads.append(ClientResult(cid, upd, res.num_examples, xs, ys))
            self.rec.capture(r, uploads, self.global_state)  # under secagg every upload is the aggregate
            agg_params, _ = super().aggregate_fit(server_round, results, failures)
            apply_update(self.model, _to_update(parameters_to_ndarrays(agg_params), self.names), cfg)
            self.rec.end_round(r, self.model, ids, [u.update for u in uploads])
            return self._params(), {}

        def evaluate(self, server_round: int, parameters: Any) -> tuple[float, dict] | None:
            row = self.rec.rows[-1]  # end_round evaluated the new global model on the test split
            return row["loss"], {"accuracy": row["accuracy"]}

    return NeuroflStrategy


def make_server_app(task: FLTask, model: torch.nn.Module, rec: Recorder, start: int) -> Any:
    """A Flower ``ServerApp`` running ``rounds - start`` rounds (SecAgg+ under ``secagg``)."""
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    strategy = _strategy_class(task)(model, rec, start)
    app = ServerApp()

    @app.main()
    def main(grid: Any, context: Any) -> None:
        ctx = LegacyContext(
            context=context, config=ServerConfig(num_rounds=task.cfg.rounds - start), strategy=strategy
        )
        if task.cfg.defense == "secagg":
            k = task.cfg.per_round
            # every client shares its mask secrets with all others; a majority recovers a dropout's mask
            secagg = SecAggPlusWorkflow(num_shares=1.0, reconstruction_threshold=k // 2 + 1)
            workflow = DefaultWorkflow(fit_workflow=secagg)
        else:
            workflow = DefaultWorkflow()
        workflow(grid, ctx)

    return app


def run_flower(
    task: FLTask,
    out: Path | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    cpus: int = 2,
    verbose: bool = False,
) -> FLResult:
    """Run the task on Flower's simulation engine (Ray), resuming from ``out`` like :func:`run_local`.

    on_round : called with each finished round's history row; cpus : CPUs Ray may use (each
    simulated client takes one); verbose : show Flower's and Ray's logs.
    """
    import contextlib
    import logging
    import sys

    from flwr.simulation import run_simulation

    model = task.new_model()
    rec = Recorder(task, out, on_round)
    start = rec.resume(model)
    if start < task.cfg.rounds:
        if not verbose:
            logging.getLogger("flwr").setLevel(logging.WARNING)
        backend = {
            "init_args": {"num_cpus": cpus, "include_dashboard": False, "log_to_driver": verbose},
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        }
        try:
            with contextlib.redirect_stdout(sys.stderr):  # stdout stays clean for --json
                run_simulation(
                    server_app=make_server_app(task, model, rec, start),
                    client_app=make_client_app(task),
                    num_supernodes=task.cfg.clients,
                    backend_config=backend,
                    verbose_logging=verbose,
                )
        finally:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        done = rec.rows[-1]["round"]
        if done < task.cfg.rounds:
            raise RuntimeError(
                f"the Flower simulation stopped after round {done} of {task.cfg.rounds} (see its log)"
            )
    rec.finish(model)
    return FLResult(model, rec.rows, start)
