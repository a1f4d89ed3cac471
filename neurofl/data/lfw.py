"""Labeled Faces in the Wild from scikit-learn's ``fetch_lfw_people`` cache under the data dir.

Layout (what ``fetch_lfw_people(data_home=DIR)`` leaves behind)::

    DIR/lfw_home/pairsDevTrain.txt, pairsDevTest.txt, pairs.txt
    DIR/lfw_home/lfw_funneled/<Person_Name>/<Person_Name>_0001.jpg ...

Only identities with at least ``min_faces`` images are kept; the label is the identity, so ASR
is by identity (the oracle names the person in the reconstruction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurofl.config import bounded
from neurofl.data.base import Dataset
from neurofl.data.limits import cap_per_class
from neurofl.data.paths import missing_message, optional_data_dir, resolve_data_dir
from neurofl.errors import UserError

HOME = "lfw_home"
PAIRS = ("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt")
FUNNELED = "lfw_funneled"


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


def load_lfw(data_dir: Path | None, download: bool, options: LfwOptions = LfwOptions()) -> Dataset:
    """LFW people (grey, [0, 1]) with ``options.min_faces`` images or more per identity.

    Returns x: (N, 1, H, W) float32, y: (N,) int64 identity indices (alphabetical names).
    """
    root = resolve_data_dir(data_dir, "lfw")
    if not download and not lfw_available(root):
        raise UserError(
            missing_message("lfw", root / HOME, [*PAIRS, f"{FUNNELED}/<Person_Name>/<Person_Name>_NNNN.jpg"])
        )
    from sklearn.datasets import fetch_lfw_people

    try:
        people = fetch_lfw_people(
            data_home=str(root),
            min_faces_per_person=options.min_faces,
            resize=options.resize,
            color=False,
            download_if_missing=download,
        )
    except (OSError, ValueError) as e:
        raise UserError(f"dataset 'lfw' under {root / HOME}: {e}") from None
    if len(people.target_names) < 2:
        few = f"fewer than 2 identities have >= {options.min_faces} images"
        raise UserError(f"dataset 'lfw' under {root / HOME}: {few}")
    x = np.clip(people.images, 0.0, 1.0).astype(np.float32)[:, None]
    y = people.target.astype(np.int64)
    keep = cap_per_class(y, options.max_per_class)
    source = f"LFW funneled, identities with >= {options.min_faces} images, from {root / HOME}"
    return Dataset("lfw", x[keep], y[keep], len(people.target_names), "image", source)
