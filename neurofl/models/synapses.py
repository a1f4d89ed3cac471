"""Forwards for SLAYER's synapses that compute the same sums in fewer or cheaper operations.

:func:`neurofl.models.cuba.fuse_neurons` gives each SLAYER block's synapse one of these classes
(subclasses that override ``forward`` only: the same parameters, hooks and NetX export).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lava.lib.dl.slayer.synapse import layer as slayer_synapse


class MatmulDense(slayer_synapse.Dense):
    """SLAYER's Dense synapse (a Conv3d with a 1x1x1 kernel over (batch, inputs, 1, 1, T)) as one
    matrix product over (batch, inputs, T): the same sums without the convolution's set-up cost,
    which dominated these small layers. Same parameters, hooks and export."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() != 3 or self.bias is not None:
            return super().forward(input)
        weight = self.weight if self._pre_hook_fx is None else self._pre_hook_fx(self.weight)
        return torch.matmul(weight.reshape(weight.shape[0], -1), input)


class TransposedGradConv(slayer_synapse.Conv):
    """SLAYER's Conv synapse (a Conv3d over (batch, C, H, W, T)) whose input gradient is a
    transposed convolution (:class:`_Conv3d`): the same numbers, but differentiating that gradient
    again (the attacks' second-order step) costs one convolution. Autograd's own convolution
    backward also computes a weight gradient there, which a frozen model then drops
    (``scripts/bench_study_steps.py`` times the matching step with and without this). Same
    parameters, hooks and export."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.bias is not None or isinstance(self.padding, str):
            return super().forward(input)
        weight = self.weight if self._pre_hook_fx is None else self._pre_hook_fx(self.weight)
        return _Conv3d.apply(input, weight, tuple(self.stride), tuple(self.padding), tuple(self.dilation), self.groups)


class _Conv3d(torch.autograd.Function):
    """``F.conv3d(x, w)`` (no bias) with a backward built from differentiable convolutions: the input
    gradient ``conv_transpose3d(g, w)``, the weight gradient (only when asked)
    ``convolution_backward``'s. Both can be differentiated again."""

    @staticmethod
    def forward(ctx, x, w, stride, padding, dilation, groups):  # noqa: D102 (autograd API)
        ctx.save_for_backward(x, w)
        ctx.options = (stride, padding, dilation, groups)
        return F.conv3d(x, w, None, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        x, w = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.options
        gx = gw = None
        if ctx.needs_input_grad[0]:
            # the input size the strided convolution maps onto g's size: the rows its last window skips
            extra = [
                (x.shape[2 + i] + 2 * padding[i] - dilation[i] * (w.shape[2 + i] - 1) - 1) % stride[i] for i in range(3)
            ]
            gx = F.conv_transpose3d(g, w, None, stride, padding, extra, groups, dilation)
        if ctx.needs_input_grad[1]:
            _, gw, _ = torch.ops.aten.convolution_backward(
                g, x, w, None, list(stride), list(padding), list(dilation),
                False, [0, 0, 0], groups, [False, True, False],
            )  # fmt: skip
        return gx, gw, None, None, None, None
