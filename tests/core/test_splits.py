"""The attacker's auxiliary data is disjoint from every client and from the oracle; victims are
drawn from the clients' private samples only."""

import numpy as np
import pytest

from neurofl.data import load_dataset, split_dataset
from neurofl.errors import UserError
from neurofl.leakage.victims import draw_victims


def _rows(ds, part):
    """Indices of a split's samples in the full dataset (samples are unique images)."""
    full = {ds.x[i].tobytes(): i for i in range(len(ds.x))}
    return {full[x.tobytes()] for x in part.x}


@pytest.mark.parametrize("name,seed", [("digits", 0), ("digits", 7), ("faces", 0)])
def test_auxiliary_split_is_disjoint_from_clients_and_oracle(name, seed):
    ds = load_dataset(name)
    s = split_dataset(ds, seed)
    parts = {k: _rows(ds, getattr(s, k)) for k in ("oracle", "auxiliary", "clients", "test")}
    assert sum(len(v) for v in parts.values()) == len(ds.x)  # a partition: nothing lost, nothing shared
    for a in parts:
        for b in parts:
            if a < b:
                assert not parts[a] & parts[b], (a, b)
    assert len(parts["auxiliary"]) > 0


def test_splits_keep_the_clients_and_test_data_of_earlier_versions():
    """The auxiliary share is carved out of the judge's side only: clients and test are unchanged."""
    ds = load_dataset("digits")
    s = split_dataset(ds, 0)
    rng = np.random.default_rng(0)
    clients, test = [], []
    for c in np.unique(ds.y):  # the split as it was before the auxiliary split existed
        idx = rng.permutation(np.flatnonzero(ds.y == c))
        n_or, n_te = int(round(0.4 * len(idx))), int(round(0.2 * len(idx)))
        test.append(idx[n_or : n_or + n_te])
        clients.append(idx[n_or + n_te :])
    np.testing.assert_array_equal(s.clients.x, ds.x[np.sort(np.concatenate(clients))])
    np.testing.assert_array_equal(s.test.x, ds.x[np.sort(np.concatenate(test))])


def test_face_victims_are_faces_and_too_many_are_refused():
    ds = load_dataset("faces")
    s = split_dataset(ds, 0)
    v = draw_victims(s.clients, 8, 2, 4, 0)
    assert (v.y.numpy() == ds.private_class).all()
    with pytest.raises(UserError, match="private samples per client"):
        draw_victims(s.clients, 8, 16, 4, 0)
