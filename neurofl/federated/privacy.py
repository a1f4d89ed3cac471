"""The privacy accounting of ``--defense dp``: what one step of each DP level is, how many steps a
schedule takes, the epsilon it spends, and the noise multiplier that keeps it within a target.

Every epsilon comes from Opacus' RDP accountant (used standalone) for the subsampled Gaussian
mechanism. The three levels (``dp_level``):

``sample``
    DP-SGD on every client (Abadi et al. 2016): each local step draws a Poisson sample of the
    client's data (rate ``batch / n_k``), clips every sample's gradient to ``dp_clip``, adds
    N(0, (dp_noise * dp_clip)^2) to the sum and divides by ``batch``. The noise is added on the
    device, so the guarantee holds against the server too. Accounted per sample: ``rounds *
    local_steps`` steps at rate ``batch / min_k n_k`` (the client with the least data spends the
    most), counting every round as if the client took part (no amplification by client sampling
    is claimed).
``client``
    DP-FedAvg (McMahan et al. 2018): each client clips its update to ``dp_clip``; the server
    averages the clipped uploads uniformly and adds N(0, (dp_noise * dp_clip / k)^2) to the mean
    of k. Accounted per client: ``rounds`` steps at rate ``per_round / clients``. A trusted server
    sees the clipped uploads without noise: the guarantee covers whoever sees the aggregates and
    the final model, not the server.
``local``
    Each client clips its update and adds N(0, (dp_noise * dp_clip)^2) itself (local noise; the
    ``dp`` of earlier versions). Accounted per client against the server, which sees every upload:
    ``rounds`` steps at rate 1 (as if the client took part every round).

Opacus' analysis assumes Poisson sampling; the clients of a round are drawn as a fixed-size
sample without replacement, so the ``client`` level's rate is the standard approximation there.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

DPLevel = Literal["sample", "client", "local"]
MAX_NOISE = 1e6  # Opacus' bound on the searched noise multiplier


@dataclass(frozen=True)
class Schedule:
    """What the accountant composes: ``steps`` subsampled Gaussian mechanisms at ``sample_rate``.

    unit : what one (epsilon, delta) protects: ``sample`` or ``client``
    steps_per_round : accountant steps taken per communication round
    """

    unit: Literal["sample", "client"]
    sample_rate: float
    steps_per_round: int

    def steps(self, rounds: int) -> int:
        return rounds * self.steps_per_round


def schedule(
    level: DPLevel, clients: int, per_round: int, local_steps: int, batch: int, min_client_size: int
) -> Schedule:
    """The accountant's view of a run at ``level`` (see the module docstring)."""
    if level == "sample":
        return Schedule("sample", min(1.0, batch / max(min_client_size, 1)), local_steps)
    if level == "client":
        return Schedule("client", per_round / clients, 1)
    return Schedule("client", 1.0, 1)


def epsilon(noise: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon after ``steps`` subsampled Gaussian steps, as Opacus' ``RDPAccountant`` computes it
    for a history of ``steps`` equal steps (its default orders; ``inf`` without noise, 0 without
    steps). The per-step RDP vector is cached, so a run's epsilon after every round costs one
    evaluation of the mechanism."""
    if steps <= 0:
        return 0.0
    if noise <= 0:
        return float("inf")
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import get_privacy_spent

    rdp = _rdp_per_step(float(noise), float(sample_rate)) * steps  # Opacus' compute_rdp(steps=...)
    with warnings.catch_warnings():  # "optimal order is the largest alpha": a looser bound, still valid
        warnings.simplefilter("ignore", UserWarning)
        eps, _ = get_privacy_spent(orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta)
    return float(eps)


@functools.lru_cache(maxsize=256)
def _rdp_per_step(noise: float, sample_rate: float) -> np.ndarray:
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp

    return np.asarray(compute_rdp(q=sample_rate, noise_multiplier=noise, steps=1, orders=RDPAccountant.DEFAULT_ALPHAS))


@functools.lru_cache(maxsize=64)
def calibrate(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The noise multiplier for which the whole schedule spends at most ``target_epsilon`` (within
    0.01 below it): Opacus' ``get_noise_multiplier`` (bisection on the RDP accountant; cached).

    Raises
    ------
    ValueError
        The target needs more than ``MAX_NOISE`` (Opacus: "The privacy budget is too low.").
    """
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():  # "optimal order is the largest alpha": a looser bound, still valid
        warnings.simplefilter("ignore", UserWarning)
        noise = float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant="rdp",
                epsilon_tolerance=0.01,
            )
        )
    if not epsilon(noise, sample_rate, steps, delta) <= target_epsilon:  # the search's invariant
        raise AssertionError(f"calibrated noise {noise} spends more than epsilon {target_epsilon}")
    return noise
