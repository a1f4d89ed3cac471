"""Writers of tiny datasets in the real on-disk layouts (IDX, cifar-100-python, scikit-learn's LFW
cache, tonic's DVSGesture and N-MNIST). They follow the formats' specifications and share no code
with neurofl's readers, so tests can check the readers against them."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

IDX_UBYTE = 0x08


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """An IDX file of unsigned bytes: magic (0, 0, type, ndim), big-endian dims, data."""
    header = bytes([0, 0, IDX_UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def write_mnist_tree(folder: Path, rng: np.random.Generator, compress: bool) -> dict[str, np.ndarray]:
    """train (6) + t10k (4) images of 28x28 and labels; returns the arrays written."""
    out = {}
    for split, n in (("train", 6), ("t10k", 4)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / f"{split}-images-idx3-ubyte", images, compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels, compress)
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    return out


def cifar_dict(rng: np.random.Generator, n: int) -> dict:
    """One cifar-100-python batch of ``n`` random entries (bytes keys, as the official files have)."""
    return {
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
        b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)],
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }


def write_cifar100(root: Path, rng: np.random.Generator) -> dict[str, dict]:
    """cifar-100-python with 3 training entries, 2 test entries and a meta file; returns the batches."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for name, n in (("train", 3), ("test", 2)):
        out[name] = cifar_dict(rng, n)
        (folder / name).write_bytes(pickle.dumps(out[name]))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"c%d" % i for i in range(100)]}))
    return out


def write_lfw_tree(root: Path, people: dict[str, tuple[int, int]]) -> None:
    """scikit-learn's lfw_home cache: pairs files and lfw_funneled/<Name>/<Name>_NNNN.jpg
    (250x250 grey JPEGs of one constant level per person). people: name -> (images, level)."""
    from PIL import Image

    home = root / "lfw_home"
    (home / "lfw_funneled").mkdir(parents=True)
    for name in ("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt"):
        (home / name).write_text("1\n")
    for person, (count, level) in people.items():
        d = home / "lfw_funneled" / person
        d.mkdir()
        for i in range(count):
            Image.fromarray(np.full((250, 250, 3), level, np.uint8)).save(d / f"{person}_{i + 1:04d}.jpg", quality=95)


def gesture_events(rng: np.random.Generator, n: int) -> np.ndarray:
    """N x 4 DVSGesture events x, y, p, t (ms), as tonic's files hold them."""
    return np.stack(
        [rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n), np.sort(rng.integers(0, 6000, n))],
        axis=1,
    ).astype(np.float64)


def write_gesture_npy(path: Path, events: np.ndarray) -> None:
    """DVSGesture recording: N x 4 array of x, y, p, t (milliseconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, events)


def nmnist_bytes(x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray) -> bytes:
    """N-MNIST's 5-byte events: x, y, then p in bit 7 and the 23-bit timestamp (microseconds)."""
    raw = np.zeros((len(x), 5), np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (p.astype(np.uint32) << 7) | ((t >> 16) & 127)
    raw[:, 3] = (t >> 8) & 255
    raw[:, 4] = t & 255
    return raw.tobytes()


def write_nmnist_bin(path: Path, x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray) -> None:
    """An N-MNIST ``.bin`` recording."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(nmnist_bytes(x, y, p, t))
