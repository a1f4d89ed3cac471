"""Event streams (numpy structured arrays x, y, t, p, as tonic uses) and their binned frames.

Frames follow the Dataset contract for ``kind="events"``: (C, H, W, T) float32 in [0, 1], where
channel 0 holds OFF events (p = 0) and channel 1 ON events (p = 1), and a pixel is 1 in a bin
when it fired at least once there (binary frames: the event-domain attack thresholds its
reconstruction to binary events, so the ground truth is binary too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurofl.config import bounded

# x, y in pixels, t in microseconds, p: 1 ON (brighter), 0 OFF (darker)
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


@dataclass(frozen=True)
class FrameOptions:
    """How an event stream becomes frames: ``bins`` time bins (T) over the recording, the
    sensor downsampled to ``height`` x ``width``, and at most ``max_per_class`` recordings per
    class loaded (None: all)."""

    bins: int = field(default=16, metadata=bounded(1, 10_000))
    height: int = field(default=32, metadata=bounded(1, 4096))
    width: int = field(default=32, metadata=bounded(1, 4096))
    max_per_class: int | None = 100


def make_events(x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Pack coordinate arrays (same length) into an :data:`EVENT_DTYPE` structured array."""
    ev = np.empty(len(x), EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p
    return ev


def to_frames(
    events: np.ndarray,
    sensor_size: tuple[int, int, int],
    options: FrameOptions,
    start_time: float | None = None,
    end_time: float | None = None,
) -> np.ndarray:
    """Bin one recording into binary frames with tonic's ``Downsample`` and ``ToFrame``.

    Parameters
    ----------
    events : structured array with fields x, y, t, p (t in microseconds)
    sensor_size : (width, height, polarities) of the recording sensor, tonic's order
    options : bins and target size
    start_time, end_time : the binned interval in microseconds, cut into equal windows
        (default: tonic's ``n_time_bins`` from the first to the last event)

    Returns
    -------
    (polarities, height, width, bins) float32 in {0, 1}
    """
    from tonic.transforms import Downsample, ToFrame

    w, h, pol = sensor_size
    out = np.zeros((pol, options.height, options.width, options.bins), np.float32)
    if len(events) == 0:
        return out
    ev = np.empty(len(events), EVENT_DTYPE)
    for name in EVENT_DTYPE.names or ():
        ev[name] = events[name]
    if (options.width, options.height) != (w, h):
        ev = Downsample(spatial_factor=(options.width / w, options.height / h))(ev)
    size = (options.width, options.height, pol)
    if start_time is not None and end_time is not None:
        window = (end_time - start_time) / options.bins
        to_frame = ToFrame(sensor_size=size, time_window=window, start_time=start_time, end_time=end_time)
    else:
        to_frame = ToFrame(sensor_size=size, n_time_bins=options.bins)
    frames = to_frame(ev)[: options.bins]  # (T, P, H, W) event counts
    frames = np.minimum(frames, 1).astype(np.float32)
    out[..., : frames.shape[0]] = frames.transpose(1, 2, 3, 0)
    return out
