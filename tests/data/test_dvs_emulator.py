import numpy as np
import pytest

from neurofl.data.dvs_digits import DvsDigitsOptions, load_dvs_digits, sensor_side
from neurofl.data.dvs_emulator import DvsOptions, change_events, saccade_path, saccade_video
from neurofl.data.events import EVENT_DTYPE, FrameOptions, make_events, to_frames

OPTS = DvsOptions()


def _edge_video(steps: int, width: int = 16, edge: int = 4) -> np.ndarray:
    """A bright half-plane (left) over dark (right) whose edge moves one pixel right per step.
    -> (1, steps + 1, 6, width)"""
    frames = np.full((steps + 1, 6, width), 0.1)
    for s in range(steps + 1):
        frames[s, :, : edge + s] = 0.9
    return frames[None]


def test_static_image_emits_nothing():
    img = np.random.default_rng(0).random((3, 12, 12))
    video = np.repeat(img[:, None], 20, axis=1)
    events = change_events(video, np.arange(20) * 1000, OPTS)
    assert [len(e) for e in events] == [0, 0, 0]
    assert all(e.dtype == EVENT_DTYPE for e in events)


def test_brighter_edge_moving_right_fires_on_events_on_its_leading_side():
    steps, edge = 6, 4
    (ev,) = change_events(_edge_video(steps, edge=edge), np.arange(steps + 1) * 1000, OPTS)
    assert len(ev) > 0
    assert (ev["p"] == 1).all()  # only brightening: ON events
    # at step s the pixel column edge + s - 1 (just ahead of the old edge) brightens
    k = (ev["t"] + 500) // 1000  # events of step s are stamped at the midpoint (s - 0.5) ms
    np.testing.assert_array_equal(ev["x"], edge + k - 1)
    # each pixel the edge crosses fires floor(log-intensity step / threshold) events
    per_pixel = int((np.log(0.9 + OPTS.log_offset) - np.log(0.1 + OPTS.log_offset)) // OPTS.contrast_threshold)
    assert per_pixel == 10 and len(ev) == steps * 6 * per_pixel


def test_halving_the_threshold_roughly_doubles_the_events():
    video, times = saccade_video(np.pad(np.random.default_rng(1).random((4, 10, 10)), ((0, 0), (2, 2), (2, 2))), OPTS)
    n1 = sum(len(e) for e in change_events(video, times, OPTS))
    half = DvsOptions(contrast_threshold=OPTS.contrast_threshold / 2)
    n2 = sum(len(e) for e in change_events(video, times, half))
    assert 1.8 < n2 / n1 < 2.2


def test_saccades_return_to_the_start():
    offsets, times = saccade_path(OPTS)
    np.testing.assert_array_equal(offsets[0], offsets[-1])
    assert times[-1] == 3 * OPTS.saccade_ms * 1000 and np.all(np.diff(times) > 0)
    assert np.abs(offsets).max() == OPTS.amplitude


def test_to_frames_bins_equal_windows():
    x, y, t, p = np.array([0, 3, 3, 1]), np.array([1, 2, 2, 0]), np.array([10, 260, 270, 990]), np.array([1, 0, 0, 1])
    ev = make_events(x, y, t, p)
    f = to_frames(ev, (4, 4, 2), FrameOptions(bins=4, height=4, width=4), start_time=0, end_time=1000)
    expected = np.zeros((2, 4, 4, 4), np.float32)
    expected[1, 1, 0, 0] = expected[0, 2, 3, 1] = expected[1, 0, 1, 3] = 1  # two events in one pixel: still 1
    np.testing.assert_array_equal(f, expected)


@pytest.fixture(scope="module")
def dvs_digits():
    return load_dvs_digits()


def test_dvs_digits_dataset(dvs_digits):
    side = sensor_side(DvsDigitsOptions())
    assert dvs_digits.x.shape == (1797, 2, side, side, 16) and dvs_digits.kind == "events"
    assert ((dvs_digits.x == 0) | (dvs_digits.x == 1)).all()
    # every time bin of every sample holds events (the image moves during the whole recording)
    assert (dvs_digits.x.sum(axis=(1, 2, 3)) > 0).all()
    # both polarities occur: edges move both ways over the saccade triangle
    assert (dvs_digits.x[:, 0].sum() > 0) and (dvs_digits.x[:, 1].sum() > 0)


def test_saccade_events_are_sorted_and_on_the_sensor():
    opts = DvsDigitsOptions()
    images = np.pad(np.random.default_rng(2).random((5, 16, 16)), ((0, 0), (2, 2), (2, 2)))
    video, times = saccade_video(images, opts.dvs)
    side = sensor_side(opts)
    for ev in change_events(video, times, opts.dvs):
        assert len(ev) > 0 and np.all(np.diff(ev["t"]) >= 0) and 0 < ev["t"].min() < ev["t"].max() < times[-1]
        assert ev["x"].max() < side and ev["y"].max() < side
