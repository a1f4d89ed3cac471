"""Shared pieces of the hostile-input suite: byte mutations, the reader contract, case counts (the
writers of the real on-disk layouts live in neurofl_testing.layouts)."""

from __future__ import annotations

import collections
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from neurofl.errors import UserError
from neurofl_testing.layouts import (  # noqa: F401  (used by the tests of this folder)
    cifar_dict,
    gesture_events,
    nmnist_bytes,
    write_cifar100,
    write_idx,
    write_lfw_tree,
    write_mnist_tree,
)

# The same hostile cases on every run (seeded, no example database): a red CI run is reproducible, and
# what a random search once found is kept as an explicit regression case beside the reader's tests.
settings.register_profile("neurofl", derandomize=True, database=None)
settings.load_profile("neurofl")

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
