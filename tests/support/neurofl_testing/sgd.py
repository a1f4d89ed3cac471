"""An independent reference for the unrolled FedAvg client: its local steps the ordinary way."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F


def sgd_local_epoch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float,
                    minibatch: int | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """One client's weight delta after ``steps`` torch.optim.SGD steps on its own module copy, step
    k on the consecutive minibatch k mod (len(x) / minibatch) (None: all of x every step)."""
    m = copy.deepcopy(model)
    names = [n for n, _ in m.weight_layers()]
    params = dict(m.named_parameters())
    start = {n: params[n].detach().clone() for n in names}
    opt = torch.optim.SGD([params[n] for n in names], lr=lr)
    size = len(x) if minibatch is None else minibatch
    for k in range(steps):
        j = k % (len(x) // size)
        opt.zero_grad()
        F.cross_entropy(m(x[j * size : (j + 1) * size]), y[j * size : (j + 1) * size]).backward()
        opt.step()
    return {n: params[n].detach() - start[n] for n in names}
