"""The victims of a federated round and the updates they share: one definition for every command.

Victim ``v`` is one client's update, computed on ``batch`` private samples of that client's shard
(client ``v % clients`` of an IID split of the clients' data), in the arithmetic of the device
profile and quantized the way the profile uploads it. ``evaluate``, ``attack`` and the scripts draw
victims and compute updates here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurofl.data.base import Dataset
from neurofl.errors import UserError
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.profiles import HardwareProfile, quantize_update
from neurofl.runs.device import device_of


@dataclass(frozen=True)
class Victims:
    """The private batches whose updates the server attacks.

    x : (victims * batch, *input_shape); y : (victims * batch,) int64
    client : (victims,) the owning client of each victim
    index : (victims * batch,) row of each sample in the clients' split
    batch : samples per update
    """

    x: torch.Tensor
    y: torch.Tensor
    client: np.ndarray
    index: np.ndarray
    batch: int

    @property
    def count(self) -> int:
        return len(self.client)

    def chunk(self, start: int, stop: int) -> Victims:
        """Victims ``start`` to ``stop`` (exclusive)."""
        b = self.batch
        return Victims(
            self.x[start * b : stop * b], self.y[start * b : stop * b], self.client[start:stop],
            self.index[start * b : stop * b], b,
        )  # fmt: skip


def iid_partition(n: int, clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Split indices ``range(n)`` into ``clients`` disjoint IID shards of near-equal size."""
    return [np.sort(s) for s in np.array_split(rng.permutation(n), clients)]


def private_shards(clients_data: Dataset, clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Each client's private samples (rows of the clients' split): an IID split of the clients' data,
    restricted to the samples that may be victims (for ``faces``, faces only)."""
    shards = iid_partition(len(clients_data.y), clients, rng)
    if clients_data.private_class is not None:
        shards = [s[clients_data.y[s] == clients_data.private_class] for s in shards]
    return shards


def victims_that_fit(clients_data: Dataset, batch: int, clients: int, seed: int) -> int:
    """The most victims of ``batch`` samples that :func:`draw_victims` can draw with this seed."""
    smallest = min(len(s) for s in private_shards(clients_data, clients, np.random.default_rng(seed)))
    return (smallest // batch) * clients


def draw_victims(clients_data: Dataset, victims: int, batch: int, clients: int, seed: int) -> Victims:
    """Victim ``v`` belongs to client ``v % clients`` and holds ``batch`` private samples of its
    shard (for ``faces``, faces only: :meth:`Dataset.private`).

    Raises
    ------
    UserError
        A client's shard holds fewer private samples than its victims need.
    """
    if victims < 1 or batch < 1 or clients < 1:
        raise UserError("--victims, --batch-size and --clients must be >= 1")
    rng = np.random.default_rng(seed)
    shards = private_shards(clients_data, clients, rng)
    per_client = -(-victims // clients) * batch
    have = min(len(s) for s in shards)
    if have < per_client:
        what = "private samples" if clients_data.private_class is not None else "samples"
        raise UserError(
            f"--victims {victims} x --batch-size {batch} needs {per_client} {what} per client, but the smallest of "
            f"{clients} clients holds {have} ({clients_data.name}); use fewer victims, a smaller batch or fewer clients"
        )
    picks = [rng.permutation(s)[:per_client] for s in shards]
    idx: list[int] = []
    owner: list[int] = []
    for v in range(victims):
        c, k = v % clients, v // clients
        idx.extend(picks[c][k * batch : (k + 1) * batch])
        owner.append(c)
    index = np.asarray(idx, dtype=np.int64)
    return Victims(
        torch.from_numpy(clients_data.x[index]), torch.from_numpy(clients_data.y[index]),
        np.asarray(owner), index, batch,
    )  # fmt: skip


def shared_updates(
    model: torch.nn.Module,
    victims: Victims,
    profile: HardwareProfile,
    seed: int,
    local_steps: int = 1,
    local_lr: float = 0.1,
    minibatch: int | None = None,
) -> dict[str, torch.Tensor]:
    """What each victim uploads: its FedSGD gradient (``local_steps`` 1) or its FedAvg weight
    delta after ``local_steps`` SGD steps of rate ``local_lr`` (each on ``minibatch`` of its
    samples, None: all of them; :func:`neurofl.attacks.fedavg.local_update`), computed in the
    profile's arithmetic and quantized as ``profile.update`` says.

    The clients' private randomness (a rate code's spikes, stochastic rounding) is seeded from
    ``seed`` and never given to the attacker. The updates are computed on the model's device
    (the victims' data is moved there); the rounding noise is drawn on the CPU, so a seed draws
    the same on every device. Returns name -> (victims, *weight_shape), on the model's device.
    """
    from neurofl.attacks.fedavg import local_update

    dev = device_of(model)
    x, y = victims.x.to(dev), victims.y.to(dev)
    enc = torch.Generator().manual_seed(seed + 1000)  # the clients' private encoding randomness
    rnd = torch.Generator().manual_seed(seed + 2000)  # stochastic rounding
    if local_steps > 1:
        grads = local_update(model, x, y, victims.batch, local_steps, local_lr, generator=enc, minibatch=minibatch)
    else:
        grads = per_sample_gradients(model, x, y, generator=enc, group=victims.batch)
    return {k: quantize_update(v.detach().cpu(), profile.update, rnd).to(dev) for k, v in grads.items()}
