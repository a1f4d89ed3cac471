import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurofl.errors import UserError
from neurofl.federated.partition import dirichlet, iid, label_skew


def _check_disjoint_covering(parts: list[np.ndarray], n: int) -> None:
    allidx = np.concatenate(parts)
    assert len(allidx) == n
    assert np.array_equal(np.sort(allidx), np.arange(n))
    assert all(len(p) >= 1 for p in parts)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 500), clients=st.integers(1, 50), seed=st.integers(0, 1000))
def test_iid_is_disjoint_covering_and_balanced(n: int, clients: int, seed: int) -> None:
    if clients > n:
        with pytest.raises(UserError):
            iid(n, clients, np.random.default_rng(seed))
        return
    parts = iid(n, clients, np.random.default_rng(seed))
    _check_disjoint_covering(parts, n)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(20, 400), clients=st.integers(1, 20), alpha=st.floats(0.01, 100), seed=st.integers(0, 1000)
)
def test_dirichlet_is_disjoint_and_covering(n: int, clients: int, alpha: float, seed: int) -> None:
    labels = np.random.default_rng(seed).integers(0, 10, n)
    parts = dirichlet(labels, clients, alpha, np.random.default_rng(seed + 1))
    _check_disjoint_covering(parts, n)


def test_dirichlet_skew_grows_as_alpha_shrinks() -> None:
    labels = np.arange(2000) % 10
    skew = {
        a: np.mean(
            [label_skew(labels, dirichlet(labels, 20, a, np.random.default_rng(s)), 10) for s in range(5)]
        )
        for a in (100.0, 1.0, 0.1, 0.01)
    }
    values = [skew[a] for a in (100.0, 1.0, 0.1, 0.01)]
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), skew
    assert values[0] < 0.1 and values[-1] > 0.7  # near-IID at large alpha, near one class each at tiny alpha
    iid_skew = label_skew(labels, iid(2000, 20, np.random.default_rng(0)), 10)
    assert iid_skew < skew[1.0]
