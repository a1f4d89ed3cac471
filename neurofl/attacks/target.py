"""What the honest-but-curious server holds when it attacks: never the victims' data.

A :class:`Target` is the global model the victims started from, the updates they uploaded, what
the protocol tells the server (batch size, local steps and rate, the device profile) and the
attacker's own public data (the auxiliary split). The victims' inputs and labels are not in it:
scoring gets them separately, after the attack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from neurofl.data.base import Dataset
from neurofl.profiles import HardwareProfile


@dataclass(frozen=True)
class Target:
    """The attack surface of ``victims`` updates.

    model : the global model (the attacker's copy; its arithmetic follows ``profile``)
    update : name -> (victims, *weight_shape): FedSGD gradients (``local_steps`` 1) or FedAvg
        weight deltas ``w_K - w_0`` after ``local_steps`` SGD steps of rate ``local_lr``, each on
        ``minibatch`` of the update's ``batch`` samples (None: all of them every step;
        :func:`neurofl.attacks.fedavg.local_update`)
    batch : samples per update; input_shape : one sample's shape; classes : output classes
    kind : ``snn`` or ``ann``; events : whether inputs are binary event frames (C, H, W, T)
    profile : the device profile (its upload quantizer and arithmetic are public)
    auxiliary : the attacker's public data, disjoint from every client and from the oracle
    """

    model: torch.nn.Module
    update: dict[str, torch.Tensor]
    batch: int
    input_shape: tuple[int, ...]
    classes: int
    kind: str
    events: bool
    profile: HardwareProfile
    auxiliary: Dataset | None = None
    local_steps: int = 1
    local_lr: float = 0.1
    minibatch: int | None = None

    @property
    def victims(self) -> int:
        return next(iter(self.update.values())).shape[0]

    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)

    def chunk(self, start: int, stop: int) -> Target:
        """The same target restricted to victims ``start`` to ``stop`` (exclusive)."""
        return replace(self, update={k: v[start:stop] for k, v in self.update.items()})

    def gradients(self) -> dict[str, torch.Tensor]:
        """The update as a gradient: a FedAvg delta points against it (``-delta``; one local step
        gives exactly ``-lr * gradient``)."""
        if self.local_steps == 1:
            return self.update
        return {k: -v for k, v in self.update.items()}
