import numpy as np
import pytest

from neurofl.data.cifar import load_cifar100
from neurofl.errors import UserError

from .conftest import write_cifar100


def test_cifar100_planes_and_fine_labels(tmp_path):
    written = write_cifar100(tmp_path, np.random.default_rng(0))
    ds = load_cifar100(tmp_path, download=False)
    assert ds.x.shape == (5, 3, 32, 32) and ds.classes == 100 and ds.kind == "image"
    data = np.concatenate([written["train"][b"data"], written["test"][b"data"]])
    # row layout of the official files: 1024 red, 1024 green, 1024 blue values, each row-major
    i, c, h, w = 3, 2, 7, 30
    assert ds.x[i, c, h, w] == pytest.approx(data[i, c * 1024 + h * 32 + w] / 255)
    np.testing.assert_array_equal(np.round(ds.x.reshape(5, -1) * 255).astype(np.uint8), data)
    np.testing.assert_array_equal(ds.y, written["train"][b"fine_labels"] + written["test"][b"fine_labels"])


def test_missing_meta_is_named(tmp_path):
    write_cifar100(tmp_path, np.random.default_rng(1))
    (tmp_path / "cifar-100-python" / "meta").unlink()
    with pytest.raises(UserError, match="cifar-100-python.*meta"):
        load_cifar100(tmp_path, download=False)


def test_not_a_pickle_is_a_user_error(tmp_path):
    write_cifar100(tmp_path, np.random.default_rng(2))
    (tmp_path / "cifar-100-python" / "test").write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a cifar-100-python pickle"):
        load_cifar100(tmp_path, download=False)
