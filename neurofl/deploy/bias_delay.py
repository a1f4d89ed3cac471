"""NetX neuron biases and synaptic delays, as Lava runs them, in the SLAYER reference.

What NetX (lava-dl 0.6.0, ``lava/lib/dl/netx/hdf5.py`` and ``blocks/process.py``) builds from a dense
layer's optional datasets:

- ``bias`` (scalar or one per neuron): the LIF's ``bias_mant`` with ``bias_exp = 6``. Lava's
  bit-accurate LIF adds ``bias_mant << 6`` to the voltage every step, after the current
  (``v = decay(v) + u + (bias_mant << 6)``), on the grid where the threshold is ``vThMant << 6``:
  ``bias_mant`` threshold-mantissa units per step, i.e. ``bias_mant / threshold_scale`` in SLAYER's
  voltage units (:class:`BiasedCubaNeuron`). ``bias_mant`` is a signed 13-bit register.
- ``delay`` (scalar, one per output neuron, one per input, or one per synapse): a ``DelayDense``
  synapse; a spike crossing a synapse of delay ``d`` reaches the neuron ``d`` steps after one
  crossing a plain ``Dense`` synapse (:class:`DelayedDense`). NetX builds it with ``max_delay = 62``
  and silently clamps larger delays, so those are refused.

Time alignment. ``neurofl verify`` runs all samples back to back, each layer's neurons reset by
NetX's ``reset_interval`` at the step its first input of the sample arrives: weighted layer ``l``
(1-based) resets at its SLAYER time ``l - 1``, so Lava integrates that layer's bias from SLAYER step
``l - 1`` on, and the reference does the same (before it, without bias, the layer has no input
in SLAYER either). A ``DelayDense`` keeps spikes in flight across that reset; the Lava run clears
them at each sample boundary (:func:`neurofl.deploy.lava_run.run_config`), so samples stay independent.
"""

from __future__ import annotations

import h5py
import numpy as np
import torch

from neurofl.errors import UserError
from neurofl.models.cuba import FusedCubaNeuron, integrate
from neurofl.models.synapses import MatmulDense

# NetX's LIF bias exponent (``'bias_exp': 6`` in Network.get_neuron_params) and Lava's bit-accurate
# LIF alignment of the threshold (``vth_shift = 6``): a bias mantissa b adds b << 6 per step on the
# grid where the threshold is vThMant << 6, i.e. b threshold-mantissa units.
NETX_BIAS_EXP = 6
LAVA_VTH_SHIFT = 6
# Lava's LIF ``bias_mant``: a signed 13-bit register (lava/proc/lif/models.py)
BIAS_RANGE = (-(1 << 12), (1 << 12) - 1)
# NetX builds every DelayDense with max_delay = 62 and clamps larger delays (with a warning)
MAX_NETX_DELAY = 62
# Lava's fixed-point DelayDense multiplies a (63 * out, in) matrix every step: a delayed layer may
# hold at most this many synapses (63 * 2**19 int64 entries = 264 MB per step)
MAX_DELAY_SYNAPSES = 1 << 19
# proc_params keys neurofl.deploy.netx.build_network sets on a DelayDense synapse for the Lava run's
# model (neurofl.deploy.lava_run.run_config): the sample length in steps, and the step (mod it) at
# which a sample's first spikes reach the synapse (one step before its neurons reset)
SAMPLE_STEPS_KEY = "neurofl_sample_steps"
SAMPLE_START_KEY = "neurofl_sample_start"


def bias_shape_ok(shape: tuple[int, ...], outputs: int) -> bool:
    """Whether NetX gives a dense layer of ``outputs`` neurons a ``bias`` of this shape unchanged:
    a scalar or one value per neuron."""
    return shape in ((), (outputs,))


def delay_shape_ok(shape: tuple[int, ...], outputs: int, inputs: int) -> bool:
    """Whether NetX (``create_dense``) expands a ``delay`` of this shape to the (outputs, inputs)
    weight: a scalar, one per output neuron, one per input, or one per synapse."""
    return shape in ((), (outputs,), (inputs,), (outputs, inputs))


def netx_delays(values: np.ndarray, outputs: int, inputs: int) -> np.ndarray:
    """NetX's per-synapse delay matrix from a layer's ``delay`` dataset (checked beforehand).

    values : (), (outputs,), (inputs,) or (outputs, inputs), whole numbers of steps
    -> (outputs, inputs) int64 steps. A vector whose length is both (outputs == inputs) is one
    delay per output neuron, as NetX reads it.
    """
    v = np.asarray(values).astype(np.int64)
    if v.ndim == 1 and v.size == outputs:
        v = v.reshape(outputs, 1)
    elif v.ndim == 1:
        v = v.reshape(1, inputs)
    return np.ascontiguousarray(np.broadcast_to(v, (outputs, inputs)))


