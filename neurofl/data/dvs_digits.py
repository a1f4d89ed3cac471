"""The embedded event dataset: scikit-learn's digits seen by the emulated DVS during saccades.

Each 8x8 digit is upscaled (bilinear), padded so the saccades stay on the sensor, moved along
three saccades (as N-MNIST was recorded) and converted to ON/OFF events by
:mod:`neurofl.data.dvs_emulator`; the events are binned into frames (tonic ``ToFrame``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from neurofl.config import bounded
from neurofl.data.base import Dataset
from neurofl.data.dvs_emulator import DvsOptions, change_events, saccade_video
from neurofl.data.embedded import load_digits
from neurofl.data.events import FrameOptions, to_frames

CHUNK = 256  # digits moved and converted to events at a time


@dataclass(frozen=True)
class DvsDigitsOptions:
    """``upscale`` x 8 pixels per digit plus ``ceil(amplitude)`` pixels of margin on each side:
    2 and 2.0 give a 20x20x2 sensor; ``bins`` time bins over the three saccades."""

    upscale: int = field(default=2, metadata=bounded(1, 16))
    bins: int = field(default=16, metadata=bounded(1, 1000))
    dvs: DvsOptions = field(default_factory=DvsOptions)


def sensor_side(options: DvsDigitsOptions) -> int:
    return 8 * options.upscale + 2 * math.ceil(options.dvs.amplitude)


def dvs_digits_events(options: DvsDigitsOptions = DvsDigitsOptions()) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Raw events of every digit: (event arrays, labels (N,), duration in microseconds)."""
    digits = load_digits()
    k = options.upscale
    images = ndimage.zoom(digits.x[:, 0], (1, k, k), order=1, grid_mode=True, mode="nearest")
    m = math.ceil(options.dvs.amplitude)
    canvas = np.pad(np.clip(images, 0, 1), ((0, 0), (m, m), (m, m)))
    events: list[np.ndarray] = []
    # in chunks of digits: each video is independent of the others, so the events are those of one
    # batch, at a seventh of the peak memory (a video of all 1797 digits is ~1 GB of float64)
    for i in range(0, len(canvas), CHUNK):
        video, times = saccade_video(canvas[i : i + CHUNK], options.dvs)
        events.extend(change_events(video, times, options.dvs))
    return events, digits.y, int(times[-1])


def load_dvs_digits(
    data_dir: Path | None = None, download: bool = False, options: DvsDigitsOptions = DvsDigitsOptions()
) -> Dataset:
    """Digits as binary event frames.

    Returns x: (1797, 2, S, S, bins) float32 in {0, 1} with S = :func:`sensor_side` (20 by
    default), y: (1797,) int64.
    """
    events, y, duration = dvs_digits_events(options)
    side = sensor_side(options)
    frame = FrameOptions(bins=options.bins, height=side, width=side, max_per_class=None)
    x = np.stack([to_frames(ev, (side, side, 2), frame, start_time=0, end_time=duration) for ev in events])
    src = "scikit-learn digits through a DVS emulator (3 saccades, log-intensity change events)"
    return Dataset("dvs-digits", x, y, 10, "events", src)
