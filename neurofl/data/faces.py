"""The embedded face dataset: scikit-image's bundled ``lfw_subset`` (real LFW crops, 25x25).

scikit-image ships 200 grey 25x25 crops: 100 faces from LFW, then 100 non-face patches cut
from the backgrounds of the same photos. No identity is recorded, so the model learns face vs
non-face (label 1 / 0). Only the 100 faces are private: victims are faces, and ASR is
re-identification among the clients' faces (a reconstruction counts when its nearest neighbour
in that gallery is the victim itself; with the default split the gallery holds 40 faces, chance
1/40). The background patches are the training task's negative class only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurofl.data.base import Dataset

FACE, NON_FACE = 1, 0


def load_faces(data_dir: Path | None = None, download: bool = False) -> Dataset:
    """The 200 crops scaled to [0, 1]; faces first.

    Returns x: (200, 1, 25, 25) float32, y: (200,) int64 (1 face, 0 non-face).
    """
    from skimage.data import lfw_subset

    images = lfw_subset()  # float64 in [0, 1] (older releases: uint8)
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    x = np.clip(images / scale, 0.0, 1.0).astype(np.float32)[:, None]
    half = len(images) // 2
    y = np.where(np.arange(len(images)) < half, FACE, NON_FACE).astype(np.int64)
    return Dataset(
        "faces", x, y, 2, "faces", "scikit-image data.lfw_subset (LFW, Huang et al. 2012), bundled", private_class=FACE
    )
