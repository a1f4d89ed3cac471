"""Writers of tiny datasets in the real on-disk layouts (independent of neurofl's readers)."""

from neurofl_testing.layouts import (  # noqa: F401  (used by the tests of this folder)
    write_cifar100,
    write_gesture_npy,
    write_idx,
    write_lfw_tree,
    write_mnist_tree,
    write_nmnist_bin,
)
