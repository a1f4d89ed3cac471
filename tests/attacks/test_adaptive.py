"""The adaptive attacker (matching through the upload quantizer) vs the naive one, same victims."""

from __future__ import annotations

import dataclasses

import pytest

from neurofl.attacks import invert
from neurofl.leakage.gradients import per_sample_gradients
from neurofl.models import Architecture, build_model
from neurofl.profiles import load_profile, quantize_update


def _coarse(profile: str, bits: int):
    p = load_profile(profile)
    return dataclasses.replace(p, update=dataclasses.replace(p.update, format="int", bits=bits))


@pytest.mark.parametrize(
    "kind,profile,bits,base,victims,iterations,margin",
    [
        # Measured (16 victims, 300 iterations): naive 14.1 dB, adaptive 18.6 dB.
        ("ann", "float32", 2, "inverting_gradients_plain", 8, 300, 1.0),
        # Measured: naive 28.4 dB, adaptive 32.9 dB (the analytic start read from a 4-bit update).
        ("ann", "float32", 4, "inverting_gradients", 8, 300, 1.0),
        # On the SNN the shipped attack is limited by the readout of the 8-bit update; both reach the
        # same point (measured 66.26 dB each), so adaptive must not be worse.
        ("snn", "loihi2", 8, "inverting_gradients", 4, 50, -0.1),
    ],
)
def test_adaptive_at_least_as_good(digits, h, kind, profile, bits, base, victims, iterations, margin):
    x, y = digits[0][:victims], digits[1][:victims]
    prof = _coarse(profile, bits)
    model = build_model(kind, Architecture((1, 8, 8), 10), prof, seed=0)
    target = {k: quantize_update(v.detach(), prof.update) for k, v in per_sample_gradients(model, x, y).items()}
    scores = {}
    for adaptive in (False, True):
        rec = h.recipe(base, iterations=iterations, adaptive=adaptive, keep_best=True)
        inv = invert(model, target, y, (1, 8, 8), rec, seed=0, profile=prof)
        scores[adaptive] = float(h.psnr(inv.images, x).clamp(max=100).mean())
    print(f"{kind}@{profile} {bits}-bit update, {base}: naive {scores[False]:.2f} dB, adaptive {scores[True]:.2f} dB")
    assert scores[True] >= scores[False] + margin
