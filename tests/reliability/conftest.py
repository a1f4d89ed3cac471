"""Shared pieces of the hostile-input suite: byte mutations, the reader contract, case counts, and
writers of tiny datasets in the real on-disk layouts (copied from tests/data/conftest.py, which
are independent of neurofl's readers)."""

from __future__ import annotations

import collections
import gzip
import pickle
import struct
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from neurofl.errors import UserError

# reader name -> [cases tried, cases refused with a UserError]; printed after the run
CASES: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
# Hostile files here are a few KB; a reader that allocates more than this for one is not bounded.
MEMORY_BOUND = 64 << 20


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CASES:
        terminalreporter.write_sep("-", "hostile-input cases per reader (tried / refused with UserError)")
        for name, (tried, refused) in sorted(CASES.items()):
            terminalreporter.write_line(f"{name:28s} {tried:5d} / {refused:5d}")


def check_reader(name: str, read: Callable[[], Any], path: Path | str) -> Any:
    """Call ``read``: it may succeed or raise a one-line UserError naming ``path``; any other
    exception fails the test (it propagates), and so does allocating more than MEMORY_BOUND.
    Returns the result, or None when refused."""
    CASES[name][0] += 1
    tracemalloc.start()
    try:
        result = read()
    except UserError as e:
        CASES[name][1] += 1
        msg = str(e)
        assert "\n" not in msg, msg
        assert str(path) in msg, f"{msg!r} does not name {path}"
        result = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{name} allocated {peak} bytes for a hostile file"
    return result


def byte_mutation(size: int) -> st.SearchStrategy:
    """A mutation of a ``size``-byte file: truncate, flip, overwrite a run, delete a run, or insert."""
    pos = st.integers(0, max(size - 1, 0))
    return st.one_of(
        st.tuples(st.just("truncate"), st.integers(0, max(size - 1, 0))),
        st.tuples(st.just("flip"), pos, st.integers(1, 255)),
        st.tuples(st.just("overwrite"), pos, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), pos, st.integers(1, 64)),
        st.tuples(st.just("insert"), pos, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("fill"), pos, st.integers(1, 256), st.sampled_from([0x00, 0xFF, 0x7F])),
    )


def mutate_bytes(data: bytes, m: tuple) -> bytes:
    b = bytearray(data)
    op, i = m[0], m[1]
    if op == "truncate":
        return bytes(b[:i])
    if op == "flip":
        b[i] ^= m[2]
    elif op == "overwrite":
        b[i : i + len(m[2])] = m[2]
    elif op == "delete":
        del b[i : i + m[2]]
    elif op == "insert":
        b[i:i] = m[2]
    elif op == "fill":
        b[i : i + m[2]] = bytes([m[3]]) * len(b[i : i + m[2]])
    return bytes(b)


def fresh(tmp_path: Path) -> Path:
    """A new empty folder under ``tmp_path`` (hypothesis runs many examples in one tmp_path)."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


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
    return {
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
        b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)],
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }


def write_cifar100(root: Path, rng: np.random.Generator) -> None:
    """cifar-100-python with 3 training entries, 2 test entries and a meta file."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", 3), ("test", 2)):
        (folder / name).write_bytes(pickle.dumps(cifar_dict(rng, n)))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"c%d" % i for i in range(100)]}))


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


def nmnist_bytes(x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray) -> bytes:
    """N-MNIST's 5-byte events: x, y, then p in bit 7 and the 23-bit timestamp (microseconds)."""
    raw = np.zeros((len(x), 5), np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (p.astype(np.uint32) << 7) | ((t >> 16) & 127)
    raw[:, 3] = (t >> 8) & 255
    raw[:, 4] = t & 255
    return raw.tobytes()
