"""A dynamic-vision-sensor emulator: log-intensity change detection (Lichtsteiner et al. 2008).

Each pixel remembers the log intensity at its last event. When the current log intensity
differs from that memory by ``k`` contrast thresholds, the pixel emits ``k`` events (ON when
brighter, OFF when darker) and moves its memory by ``k`` thresholds. A static scene therefore
emits nothing; a moving edge emits events along its path. Static images are set in motion by
small saccades, the way N-MNIST was recorded (Orchard et al. 2015: a sensor on a pan-tilt unit,
three saccades tracing a triangle, about 100 ms each).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from neurofl.config import bounded
from neurofl.data.events import make_events


@dataclass(frozen=True)
class DvsOptions:
    """Sensor and motion parameters.

    contrast_threshold : log-intensity change per event (DVS128: ~15% contrast, Lichtsteiner 2008)
    log_offset : intensities I in [0, 1] are sensed as log(I + log_offset) (keeps black finite)
    amplitude : saccade size in pixels
    saccade_ms : duration of one saccade
    steps_per_saccade : sub-steps at which the moving image is sampled
    """

    contrast_threshold: float = field(default=0.15, metadata=bounded(1e-6, 10.0))
    log_offset: float = field(default=0.1, metadata=bounded(1e-6, 10.0))
    amplitude: float = field(default=2.0, metadata=bounded(0.0, 64.0))
    saccade_ms: float = field(default=100.0, metadata=bounded(1e-3, 1e6))
    steps_per_saccade: int = field(default=16, metadata=bounded(1, 10_000))


def change_events(frames: np.ndarray, times_us: np.ndarray, options: DvsOptions) -> list[np.ndarray]:
    """Events of a batch of intensity videos.

    Parameters
    ----------
    frames : (batch, S, H, W) intensities in [0, 1], S samples in time
    times_us : (S,) sample times in microseconds (increasing)
    options : contrast threshold and log offset

    Returns
    -------
    one structured event array (x, y, t, p) per video, sorted by time. The memory starts at
    the first frame; a change between samples s-1 and s is stamped at their midpoint.
    """
    log = np.log(np.asarray(frames, np.float64) + options.log_offset)
    theta = options.contrast_threshold
    memory = log[:, 0].copy()
    cols: list[tuple[np.ndarray, ...]] = []
    for s in range(1, log.shape[1]):
        diff = log[:, s] - memory
        # a tiny tolerance keeps exact multiples of theta (float rounding) from losing an event
        count = np.floor(np.abs(diff) / theta + 1e-9).astype(np.int64)
        memory += np.sign(diff) * count * theta
        b, yy, xx = np.nonzero(count)
        rep = np.repeat(np.arange(len(b)), count[b, yy, xx])
        p = (diff[b, yy, xx] > 0).astype(np.int8)
        t = np.full(len(rep), (times_us[s - 1] + times_us[s]) // 2, np.int64)
        cols.append((b[rep], xx[rep], yy[rep], t, p[rep]))
    if not cols:
        cols.append(tuple(np.zeros(0, np.int64) for _ in range(5)))
    b, x, y, t, p = (np.concatenate(c) for c in zip(*cols, strict=True))
    order = np.argsort(b, kind="stable")  # chunks are in time order, so each video stays sorted
    b, x, y, t, p = (c[order] for c in (b, x, y, t, p))
    bounds = np.searchsorted(b, np.arange(len(frames) + 1))
    return [make_events(x[lo:hi], y[lo:hi], t[lo:hi], p[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def saccade_path(options: DvsOptions) -> tuple[np.ndarray, np.ndarray]:
    """Image offsets along three saccades tracing a triangle, back to the start.

    Returns (S, 2) offsets (dy, dx) in pixels and (S,) times in microseconds,
    S = 3 * steps_per_saccade + 1.
    """
    a = options.amplitude
    corners = np.array([[0.0, 0.0], [a, a / 2], [0.0, a], [0.0, 0.0]])
    k = options.steps_per_saccade
    f = np.arange(k) / k
    path = [c0 + f[:, None] * (c1 - c0) for c0, c1 in zip(corners[:-1], corners[1:], strict=True)]
    offsets = np.concatenate([*path, corners[-1:]])
    times = np.round(np.arange(len(offsets)) * options.saccade_ms * 1000 / k).astype(np.int64)
    return offsets, times


def saccade_video(images: np.ndarray, options: DvsOptions) -> tuple[np.ndarray, np.ndarray]:
    """Move images along :func:`saccade_path` (bilinear, zero outside).

    images: (batch, H, W) -> video (batch, S, H, W) and times (S,) in microseconds.
    Pad the images first so the motion stays on the sensor.
    """
    offsets, times = saccade_path(options)
    video = np.stack([ndimage.shift(images, (0, dy, dx), order=1, mode="constant", cval=0.0) for dy, dx in offsets], 1)
    return np.clip(video, 0.0, 1.0), times
