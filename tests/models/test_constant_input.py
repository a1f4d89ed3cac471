"""The direct encoding's input, the same every step, runs the first synapse once."""

from __future__ import annotations

import pytest
import torch

from neurofl.leakage.gradients import flatten, per_sample_gradients
from neurofl.models import Architecture, build_model
from neurofl.models.conv import ConvArchitecture
from neurofl.models.snn import every_input_step
from neurofl.profiles import load_profile


@pytest.mark.parametrize("arch", [Architecture((1, 8, 8), 10), ConvArchitecture((1, 12, 12), 10, channels=4)])
@pytest.mark.parametrize("profile", ["float32", "loihi2"])
def test_a_direct_input_passes_the_first_synapse_once(arch, profile):
    """With the direct encoding the first block's input is one step (the same every step): the
    network's spikes equal, bit for bit, those of the same blocks run on the input materialized
    over all T steps, and the per-sample gradients equal theirs up to the order of the sum over
    time."""
    model = build_model("snn", arch, load_profile(profile), seed=0)
    x = torch.rand((12, *arch.input_shape), generator=torch.Generator().manual_seed(0))
    y = torch.arange(12) % 10
    assert model.input_steps(x, None).shape[-1] == 1
    assert model.input_spikes(x, None).shape[-1] == model.time_steps

    spikes, once = model.spikes(x), flatten(per_sample_gradients(model, x, y, group=3))
    with every_input_step():  # the reference: the input materialized over all T steps
        assert model.input_steps(x, None).shape[-1] == model.time_steps
        assert torch.equal(model.spikes(x), spikes)
        reference = flatten(per_sample_gradients(model, x, y, group=3))
    assert once.abs().max() > 0
    torch.testing.assert_close(once, reference, rtol=1e-5, atol=1e-6 * float(reference.abs().max()))
