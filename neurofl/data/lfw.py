"""Labeled Faces in the Wild from scikit-learn's ``fetch_lfw_people`` cache under the data dir.

Layout (what ``fetch_lfw_people(data_home=DIR)`` leaves behind)::

    DIR/lfw_home/pairsDevTrain.txt, pairsDevTest.txt, pairs.txt
    DIR/lfw_home/lfw_funneled/<Person_Name>/<Person_Name>_0001.jpg ...

Only identities with at least ``min_faces`` images are kept; the label is the identity, so ASR
is by identity (the oracle names the person in the reconstruction).
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from neurofl.config import bounded
from neurofl.data.base import Dataset
from neurofl.data.class_cap import cap_per_class
from neurofl.data.paths import missing_message, optional_data_dir, resolve_data_dir
from neurofl.errors import UserError

HOME = "lfw_home"
PAIRS = ("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt")
FUNNELED = "lfw_funneled"
# fetch_lfw_people's default face crop of the 250x250 funneled images (rows, columns): 125x94 pixels.
FACE_CROP = (slice(70, 195), slice(78, 172))


class _People(NamedTuple):
    images: np.ndarray  # (N, H, W) float32 in [0, 1]
    target: np.ndarray  # (N,) identity index
    target_names: np.ndarray  # (identities,) names, sorted


@dataclass(frozen=True)
class LfwOptions:
    """Which LFW faces to load and at what size.

    ``resize`` scales scikit-learn's 125x94 face crop (0.25 gives 31x23 grey images);
    ``min_faces`` keeps identities with at least that many images (20: 62 people, 3,023 images).
    """

    min_faces: int = field(default=20, metadata=bounded(1))
    resize: float = field(default=0.25, metadata=bounded(0.05, 1.0))
    max_per_class: int | None = None


def _expected(root: Path) -> list[Path]:
    return [root / HOME / p for p in PAIRS] + [root / HOME / FUNNELED]


def lfw_available(data_dir: Path | None) -> bool:
    root = optional_data_dir(data_dir)
    return root is not None and all(p.exists() for p in _expected(root))


# Bounds on the folder: LFW has 13,233 images of ~15 KB.
MAX_FILES = 100_000
MAX_IMAGE_BYTES = 16 << 20


def _check_tree(home: Path) -> None:
    """Every entry under ``home`` is a folder or a regular file of at most :data:`MAX_IMAGE_BYTES`
    (a FIFO would block the image reader forever), and there are at most :data:`MAX_FILES`."""
    count = 0
    for folder, dirs, files in os.walk(home):
        for name in dirs + files:
            path = Path(folder) / name
            try:
                st = os.stat(path)
            except OSError as e:
                raise UserError(f"dataset 'lfw': {path}: cannot read ({e.strerror})") from None
            if stat.S_ISDIR(st.st_mode):
                continue
            count += 1
            if not stat.S_ISREG(st.st_mode):
                raise UserError(f"dataset 'lfw': {path}: not a regular file")
            if st.st_size > MAX_IMAGE_BYTES or count > MAX_FILES:
                raise UserError(f"dataset 'lfw': {path}: more files or bytes than LFW holds")


def load_lfw(data_dir: Path | None, download: bool, options: LfwOptions = LfwOptions()) -> Dataset:
    """LFW people (grey, [0, 1]) with ``options.min_faces`` images or more per identity.

    Returns x: (N, 1, H, W) float32, y: (N,) int64 identity indices (alphabetical names).
    """
    root = resolve_data_dir(data_dir, "lfw")
    if not download and not lfw_available(root):
        raise UserError(
            missing_message("lfw", root / HOME, [*PAIRS, f"{FUNNELED}/<Person_Name>/<Person_Name>_NNNN.jpg"])
        )
    if lfw_available(root):
        _check_tree(root / HOME)
    from PIL import Image
    from sklearn.datasets import _lfw

    corrupt = (OSError, ValueError, EOFError, SyntaxError, IndexError, TypeError, struct.error,
               Image.DecompressionBombError)  # fmt: skip
    try:
        # scikit-learn's loader without its joblib cache: fetch_lfw_people memoizes results as
        # pickles under lfw_home/, and a pickle from the data dir could run code when read back.
        _, folder = _lfw._check_fetch_lfw(data_home=str(root), funneled=True, download_if_missing=download)
        images, target, names = _lfw._fetch_lfw_people(
            folder, slice_=FACE_CROP, color=False, resize=options.resize, min_faces_per_person=options.min_faces
        )
    except corrupt as e:  # what PIL and scikit-learn raise for corrupt, truncated or foreign images
        raise UserError(f"dataset 'lfw' under {root / HOME}: {type(e).__name__}: {str(e)[:200]}") from None
    people = _People(images, target, names)
    if len(people.target_names) < 2:
        few = f"fewer than 2 identities have >= {options.min_faces} images"
        raise UserError(f"dataset 'lfw' under {root / HOME}: {few}")
    x = np.clip(people.images, 0.0, 1.0).astype(np.float32)[:, None]
    y = people.target.astype(np.int64)
    keep = cap_per_class(y, options.max_per_class)
    source = f"LFW funneled, identities with >= {options.min_faces} images, from {root / HOME}"
    return Dataset("lfw", x[keep], y[keep], len(people.target_names), "image", source)
