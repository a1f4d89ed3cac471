"""Label recovery from a shared update (iDLG, Zhao et al. 2020)."""

from __future__ import annotations

import torch


def idlg_labels(last_weight_grad: torch.Tensor) -> torch.Tensor:
    """Recover each victim's label from its last layer's weight gradient.

    With cross-entropy and non-negative inputs to the last layer (sigmoid activations or spike
    counts), the true class is the only row whose gradient is non-positive: its row sum is the
    minimum.

    last_weight_grad: (victims, classes, *fan_in) -> labels (victims,) int64
    """
    return last_weight_grad.reshape(last_weight_grad.shape[0], last_weight_grad.shape[1], -1).sum(-1).argmin(1)