class BiasedCubaNeuron(FusedCubaNeuron):
    """:class:`FusedCubaNeuron` plus Lava's LIF bias, added to the voltage's input every step from
    ``bias_start`` on (forward only: the reference is never trained).

    Attributes set by :func:`add_bias`: ``bias_units`` (neurons,) float32 in SLAYER voltage units,
    ``bias_start`` the first step (SLAYER time) the bias is integrated.
    """

    bias_units: torch.Tensor
    bias_start: int

    def dynamics(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(current, voltage) responses to ``input`` (batch, neurons, T), SLAYER units: the current
        as SLAYER integrates it, the voltage integrating ``current + bias`` (exact in float32: both
        are whole multiples of 1/64 well inside 2**24 / 64)."""
        with torch.no_grad():
            current = integrate(input, round(float(self.current_decay)), self.s_scale)
            gate = (torch.arange(input.shape[-1]) >= self.bias_start).to(input.dtype)
            drive = current + self.bias_units.to(input.dtype).reshape(-1, 1) * gate
            threshold = self.threshold + self.threshold_eps
            return current, integrate(drive, round(float(self.voltage_decay)), self.s_scale, threshold)


def add_bias(block: torch.nn.Module, bias: np.ndarray, threshold_scale: int, start: int) -> None:
    """Give a SLAYER CUBA Dense ``block`` NetX's neuron bias.

    bias : () or (neurons,) integer bias mantissas, as the file holds them
    threshold_scale : threshold-mantissa units per SLAYER voltage unit (the profile's, 64 for Loihi)
    start : the first SLAYER step the layer integrates it (its reset step in the Lava run)
    """
    if type(block.neuron) is not FusedCubaNeuron:
        raise TypeError(f"expected a FusedCubaNeuron, got {type(block.neuron).__name__}")
    mant = np.broadcast_to(np.asarray(bias, dtype=np.float64), (block.synapse.weight.shape[0],))
    units = mant * 2.0 ** (NETX_BIAS_EXP - LAVA_VTH_SHIFT) / threshold_scale
    block.neuron.__class__ = BiasedCubaNeuron
    block.neuron.bias_units = torch.tensor(units, dtype=torch.float32)
    block.neuron.bias_start = start


class DelayedDense(MatmulDense):
    """SLAYER's Dense synapse with NetX's per-synapse delays: ``z[:, t] = sum_d W_d x[:, t - d]``
    where ``W_d`` keeps the weights of the synapses of delay ``d`` (zero input before step 0).

    Attribute set by :func:`add_delays`: ``delays`` (out, in) int64 steps.
    """

    delays: torch.Tensor

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """input (batch, in, T) -> (batch, out, T), SLAYER units."""
        weight = self.weight if self._pre_hook_fx is None else self._pre_hook_fx(self.weight)
        weight = weight.reshape(weight.shape[0], -1)
        steps = input.shape[-1]
        out = torch.zeros(input.shape[0], weight.shape[0], steps, dtype=input.dtype)
        for d in torch.unique(self.delays).tolist():
            if d >= steps:
                continue  # arrives after the sample's last step
            part = torch.matmul(torch.where(self.delays == d, weight, torch.zeros_like(weight)), input)
            out[..., d:] += part[..., : steps - d]
        return out


def add_delays(block: torch.nn.Module, delays: np.ndarray) -> None:
    """Give a SLAYER CUBA Dense ``block`` NetX's synaptic delays, ``delays`` (out, in) steps."""
    if not isinstance(block.synapse, MatmulDense):
        raise TypeError(f"expected a MatmulDense synapse, got {type(block.synapse).__name__}")
    block.synapse.__class__ = DelayedDense
    block.synapse.delays = torch.tensor(np.asarray(delays), dtype=torch.int64)


def read_bias_delay(g: h5py.Group, outputs: int, inputs: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A checked dense layer's (bias mantissas or None, (outputs, inputs) delays or None)."""
    bias = np.asarray(g["bias"][()]).astype(np.int64) if "bias" in g else None
    delays = netx_delays(g["delay"][()], outputs, inputs) if "delay" in g else None
    return bias, delays


def refuse_graded_delays(path: str, layer: int) -> None:
    """Lava's DelayDense shifts each delay's partial sum by the weight exponent separately: with
    graded input (a negative exponent) each is floored on its own, which the reference does not model."""
    raise UserError(
        f"{path}: /layer/{layer}/delay: synaptic delays on the first layer of a graded-input network "
        "(Lava floors each delay's partial sum separately) are not modelled by neurofl's SLAYER reference"
    )
