"""IBM TrueNorth's synapse: a binary crossbar with one signed weight per neuron and axon type.

On TrueNorth an axon ``i`` has one of ``A`` types ``G(i)`` (4 on the chip), a synapse ``c[j, i]`` is on
or off, and neuron ``j`` stores one signed weight ``s[j, g]`` per type, so the effective weight is
``W[j, i] = c[j, i] * s[j, G(i)]`` (Merolla et al., Science 345:668, 2014; Cassidy et al., IJCNN 2013).

neurofl maps a signed input onto two axons (the usual TrueNorth practice of splitting excitation and
inhibition): input ``i`` reaches an excitatory axon of type ``i mod (A/2)`` and an inhibitory axon of
type ``A/2 + i mod (A/2)``. A trained float weight ``w`` is projected onto this set in the forward pass
(straight-through gradient), so training, the attacks and the fit check all see exactly the chip's
weights: per neuron and type, ``s`` is the rounded mean magnitude of the weights of that sign and type
(at least 1), and a synapse is on where ``|w| >= s / 2`` (the nearer of 0 and ``s``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from neurofl.profiles import WeightFormat


def axon_type(inputs: int, axon_types: int) -> torch.Tensor:
    """(inputs,) int64: the type of each input's excitatory axon (``i mod (A/2)``); its inhibitory
    axon's type is that plus ``A/2``."""
    return torch.arange(inputs) % (axon_types // 2)


def crossbar_weight(
    weight: torch.Tensor, fmt: WeightFormat, weight_range: tuple[float, float], descale: bool = False
) -> torch.Tensor:
    """Project weights onto the crossbar's weight set.

    Parameters
    ----------
    weight : (post, pre) in parameter units (the chip's integer weight is ``weight * fmt.scale``)
    fmt : the profile's weight format (``bits``, ``scale``, ``axon_types`` > 0)
    weight_range : the profile's signed integer range divided by ``scale`` (for ``bits`` = 9: [-256, 255] / scale)
    descale : return integer units instead of parameter units

    Returns
    -------
    (post, pre): ``c[j, i] * s[j, type(i, sign)]``, with the gradient of the identity (straight-through).
    """
    if weight.dim() != 2:
        raise ValueError(f"a crossbar projects (post, pre) weight matrices, got shape {tuple(weight.shape)}")
    half = fmt.axon_types // 2
    u = weight.detach() * fmt.scale
    lo, hi = (round(r * fmt.scale) for r in weight_range)
    with torch.no_grad():
        onehot = torch.nn.functional.one_hot(axon_type(u.shape[1], fmt.axon_types), half).to(u.dtype)  # (pre, half)
        q = torch.zeros_like(u)
        for sign, limit in ((1.0, hi), (-1.0, -lo)):
            mag = (u * sign).clamp_min(0)  # this sign's magnitudes, 0 elsewhere
            count = (mag > 0).to(u.dtype) @ onehot  # (post, half)
            s = torch.round((mag @ onehot) / count.clamp_min(1)).clamp(1, limit)  # one weight per neuron and type
            s_i = s @ onehot.T  # (post, pre): the weight of each input's axon of this sign
            q = q + sign * s_i * (mag >= s_i / 2).to(u.dtype) * (mag > 0).to(u.dtype)
    q = q if descale else q / fmt.scale
    ref = weight * fmt.scale if descale else weight
    return ref + (q - ref).detach()
