from pathlib import Path

import numpy as np
import pytest

from neurofl.data.idx import DEBIAN_FASHION_MNIST, FASHION_MNIST, MNIST, load_idx_dataset, read_idx
from neurofl.errors import UserError

from .conftest import write_mnist_tree


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_the_idx_bytes_written(tmp_path, compress):
    written = write_mnist_tree(tmp_path / "mnist", np.random.default_rng(0), compress)
    ds = load_idx_dataset(MNIST, tmp_path, download=False)
    images = np.concatenate([written["train_images"], written["t10k_images"]])
    labels = np.concatenate([written["train_labels"], written["t10k_labels"]])
    assert ds.x.shape == (10, 1, 28, 28) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(np.round(ds.x[:, 0] * 255).astype(np.uint8), images)
    np.testing.assert_array_equal(ds.y, labels)
    assert ds.kind == "image" and ds.classes == 10


def test_torchvision_raw_folder_is_found(tmp_path):
    write_mnist_tree(tmp_path / "MNIST" / "raw", np.random.default_rng(1), compress=True)
    assert len(load_idx_dataset(MNIST, tmp_path, download=False).y) == 10


def test_max_per_class_keeps_the_first_of_each_class(tmp_path):
    written = write_mnist_tree(tmp_path / "mnist", np.random.default_rng(2), compress=False)
    labels = np.concatenate([written["train_labels"], written["t10k_labels"]])
    ds = load_idx_dataset(MNIST, tmp_path, download=False, max_per_class=1)
    assert sorted(ds.y.tolist()) == sorted(set(labels.tolist()))


def test_truncated_file_is_a_user_error(tmp_path):
    write_mnist_tree(tmp_path / "mnist", np.random.default_rng(3), compress=False)
    f = tmp_path / "mnist" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(UserError, match="train-images-idx3-ubyte"):
        load_idx_dataset(MNIST, tmp_path, download=False)


def test_bad_magic_is_a_user_error(tmp_path):
    f = tmp_path / "x-idx1-ubyte"
    f.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(UserError, match="not an IDX file"):
        read_idx(f)


def test_missing_files_are_named(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    with pytest.raises(UserError, match=r"mnist.*train-images-idx3-ubyte\[\.gz\]"):
        load_idx_dataset(MNIST, tmp_path, download=False)
    monkeypatch.delenv("NEUROFL_DATA", raising=False)
    with pytest.raises(UserError, match="--data-dir"):
        load_idx_dataset(MNIST, None, download=False)


def _debian_reader() -> Path | None:
    p = Path("/usr/share/doc/dataset-fashion-mnist/utils/mnist_reader.py")
    return p if p.is_file() else None


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_the_debian_package(tmp_path):
    ds = load_idx_dataset(FASHION_MNIST, tmp_path, download=False, max_per_class=None)
    assert ds.x.shape == (70_000, 1, 28, 28)
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class
    np.testing.assert_array_equal(np.bincount(ds.y), np.full(10, 7000))
    assert 0.0 <= ds.x.min() and ds.x.max() == 1.0
    reader = _debian_reader()
    if reader is not None:  # the dataset's own reference reader, shipped by the package
        import importlib.util

        spec = importlib.util.spec_from_file_location("mnist_reader", reader)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        images, labels = mod.load_mnist(str(DEBIAN_FASHION_MNIST), kind="t10k")
        np.testing.assert_array_equal(ds.y[60_000:], labels)
        np.testing.assert_array_equal(np.round(ds.x[60_000:].reshape(10_000, -1) * 255).astype(np.uint8), images)
