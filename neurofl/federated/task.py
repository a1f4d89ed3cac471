"""The fixed ingredients of a federated run: data split, client partitions, model topology."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from neurofl.data import Dataset, split_dataset
from neurofl.errors import UserError
from neurofl.federated import privacy
from neurofl.federated.client import ClientData
from neurofl.federated.partition import partition
from neurofl.federated.rng import numpy_rng
from neurofl.federated.settings import FLConfig
from neurofl.models import Architecture, ModelKind, build_model
from neurofl.profiles import HardwareProfile


@dataclass(frozen=True)
class FLTask:
    """A dataset split among clients, and the model they train.

    clients: one :class:`ClientData` per client (disjoint parts of the ``clients`` split);
    test_x: (m, *input_shape), test_y: (m,) the held-out split the server evaluates on.
    """

    dataset: str
    model_kind: ModelKind
    profile: HardwareProfile
    arch: Architecture
    clients: list[ClientData]
    test_x: torch.Tensor
    test_y: torch.Tensor
    cfg: FLConfig
    data_identity: dict[str, Any] | None = None  # identity.dataset_identity of the full dataset loaded
    initial_state: dict[str, torch.Tensor] | None = None  # start from these weights (None: seeded init)
    initial_identity: dict[str, Any] | None = None  # what identifies them in the run's identity
    device: str = "cpu"  # where the global model and the clients' computation live (neurofl.runs.device)

    def new_model(self) -> torch.nn.Module:
        """The initial global model (the same for every process with the same seed): seeded,
        then holding ``initial_state`` where the run starts from given weights; on ``device``."""
        model = build_model(self.model_kind, self.arch, self.profile, self.cfg.seed)
        if self.initial_state is not None:
            model.load_state_dict(self.initial_state)
        return model.to(self.device)


def make_task(
    ds: Dataset,
    model_kind: ModelKind,
    profile: HardwareProfile,
    cfg: FLConfig,
    arch: Any | None = None,
    initial_state: dict[str, torch.Tensor] | None = None,
    initial_identity: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
) -> FLTask:
    """Split ``ds`` (oracle / clients / test, as every neurofl command does, so captured
    victims never overlap the attack's oracle data) and partition the clients' split.

    arch : the topology (default: the fully connected one for ``ds``)
    initial_state, initial_identity : start from these weights (a checkpoint's), identified in the
        run's identity by ``initial_identity`` (default: the digest of the weights and the topology)
    device : where the model and the clients' batches are computed (the data stays on the CPU and
        each batch is moved; uploads are defended, quantized and aggregated on the CPU)
    """
    from neurofl.runs.identity import arrays_digest, dataset_identity

    arch = arch if arch is not None else Architecture(ds.input_shape, ds.classes)
    if initial_state is not None and initial_identity is None:
        names = sorted(initial_state)
        initial_identity = {"weights_sha256": arrays_digest(*(initial_state[k].numpy() for k in names)),
                            "names": names, "arch": repr(arch)}  # fmt: skip

    splits = split_dataset(ds, cfg.seed)
    train = splits.clients
    parts = partition(train.y, cfg.clients, cfg.partition, cfg.alpha, numpy_rng(cfg.seed, "partition"))
    x, y = torch.from_numpy(train.x), torch.from_numpy(train.y)
    clients = [ClientData(k, x[p], y[p]) for k, p in enumerate(parts)]
    cfg = calibrated(cfg, [len(c.y) for c in clients])
    return FLTask(
        dataset=ds.name,
        model_kind=model_kind,
        profile=profile,
        arch=arch,
        clients=clients,
        test_x=torch.from_numpy(splits.test.x),
        test_y=torch.from_numpy(splits.test.y),
        cfg=cfg,
        data_identity=dataset_identity(ds),
        initial_state=initial_state,
        initial_identity=initial_identity if initial_state is not None else None,
        device=str(torch.device(device)),
    )


def dp_schedule(cfg: FLConfig, client_sizes: list[int]) -> privacy.Schedule:
    """The accountant's view of the run (:func:`neurofl.federated.privacy.schedule`)."""
    return privacy.schedule(cfg.dp_level, cfg.clients, cfg.per_round, cfg.local_steps, cfg.batch, min(client_sizes))


def calibrated(cfg: FLConfig, client_sizes: list[int]) -> FLConfig:
    """``cfg`` with ``dp_noise`` calibrated to ``dp_epsilon`` over all ``cfg.rounds`` rounds (the
    same ``cfg`` without a target). client_sizes: each client's sample count.

    Raises
    ------
    UserError
        The target cannot be met with a noise multiplier up to ``privacy.MAX_NOISE``.
    """
    if cfg.defense != "dp" or cfg.dp_epsilon is None:
        return cfg
    sch = dp_schedule(cfg, client_sizes)
    try:
        noise = privacy.calibrate(cfg.dp_epsilon, cfg.dp_delta, sch.sample_rate, sch.steps(cfg.rounds))
    except ValueError:
        raise UserError(
            f"dp_epsilon {cfg.dp_epsilon:g}: no noise multiplier up to {privacy.MAX_NOISE:g} reaches it over "
            f"{cfg.rounds} rounds; raise dp_epsilon or dp_delta, or train fewer rounds"
        ) from None
    return dataclasses.replace(cfg, dp_noise=noise)


# the server's test evaluation runs in passes of this many samples (neurofl.federated.server.evaluate)
EVAL_CHUNK = 512


def check_round_memory(task: FLTask, limit: int, nodes: int | None = None, processes: int = 1) -> None:
    """Refuse, before the first round, a federated round whose working memory does not fit
    (:func:`neurofl.runs.memory.fl_round`): a round cannot be split without changing its arithmetic.

    Parameters
    ----------
    task : the run (model, clients, settings)
    limit : the memory budget in bytes, shared by ``processes`` processes working side by side
    nodes : the Flower nodes sharing the clients (None: the in-process engine, one process); each
        node process computes its sampled clients, the server process aggregates and evaluates
    processes : how many processes share ``limit`` (the Flower nodes that run at once and the
        server: each gets ``limit // processes``)

    Raises
    ------
    UserError
        One line naming ``--max-memory`` and the options that shrink a round.
    """
    import math

    from neurofl.federated.client import deterministic_forward, dp_sgd
    from neurofl.runs import memory

    cfg = task.cfg
    with torch.random.fork_rng(devices=[]):  # building seeds, and a rate code draws from, the global generator
        model = build_model(task.model_kind, task.arch, task.profile, cfg.seed)  # on the CPU: its size is the same
        fp = memory.footprint(model, tuple(task.arch.input_shape))
    together = cfg.vectorize and cfg.local_steps == 1 and deterministic_forward(model) and not dp_sgd(cfg)
    share = limit // max(1, processes)
    per_node = cfg.per_round if nodes is None else min(cfg.per_round, math.ceil(cfg.clients / nodes))
    samples = per_node * cfg.batch if together else cfg.batch
    evaluation = min(EVAL_CHUNK, len(task.test_y))
    client_side = memory.fl_round(fp, samples, per_node, evaluation if nodes is None else 0, dp_sgd(cfg))
    where = "" if processes == 1 else f" per process ({processes} processes share the budget)"
    lower = "--batch or the clients per round (--fraction, --clients)" if together else "--batch"
    what = f"a round of {per_node} clients x batch {cfg.batch}" if together else f"a client's step on batch {cfg.batch}"
    if nodes is None:
        what += f" and its test evaluation ({evaluation} samples a pass)"
    memory.check_fits(client_side, share, f"{what}, {fp.time_steps} time steps{where},", lower)
    if nodes is not None:  # the server holds every upload of the round and evaluates
        server = memory.fl_round(fp, 0, cfg.per_round, evaluation)
        memory.check_fits(server, share, f"the server's round of {cfg.per_round} uploads{where}",
                          "the clients per round (--fraction, --clients)")  # fmt: skip
