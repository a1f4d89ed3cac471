"""Tiny hostile files cannot make a reader allocate: each is refused with exit 2 and one line by
the real CLI running under a memory limit (its address space after the imports + 1 GiB).

The CIFAR pickles here name numpy's array constructors the ways numpy's own pickles never do: a
``numpy.ndarray((N, 3072))`` call (uninitialised memory of any size: a 199-byte file took 15 GiB,
a 167-byte one was trained on as 50,000 images), a stride-0 view over one byte, a BUILD or
``_frombuffer`` whose shape claims more bytes than the file holds.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neurofl.data import cifar

ROOT = Path(__file__).resolve().parents[2]

# The child: every import a command needs first, then RLIMIT_AS = its address space + 1 GiB, then
# the CLI. Its peak RSS goes to the file named by the second argument.
CHILD = r"""
import resource, sys
import torch  # noqa: F401
from neurofl.cli import main, quiet_imports
quiet_imports()
import neurofl.commands.train, neurofl.train  # noqa: F401,E401
vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), vm + (1 << 30)))
try:
    main(sys.argv[2:])
finally:
    open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


def _batch(rng: np.random.Generator, n: int) -> dict:
    return {
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"fine_labels": [i % 10 for i in range(n)],
    }


def _cifar_folder(root: Path) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    (folder / "train").write_bytes(pickle.dumps(_batch(rng, 40), protocol=2))
    (folder / "test").write_bytes(pickle.dumps(_batch(rng, 20), protocol=2))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"c%d" % i for i in range(100)]}))
    return folder


class _Call:
    """Pickles as ``fn(*args)`` (+ BUILD ``state``), as a hostile file would spell it."""

    def __init__(self, fn: object, args: tuple, state: object = None) -> None:
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self) -> tuple:
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def _ndarray(*args: object) -> _Call:
    return _Call(np.ndarray, args)


def _hostile() -> dict[str, bytes]:
    u1 = np.dtype("u1")
    rec = np.core.multiarray._reconstruct
    three = b"\x03" + b"\x00" * 7
    return {
        "ndarray 15 GiB": pickle.dumps({b"data": _ndarray((5_000_000, 3072), "u1"), b"fine_labels": [3]}, 2),
        "ndarray 50,000 uninitialised images": pickle.dumps(
            {b"data": _ndarray((50_000, 3072), "u1"), b"fine_labels": _ndarray((50_000,), "<i8", three, 0, (0,))}, 2
        ),
        "stride-0 view": pickle.dumps(
            {
                b"data": _ndarray((50_000, 3072), "u1", b"\x07", 0, (0, 0)),
                b"fine_labels": _ndarray((50_000,), "<i8", three, 0, (0,)),
            },
            2,  # fmt: skip
        ),
        "BUILD claims more than it holds": pickle.dumps(
            {
                b"data": _Call(rec, (np.ndarray, (0,), b"b"), (1, (50_000, 3072), u1, False, b"\x00" * 10)),
                b"fine_labels": [1, 2],
            },
            2,
        ),  # fmt: skip
        "_frombuffer claims more than it holds": pickle.dumps(
            {
                b"data": _Call(np.core.numeric._frombuffer, (b"\x00" * 10, u1, (50_000, 3072), "C")),
                b"fine_labels": [1, 2],
            },
            2,
        ),  # fmt: skip
        "_reconstruct of (10^6, 10^6)": pickle.dumps({b"data": _Call(rec, (np.ndarray, (10**6, 10**6), b"B"))}, 2),
        "object dtype": pickle.dumps({b"data": np.array([None, 1], dtype=object), b"fine_labels": [1, 2]}, 2),
    }


HOSTILE = _hostile()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_tiny_hostile_cifar_is_refused_under_a_memory_limit(tmp_path, name):
    folder = _cifar_folder(tmp_path / "data")
    (folder / "train").write_bytes(HOSTILE[name])
    assert len(HOSTILE[name]) < 1000
    rss = tmp_path / "maxrss"
    out = tmp_path / "out"
    args = ["train", "--dataset", "cifar100", "--data-dir", str(tmp_path / "data"), "--epochs", "1",
            "--out", str(out / "m.pt"), "--json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", CHILD, str(rss), *args], capture_output=True, text=True, env=env,
                       timeout=600)  # fmt: skip
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (name, r.returncode, r.stderr[-2000:])
    assert len(lines) == 1 and str(folder / "train") in lines[0], lines
    assert not out.exists() or not any(out.iterdir())
    print(f"{name}: {len(HOSTILE[name])} bytes, peak RSS {int(rss.read_text()) // 1024} MiB: {lines[0]}")


def _unpickled(obj: object, protocol: int) -> object:
    return cifar._PlainOnly(io.BytesIO(pickle.dumps(obj, protocol=protocol)), encoding="bytes").load()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickles_decode_without_numpy_constructors(protocol):
    """Real arrays of every layout numpy pickles (C and Fortran order, byte orders, empty) come back
    equal, built from the file's own bytes."""
    rng = np.random.default_rng(1)
    arrays = [
        rng.integers(0, 256, (4, 3072), dtype=np.uint8),
        np.asfortranarray(rng.integers(-9, 9, (3, 5)).astype(">i4")),
        rng.standard_normal(7),
        np.zeros((0, 3072), np.uint8),
    ]
    for a in arrays:
        got = _unpickled({b"data": a, b"empty": b""}, protocol)
        spec = got[b"data"]
        assert isinstance(spec, cifar._ArraySpec)  # a record, not a numpy object
        back = spec.array()
        assert back.shape == a.shape and np.array_equal(back, a)
        assert got[b"empty"] == b""


def test_the_stand_ins_cannot_be_altered_or_misused():
    """BUILD on a stand-in (to rewrite it), calling ndarray, and any other global are refused."""
    refused = [
        b"\x80\x02cnumpy\ndtype\n}X\x08\x00\x00\x00__call__K\x01sb.",  # BUILD on the dtype stand-in
        pickle.dumps(_ndarray((2,), "u1"), 2),
        pickle.dumps(_Call(np.dtype, ("O",)), 2),
        pickle.dumps(_Call(np.dtype, ("V8",)), 2),
        pickle.dumps(_Call(os.getcwd, ()), 2),
        pickle.dumps(_Call(np.core.numeric._frombuffer, (b"\x00" * 4, np.dtype("u1"), (2, 3), "C")), 5),
    ]
    for data in refused:
        with pytest.raises(pickle.UnpicklingError):
            cifar._PlainOnly(io.BytesIO(data), encoding="bytes").load()


def test_a_valid_folder_still_loads(tmp_path):
    folder = _cifar_folder(tmp_path)
    ds = cifar.load_cifar100(tmp_path, False)
    train = pickle.loads((folder / "train").read_bytes())
    assert ds.x.shape == (60, 3, 32, 32) and ds.x.dtype == np.float32
    assert np.array_equal(ds.x[:40], train[b"data"].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
    assert list(ds.y[:40]) == train[b"fine_labels"]
