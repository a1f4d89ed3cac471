"""The Flower backend: the same client and server logic as a Flower ``ClientApp`` / ``ServerApp``.

A Flower node (SuperNode) hosts the clients ``k`` with ``k % nodes == node`` (``nodes = clients``:
one client per node, the deployment layout with real devices). Each round the server sends every
node the ids of its sampled clients; the node computes their uploads (vectorized where exact, as
the local engine does) and returns them stacked along a leading client axis. The server strategy is
a Flower ``FedAvg`` (``FedProx`` for fedprox); it unpacks the clients' uploads, takes their
FedAvg weighted average with the local engine's arithmetic (float64 sums in client-id order) and
steps the global model with it exactly as the local engine does, so both backends give
bit-identical weights. Under ``secagg`` every node hosts one client and the fit round
runs Flower's SecAgg+ workflow, so the strategy only ever receives the masked sum. The server picks
the same clients as the local engine (seeded), so both backends train the same model.

``run_flower`` runs the apps on Flower's simulation engine (Ray). The same ``client_app`` /
``server_app`` objects run on a Ray cluster (``backend_config={"init_args": {"address": ...}}``)
or under Flower's deployment engine (``flwr run`` with real SuperNodes); see docs/federated.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # offline: Flower must not phone home

import numpy as np
import torch

from neurofl.errors import UserError
from neurofl.federated.client import ClientResult, client_round, set_weights, trained_batch, weights_of
from neurofl.federated.dispatch import fast_dispatch, fast_grid
from neurofl.federated.engine import FLResult
from neurofl.federated.recorder import Recorder
from neurofl.federated.rng import sample_clients
from neurofl.federated.server import aggregate, apply_update
from neurofl.federated.shipping import ShipOnce, received
from neurofl.federated.task import FLTask

_MODELS: dict[int, torch.nn.Module] = {}  # one model per task per (Ray worker) process


def _model(task: FLTask) -> torch.nn.Module:
    key = id(task)
    if key not in _MODELS:
        torch.set_num_threads(1)
        _MODELS.clear()
        _MODELS[key] = task.new_model()
    return _MODELS[key]


def _names(model: torch.nn.Module) -> list[str]:
    return [name for name, _ in model.weight_layers()]


def _to_update(arrays: list[np.ndarray], names: list[str]) -> dict[str, torch.Tensor]:
    return {
        n: torch.from_numpy(np.array(a, dtype=np.float32, copy=True))
        for n, a in zip(names, arrays, strict=True)
    }


def node_of(client: int, nodes: int) -> int:
    """The Flower node that hosts ``client`` when ``nodes`` nodes share the clients."""
    return client % nodes


def _ints(text: str) -> list[int]:
    """Integers sent as one config/metrics string (Flower's records hold scalars): "3,7,12"."""
    return [int(v) for v in text.split(",")]


def _fmt(values: list[int]) -> str:
    return ",".join(str(v) for v in values)


def _pack(results: list[ClientResult], names: list[str]) -> list[np.ndarray]:
    """A node's uploads stacked per tensor: name -> (n_clients, *weight_shape), in ``names`` order."""
    return [np.concatenate([r.update[n].numpy() for r in results]) for n in names]


def _unpack(arrays: list[np.ndarray], i: int) -> list[np.ndarray]:
    """Client ``i``'s upload out of a node's stacked arrays: each (1, *weight_shape)."""
    return [a[i : i + 1] for a in arrays]


def make_client_app(task: FLTask) -> Any:
    """A Flower ``ClientApp``: the node with ``partition-id`` j of ``num-partitions`` M hosts the
    clients k of ``task`` with ``k % M == j``."""
    from flwr.client import ClientApp, NumPyClient
    from flwr.client.mod import secaggplus_mod

    shipped = ShipOnce(task)  # in a Ray worker, unpickles as the task itself (fetched once)

    class NeuroflNode(NumPyClient):
        def __init__(self, node: int, nodes: int):
            self.node, self.nodes = node, nodes

        def get_properties(self, config: dict) -> dict:
            return {"node": self.node}

        def fit(self, parameters: list[np.ndarray], config: dict) -> tuple[list[np.ndarray], int, dict]:
            task = received(shipped)
            ids = _ints(str(config["clients"]))
            foreign = [i for i in ids if node_of(i, self.nodes) != self.node]
            if foreign:
                raise ValueError(f"node {self.node} of {self.nodes} was sent client {foreign[0]}, not its own")
            model = _model(task)
            names = _names(model)
            set_weights(model, {n: w[0] for n, w in _to_update(parameters, names).items()})
            results = client_round(
                model, [task.clients[i] for i in ids], task.cfg, task.profile, int(config["round"])
            )
            counts = [r.num_examples for r in results]
            return _pack(results, names), sum(counts), {"clients": config["clients"], "examples": _fmt(counts)}

    def client_fn(context: Any) -> Any:
        nc = context.node_config
        return NeuroflNode(int(nc["partition-id"]), int(nc["num-partitions"])).to_client()

    mods: list[Any] = [secaggplus_mod] if task.cfg.defense == "secagg" else []
    return ClientApp(client_fn=client_fn, mods=mods)


def _strategy_class(task: FLTask) -> type:
    from flwr.common import FitIns, GetPropertiesIns, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import FedAvg, FedProx

    base = FedProx if task.cfg.strategy == "fedprox" else FedAvg

    class NeuroflStrategy(base):  # type: ignore[misc, valid-type]
        """Flower's FedAvg/FedProx over the clients' uploads, plus neurofl's bookkeeping. A node's
        result holds several clients, so aggregation unpacks it and applies FedAvg's rule to the
        individual uploads with the local engine's arithmetic (:func:`weighted_mean`)."""

        def __init__(self, model: torch.nn.Module, rec: Recorder, start: int, nodes: int):
            cfg = task.cfg
            kw = {"proximal_mu": cfg.mu} if base is FedProx else {}
            super().__init__(
                fraction_fit=1.0,
                fraction_evaluate=0.0,
                min_fit_clients=1,
                min_available_clients=nodes,
                accept_failures=False,
                **kw,
            )
            self.model, self.rec, self.start, self.nodes = model, rec, start, nodes
            self.names = _names(model)
            self.proxy_of: dict[int, Any] = {}

        def _params(self) -> Any:
            return ndarrays_to_parameters([w.numpy()[None] for w in weights_of(self.model).values()])

        def initialize_parameters(self, client_manager: Any) -> Any:
            return self._params()

        def _map_nodes(self, client_manager: Any) -> None:
            client_manager.wait_for(self.nodes, timeout=600)
            proxies = list(client_manager.all().values())

            def ask(p: Any) -> tuple[int, Any]:
                res = p.get_properties(GetPropertiesIns({}), timeout=None, group_id=0)
                return int(res.properties["node"]), p

            with ThreadPoolExecutor(8) as pool:
                self.proxy_of = dict(pool.map(ask, proxies))

        def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> list:
            if not self.proxy_of:
                self._map_nodes(client_manager)
            r = self.start + server_round
            ids = sample_clients(task.cfg.seed, r, task.cfg.clients, task.cfg.per_round)
            self.global_state = {k: v.clone() for k, v in self.model.state_dict().items()}
            params = self._params()
            per_node: dict[int, list[int]] = {}
            for i in ids:
                per_node.setdefault(node_of(i, self.nodes), []).append(i)
            return [
                (self.proxy_of[j], FitIns(params, {"round": r, "clients": _fmt(c), **self.on_fit_config(r)}))
                for j, c in sorted(per_node.items())
            ]

        def on_fit_config(self, r: int) -> dict:
            return {"proximal_mu": task.cfg.mu} if base is FedProx else {}

        def aggregate_fit(self, server_round: int, results: list, failures: list) -> tuple:
            if failures:
                raise RuntimeError(
                    f"round {self.start + server_round}: {len(failures)} client(s) failed: {failures[0]}"
                )
            r = self.start + server_round
            cfg = task.cfg
            per_client = []  # (client, its upload: one (1, *weight_shape) array per tensor, sample count)
            for _, res in results:
                arrays = parameters_to_ndarrays(res.parameters)
                counts = _ints(str(res.metrics["examples"]))
                for i, (cid, n) in enumerate(zip(_ints(str(res.metrics["clients"])), counts, strict=True)):
                    per_client.append((cid, _unpack(arrays, i), n))
            per_client.sort(key=lambda t: t[0])
            uploads = [_to_update(arrays, self.names) for _, arrays, _ in per_client]
            if self.rec.captures(r):  # the victims' true samples, to score the attack later
                captured = [
                    ClientResult(cid, u, n, *trained_batch(task.clients[cid], cfg, r))
                    for (cid, _, n), u in zip(per_client, uploads, strict=True)
                ]
                self.rec.capture(r, captured, self.global_state)  # under secagg each upload is the aggregate
            # FedAvg's rule (each upload weighted by its sample count), computed exactly as the local
            # engine computes it: neurofl's weighted_mean (float64 sums, in client-id order), so both
            # backends train bit-identical models. (flwr's aggregate() sums float32 arrays in the
            # order results arrive, which drifts from the local engine after a few rounds.)
            mean = aggregate(uploads, [n for _, _, n in per_client], cfg, r)  # DP-FedAvg: + server noise
            apply_update(self.model, mean, cfg)
            self.rec.end_round(r, self.model, [c for c, _, _ in per_client], uploads)
            return self._params(), {}

        def evaluate(self, server_round: int, parameters: Any) -> tuple[float, dict] | None:
            row = self.rec.rows[-1]  # end_round evaluated the new global model on the test split
            return row["loss"], {"accuracy": row["accuracy"]}

    return NeuroflStrategy


def make_server_app(task: FLTask, model: torch.nn.Module, rec: Recorder, start: int, nodes: int) -> Any:
    """A Flower ``ServerApp`` running ``rounds - start`` rounds over ``nodes`` nodes (SecAgg+ under
    ``secagg``)."""
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    strategy = _strategy_class(task)(model, rec, start, nodes)
    app = ServerApp()

    @app.main()
    def main(grid: Any, context: Any) -> None:
        # The simulation's in-memory grid sleeps pull_interval (0.1 s) between polls for replies,
        # a fixed latency per round that dominates rounds of small models; poll faster (only under
        # the pinned Flower, see neurofl.federated.dispatch).
        fast_grid(grid)
        ctx = LegacyContext(
            context=context, config=ServerConfig(num_rounds=task.cfg.rounds - start), strategy=strategy
        )
        if task.cfg.defense == "secagg":
            cfg = task.cfg
            # Every client shares its mask secrets with all others; a majority recovers a dropout's
            # mask. max_weight: the largest sample count a client reports, so that the weighting
            # loses no precision (Flower's default, 1000, costs ~250x in quantization step here).
            secagg = SecAggPlusWorkflow(
                num_shares=1.0,
                reconstruction_threshold=cfg.per_round // 2 + 1,
                max_weight=float(cfg.batch * cfg.local_steps),
                clipping_range=cfg.secagg_clip,
            )
            workflow = DefaultWorkflow(fit_workflow=secagg)
        else:
            workflow = DefaultWorkflow()
        workflow(grid, ctx)

    return app


def flower_nodes(task: FLTask, cpus: int, nodes: int | None) -> int:
    """The number of Flower nodes to simulate (validated; see :func:`run_flower`)."""
    cfg = task.cfg
    if nodes is None:
        return cfg.clients if cfg.defense == "secagg" else min(cfg.clients, cpus)
    if not 1 <= nodes <= cfg.clients:
        raise UserError(f"--nodes {nodes}: must be between 1 and the number of clients ({cfg.clients})")
    if cfg.defense == "secagg" and nodes != cfg.clients:
        raise UserError(
            f"--nodes {nodes} with --defense secagg: SecAgg+ masks each node's upload, so every "
            f"client needs its own node (--nodes {cfg.clients}, or leave it out)"
        )
    return nodes


class _KnownNotices(logging.Filter):
    """Drops Flower's notice that ``run_simulation`` is deprecated (neurofl drives the simulation
    engine from Python on purpose; docs/federated.md says how to deploy with ``flwr run``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.getMessage().startswith("DEPRECATED FEATURE: The `run_simulation`"))


def run_flower(
    task: FLTask,
    out: Path | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    cpus: int = 2,
    nodes: int | None = None,
    verbose: bool = False,
    ray_address: str | None = None,
) -> FLResult:
    """Run the task on Flower's simulation engine (Ray), resuming from ``out`` like :func:`run_local`.

    on_round : called with each finished round's history row
    cpus : CPUs Ray may use (each running node takes one); on a cluster only the default of ``nodes``
    nodes : Flower nodes sharing the clients (default: one per CPU, at most one per client; under
        ``secagg`` one per client, since SecAgg+ masks what a node uploads)
    verbose : show Flower's and Ray's logs
    ray_address : a running Ray cluster to use (``"auto"``, ``"HEAD:6379"``) instead of a private
        Ray instance on this machine; the nodes then run as Ray actors wherever a cluster CPU is free
    """
    import contextlib
    import sys

    from flwr.simulation import run_simulation

    nodes = flower_nodes(task, cpus, nodes)
    model = task.new_model()
    rec = Recorder(task, out, on_round)
    start = rec.resume(model)
    if start < task.cfg.rounds:
        if not verbose:
            flwr_log = logging.getLogger("flwr")
            flwr_log.setLevel(logging.WARNING)
            if not any(isinstance(f, _KnownNotices) for f in flwr_log.filters):
                flwr_log.addFilter(_KnownNotices())
        init_args = {"include_dashboard": False, "log_to_driver": verbose}
        # Ray starts its workers at niceness 15, so on a machine busy with other work the clients
        # (all of a round's computation) get a sliver of the CPU and `--backend flower` crawls where
        # `--backend local` does not (measured: ~5% CPU per worker beside two CPU-bound jobs).
        private = {"num_cpus": cpus, "_system_config": {"worker_niceness": 0}}
        backend: dict[str, Any] = {
            "init_args": {**init_args, **private},
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        }
        try:
            if ray_address is not None:
                _connect_ray(ray_address, init_args)  # Flower's backend then uses this connection
            with contextlib.redirect_stdout(sys.stderr), fast_dispatch():  # stdout stays clean for --json
                run_simulation(
                    server_app=make_server_app(task, model, rec, start, nodes),
                    client_app=make_client_app(task),
                    num_supernodes=nodes,
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


def _connect_ray(address: str, init_args: dict[str, Any]) -> None:
    """Connect this process to the Ray cluster at ``address`` (the workers import neurofl from the
    same paths as here)."""
    import sys

    import ray

    path = os.pathsep.join([*sys.path, os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    # Ray logs "Connecting to existing Ray cluster ..." at INFO, and its C++ client a warning per
    # retry (~20 lines where something that is not Ray answers the probe): with a refusal, lines
    # before our own. What it writes to stderr while connecting is held back, and shown on success.
    quiet = {"logging_level": logging.WARNING, **init_args}
    failed: Exception | None = None
    with _stderr_held() as held:
        try:
            ray.init(address=address, runtime_env={"env_vars": {"PYTHONPATH": path}}, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as err:
            failed = err
    if failed is not None:
        why = str(failed).strip().splitlines()[0] if str(failed).strip() else type(failed).__name__
        raise UserError(f"--ray-address {address}: cannot connect to a Ray cluster there ({why})") from None
    sys.stderr.write(held())


@contextlib.contextmanager
def _stderr_held() -> Iterator[Callable[[], str]]:
    """File descriptor 2 (Python's and C++'s writes alike) redirected to a temporary file for the
    ``with`` block; yields a function that returns what was written."""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    text = ""
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield lambda: text
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            text = log.read(1 << 20).decode("utf-8", "replace")
