"""Small phantoms for the learned-correction tests: no template or atlas needed, milliseconds to build."""

from __future__ import annotations

import numpy as np
import pytest

from mrmotion.learn.data import WORKING_SIZE, SliceImage


def phantom(size: int = WORKING_SIZE, seed: int = 0) -> np.ndarray:
    """A head-like 2-D phantom: an ellipse with a darker rim, two bright blobs and a dark ventricle, in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    image = np.where((x / 0.38) ** 2 + (y / 0.45) ** 2 <= 1, 0.6, 0.0)
    image = np.where((x / 0.33) ** 2 + (y / 0.4) ** 2 <= 1, 0.8, image)
    for _ in range(2):
        cx, cy = rng.uniform(-0.15, 0.15, 2)
        image = np.where(((x - cx) / 0.08) ** 2 + ((y - cy) / 0.06) ** 2 <= 1, 1.0, image)
    return np.where((x / 0.05) ** 2 + ((y + 0.05) / 0.12) ** 2 <= 1, 0.2, image)


@pytest.fixture(scope="session")
def phantom_slices() -> list[SliceImage]:
    return [SliceImage(phantom(seed=s), 1.8, f"phantom:{s}") for s in range(3)]
