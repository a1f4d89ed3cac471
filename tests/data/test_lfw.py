import numpy as np
import pytest

from neurofl.data.lfw import LfwOptions, load_lfw
from neurofl.errors import UserError

from .conftest import write_lfw_tree

PEOPLE = {"Ada_Lovelace": (3, 40), "Alan_Turing": (4, 200), "Grace_Hopper": (1, 120)}


def test_identities_with_enough_images(tmp_path):
    write_lfw_tree(tmp_path, PEOPLE)
    ds = load_lfw(tmp_path, download=False, options=LfwOptions(min_faces=2, resize=0.25))
    assert ds.classes == 2  # Grace_Hopper has a single image
    assert ds.x.shape == (7, 1, 31, 23) and ds.kind == "image"
    np.testing.assert_array_equal(np.bincount(ds.y), [3, 4])
    # each person's photos are one grey level: the identity label must follow the pixels
    for label, level in ((0, 40), (1, 200)):
        assert ds.x[ds.y == label].mean() == pytest.approx(level / 255, abs=0.02)


def test_too_few_identities_is_a_user_error(tmp_path):
    write_lfw_tree(tmp_path, PEOPLE)
    with pytest.raises(UserError, match="lfw"):
        load_lfw(tmp_path, download=False, options=LfwOptions(min_faces=4))


def test_missing_cache_names_the_files(tmp_path):
    with pytest.raises(UserError, match="lfw_home.*pairsDevTrain.txt.*lfw_funneled"):
        load_lfw(tmp_path, download=False)
    assert not (tmp_path / "lfw_home").exists()  # nothing written on failure
