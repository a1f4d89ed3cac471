import math

import pytest
import torch

from neurofl.federated.defenses import clip_and_noise, dp_epsilon, l2_norm, prune


def _update(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(1, 20, 8, generator=g) * 3, "b": torch.randn(1, 10, 20, generator=g)}


def test_epsilon_is_monotone_in_rounds_and_noise() -> None:
    by_rounds = [dp_epsilon(1.0, 0.1, r, 1e-5) for r in (1, 5, 20, 100)]
    assert all(b > a for a, b in zip(by_rounds, by_rounds[1:], strict=False)), by_rounds
    by_noise = [dp_epsilon(s, 0.1, 20, 1e-5) for s in (0.6, 1.0, 2.0, 4.0)]
    assert all(b < a for a, b in zip(by_noise, by_noise[1:], strict=False)), by_noise
    assert dp_epsilon(0.0, 0.1, 20, 1e-5) == math.inf
    # Subsampling amplifies privacy: fewer clients per round, smaller epsilon.
    assert dp_epsilon(1.0, 0.01, 20, 1e-5) < dp_epsilon(1.0, 0.5, 20, 1e-5)


def test_clipping_bounds_the_norm_and_keeps_the_direction() -> None:
    u = _update()
    clipped = clip_and_noise(u, clip=1.0, noise=0.0, generator=torch.Generator().manual_seed(0))
    assert l2_norm(clipped) == pytest.approx(1.0, rel=1e-5)
    for k in u:
        torch.testing.assert_close(clipped[k] * l2_norm(u), u[k], rtol=1e-4, atol=1e-5)
    small = {k: v * 1e-3 for k, v in u.items()}
    same = clip_and_noise(small, clip=1.0, noise=0.0, generator=torch.Generator().manual_seed(0))
    for k in u:
        torch.testing.assert_close(same[k], small[k])


def test_noise_has_the_requested_std() -> None:
    zero = {"a": torch.zeros(1, 200, 200)}
    noisy = clip_and_noise(zero, clip=0.5, noise=2.0, generator=torch.Generator().manual_seed(1))
    assert float(noisy["a"].std()) == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("keep", [0.01, 0.1, 0.5, 1.0])
def test_prune_keeps_the_largest_entries(keep: float) -> None:
    u = _update(3)
    out = prune(u, keep)
    for k, t in u.items():
        kept = out[k] != 0
        assert int(kept.sum()) == max(1, math.ceil(keep * t.numel()))
        assert torch.equal(out[k][kept], t[kept])
        if not kept.all():
            assert t[kept].abs().min() >= t[~kept].abs().max()
