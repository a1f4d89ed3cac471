import numpy as np

from neurofl.data import load_dataset, split_dataset


def test_embedded_lfw_faces():
    ds = load_dataset("faces")
    assert ds.x.shape == (200, 1, 25, 25) and ds.x.dtype == np.float32 and ds.kind == "faces"
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
    np.testing.assert_array_equal(np.bincount(ds.y), [100, 100])
    assert (ds.y[:100] == 1).all()  # scikit-image lists the 100 faces first
    # real photographs: no two crops are identical, and every face has contrast
    flat = ds.x.reshape(200, -1)
    assert len(np.unique(flat, axis=0)) == 200 and (flat[:100].std(1) > 0.05).all()
    s = split_dataset(ds, seed=0)
    assert len(s.oracle.y) + len(s.auxiliary.y) + len(s.clients.y) + len(s.test.y) == 200
    assert len(s.oracle.y) == 0  # re-identification needs no oracle: its share is the attacker's
    assert (s.clients.private().y == 1).all() and len(s.clients.private().y) == 40
