"""Federated-learning settings: one frozen dataclass, validated like every other neurofl config.

The ``fl`` command builds the table from its options (or a user's TOML file) and validates it
with :func:`neurofl.config.from_table`, so a bad value names its key and is rejected before any
work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from neurofl.config import bounded, from_table
from neurofl.io.limits import MAX_LOCAL_STEPS
from neurofl.runs.identity import SEED_MAX

Strategy = Literal["fedsgd", "fedavg", "fedprox"]
Defense = Literal["none", "dp", "prune", "secagg"]
DPLevel = Literal["sample", "client", "local"]


@dataclass(frozen=True)
class FLConfig:
    """Everything that determines a federated run (two runs with equal configs are identical).

    Attributes
    ----------
    clients : number of clients the training split is partitioned into
    rounds : communication rounds
    fraction : share of clients sampled each round (at least one)
    strategy : ``fedsgd`` (a client uploads one batch gradient), ``fedavg`` (the weight delta after
        ``local_steps`` SGD steps) or ``fedprox`` (FedAvg with a proximal term ``mu``)
    local_steps : SGD steps per round on the client (FedSGD always takes 1); outside DP-SGD they
        walk one draw of ``local_steps * batch`` of its samples in consecutive minibatches
        (:func:`neurofl.federated.client.epoch_walk`)
    batch : samples per client step (a client with fewer samples uses all of them)
    lr : learning rate of the client's SGD (FedSGD: the server's step on the mean gradient)
    mu : FedProx proximal weight
    partition : ``iid`` or ``dirichlet`` (label skew, concentration ``alpha``)
    defense : ``none``, ``dp`` (clipping to ``dp_clip`` and Gaussian noise of std
        ``dp_noise * dp_clip`` at ``dp_level``), ``prune`` (keep the ``prune_keep``
        largest-magnitude entries per tensor) or ``secagg`` (the server sees only the round's
        aggregate)
    dp_level : ``sample`` (DP-SGD on each client: per-sample clipping, noise on the device),
        ``client`` (DP-FedAvg: each client clips its update, the server adds the noise to the
        mean) or ``local`` (each client clips its update and adds the noise itself);
        :mod:`neurofl.federated.privacy` has the accounting of each
    dp_noise : noise multiplier (std / clip); with ``dp_epsilon`` set, the task replaces it with
        the calibrated one (:func:`neurofl.federated.task.make_task`)
    dp_epsilon : target epsilon for the whole schedule; the noise multiplier is calibrated so the
        accountant's epsilon after ``rounds`` rounds is at most this
    secagg_clip : ``secagg`` clips every update entry to [-secagg_clip, secagg_clip], the fixed-point
        range SecAgg+ quantizes into (2**22 levels) before masking
    dp_delta : the delta of the (epsilon, delta) guarantee
    capture_rounds : rounds whose updates are recorded for attacks (1-based)
    capture_clients : how many of each captured round's participants are recorded (lowest ids)
    vectorize : compute all clients of a round in one batched pass where that gives the same
        result as one client at a time (deterministic input encoding, one local step)
    seed : seeds the split, partition, model, client sampling and every client's randomness
    """

    clients: int = field(metadata=bounded(1, 1_000_000))
    rounds: int = field(metadata=bounded(1, 1_000_000))
    fraction: float = field(default=1.0, metadata=bounded(1e-9, 1.0))
    strategy: Strategy = "fedsgd"
    local_steps: int = field(default=1, metadata=bounded(1, MAX_LOCAL_STEPS))
    batch: int = field(default=8, metadata=bounded(1, 1_000_000))
    lr: float = field(default=0.5, metadata=bounded(1e-9, 1e3))
    mu: float = field(default=0.01, metadata=bounded(0.0, 1e3))
    partition: Literal["iid", "dirichlet"] = "iid"
    alpha: float = field(default=0.5, metadata=bounded(1e-6, 1e6))
    defense: Defense = "none"
    dp_clip: float = field(default=1.0, metadata=bounded(1e-9, 1e6))
    dp_noise: float = field(default=1.0, metadata=bounded(0.0, 1e6))
    dp_level: DPLevel = "local"
    dp_epsilon: float | None = field(default=None, metadata=bounded(None, 1e6))
    dp_delta: float = field(default=1e-5, metadata=bounded(1e-12, 0.5))
    prune_keep: float = field(default=0.1, metadata=bounded(1e-9, 1.0))
    secagg_clip: float = field(default=8.0, metadata=bounded(1e-6, 1e6))
    capture_rounds: tuple[int, ...] = ()
    capture_clients: int = field(default=0, metadata=bounded(0, 1_000_000))
    vectorize: bool = True
    seed: int = field(default=0, metadata=bounded(0, SEED_MAX))

    def __post_init__(self) -> None:
        if self.strategy == "fedsgd" and self.local_steps != 1:
            raise ValueError(
                f"key 'local_steps' = {self.local_steps}: FedSGD takes exactly 1 step (use fedavg)"
            )
        if self.defense == "secagg" and self.per_round < 3:
            raise ValueError(
                f"key 'defense' = 'secagg' needs at least 3 clients per round (SecAgg+), "
                f"got {self.per_round}: raise clients or fraction"
            )
        if self.dp_epsilon is not None and not self.dp_epsilon > 0:
            raise ValueError(f"key 'dp_epsilon' = {self.dp_epsilon}: the target epsilon must be > 0")
        bad = [r for r in self.capture_rounds if not 1 <= r <= self.rounds]
        if bad:
            raise ValueError(f"key 'capture_rounds' = {bad[0]}: rounds are numbered 1..{self.rounds}")

    @property
    def per_round(self) -> int:
        """Clients sampled per round: ``max(1, round(fraction * clients))``."""
        return max(1, int(round(self.fraction * self.clients)))

    @property
    def update_kind(self) -> Literal["gradient", "delta"]:
        return "gradient" if self.strategy == "fedsgd" else "delta"


def fl_config(table: dict[str, Any], source: Path | str = "command line") -> FLConfig:
    """Validate a table of settings (``None`` values are left at their defaults).

    Besides each key's own checks: ``dp_noise`` and ``dp_epsilon`` exclude each other (the target
    epsilon determines the noise), and ``dp_epsilon`` or a ``dp_level`` other than the default
    need ``defense = "dp"``.
    """
    from neurofl.errors import UserError

    given = {k: v for k, v in table.items() if v is not None}
    cfg = from_table(FLConfig, given, source)
    if "dp_noise" in given and "dp_epsilon" in given:
        raise UserError(f"{source}: keys 'dp_noise' and 'dp_epsilon' exclude each other: give the noise or the target")
    for key, unset in (("dp_epsilon", None), ("dp_level", "local")):  # (the defaults pass: configs round-trip)
        if given.get(key, unset) != unset and cfg.defense != "dp":
            raise UserError(f"{source}: key '{key}' applies to defense 'dp' only (defense is {cfg.defense!r})")
    return cfg
