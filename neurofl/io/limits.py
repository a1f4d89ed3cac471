"""Bounds on the work a file can ask for (configurable: change the constants here).

A header that passes every type check can still ask for unbounded work: 10,000 time steps, a
width of 10**6 neurons, 10**9 local steps. Readers refuse values above these limits with one
line before any tensor exists, and the code that runs models processes samples in chunks so that
no single forward pass holds more than :data:`ACTIVATION_BUDGET` activations. The per-reader size
limits (bytes, elements, events) live beside each reader; ``docs/reliability.md`` lists them all.
"""

from __future__ import annotations

# Time steps of one sample (profiles, checkpoint and NetX headers). The shipped profiles use 16.
MAX_TIME_STEPS = 1024
# Local SGD steps a client takes per round (fl settings, captured updates: an attack unrolls them).
MAX_LOCAL_STEPS = 10_000
# Activations (samples x neurons x time steps) of one chunk when a model runs over many samples.
ACTIVATION_BUDGET = 1 << 24


def samples_per_chunk(neurons: int, time_steps: int, budget: int = ACTIVATION_BUDGET) -> int:
    """How many samples one forward pass may take so that ``samples * neurons * time_steps``
    stays within ``budget`` (at least 1).

    >>> samples_per_chunk(202, 16)
    5190
    >>> samples_per_chunk(10**7, 1024)
    1
    """
    return max(1, budget // max(1, neurons * time_steps))


# Values one third-party NetX verification reads back from Lava per layer (neurons x steps): reading
# a Lava RingBuffer back costs tens of microseconds per value, so larger layers run unrecorded.
LAVA_READBACK = 1 << 19
