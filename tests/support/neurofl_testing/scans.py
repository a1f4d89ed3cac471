"""What the tests of the neuron's scans share: SLAYER's default scale and threshold, the integer
decays they sweep, and their seeded inputs."""

from __future__ import annotations

import torch

W_SCALE = 4096  # SLAYER's s_scale for its default scale (1 << 6)
THRESHOLD = 1.25 + 0.01 / W_SCALE  # the neuron's threshold + threshold_eps
# integer decays on the 12-bit grid: none (a cumulative sum), all (nothing kept), the smallest and
# largest leaks, and the defaults (0.25 and 0.03 of 4096)
DECAYS = [0, 1, 123, 1024, 4095, 4096]


def scan_input(shape: tuple[int, ...], scale: float, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Seeded normal currents of ``shape`` times ``scale``, drawn in float64 and cast to ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)
