import numpy as np
import pytest

from neurofl.data.events import FrameOptions
from neurofl.data.tonic_layouts import DVS_GESTURE, NMNIST_LAYOUT, load_event_dataset, read_nmnist_bin
from neurofl.errors import UserError

from .conftest import write_gesture_npy, write_nmnist_bin


def _reference_frames(x, y, p, t, factor, size, bins):
    """Binary frames by hand: tonic's n_time_bins windows of (t_last - t_first) // bins,
    coordinates scaled by ``factor`` and floored. -> (2, size, size, bins)"""
    out = np.zeros((2, size, size, bins), np.float32)
    window = (t.max() - t.min()) // bins
    k = (t - t.min()) // window
    keep = k < bins
    out[p[keep], (y[keep] * factor).astype(int), (x[keep] * factor).astype(int), k[keep]] = 1
    return out


def _gesture(rng, n):
    t = np.sort(rng.integers(0, 2000, n))  # milliseconds
    return np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n), t], 1)


def test_dvs_gesture_tree_is_binned_like_tonic(tmp_path):
    rng = np.random.default_rng(0)
    recs = {
        "ibmGestureTrain/user01_fluorescent/0.npy": _gesture(rng, 300),
        "ibmGestureTrain/user01_fluorescent/3.npy": _gesture(rng, 200),
        "ibmGestureTest/user24_led/10.npy": _gesture(rng, 250),
    }
    for rel, ev in recs.items():
        write_gesture_npy(tmp_path / "DVSGesture" / rel, ev)
    opts = FrameOptions(bins=4, height=32, width=32, max_per_class=None)
    ds = load_event_dataset(DVS_GESTURE, tmp_path, download=False, frames=opts)
    assert ds.kind == "events" and ds.classes == 11 and ds.x.shape == (3, 2, 32, 32, 4)
    np.testing.assert_array_equal(ds.y, [0, 3, 10])
    for i, ev in enumerate(recs.values()):
        ref = _reference_frames(ev[:, 0], ev[:, 1], ev[:, 2], ev[:, 3] * 1000, 0.25, 32, 4)
        np.testing.assert_array_equal(ds.x[i], ref)


def test_nmnist_bin_round_trip_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    written = {}
    for rel in ("Train/3/00001.bin", "Train/7/00002.bin", "Test/3/00003.bin"):
        n = 120
        x, y, p = rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
        t = np.sort(rng.integers(0, 300_000, n))
        write_nmnist_bin(tmp_path / "NMNIST" / rel, x, y, p, t)
        written[rel] = (x, y, p, t)
    ev = read_nmnist_bin(tmp_path / "NMNIST" / "Train/7/00002.bin")
    x, y, p, t = written["Train/7/00002.bin"]
    for name, ref in zip("xypt", (x, y, p, t), strict=True):
        np.testing.assert_array_equal(ev[name], ref)
    opts = FrameOptions(bins=5, height=34, width=34, max_per_class=None)
    ds = load_event_dataset(NMNIST_LAYOUT, tmp_path, download=False, frames=opts)
    np.testing.assert_array_equal(ds.y, [3, 7, 3])
    x, y, p, t = written["Test/3/00003.bin"]
    np.testing.assert_array_equal(ds.x[2], _reference_frames(x, y, p, t, 1.0, 34, 5))
    capped = load_event_dataset(NMNIST_LAYOUT, tmp_path, False, FrameOptions(5, 34, 34, max_per_class=1))
    np.testing.assert_array_equal(capped.y, [3, 7])


def test_missing_layouts_are_named(tmp_path):
    with pytest.raises(UserError, match="DVSGesture/ibmGestureTrain"):
        load_event_dataset(DVS_GESTURE, tmp_path, download=False)
    with pytest.raises(UserError, match="NMNIST/Train"):
        load_event_dataset(NMNIST_LAYOUT, tmp_path, download=False)


def test_malformed_gesture_file_is_a_user_error(tmp_path):
    write_gesture_npy(tmp_path / "DVSGesture/ibmGestureTrain/user02_led/1.npy", np.zeros((5, 3)))
    with pytest.raises(UserError, match="N x 4"):
        load_event_dataset(DVS_GESTURE, tmp_path, download=False)
