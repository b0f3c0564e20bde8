"""Shared test helpers: random rigid transforms (numpy generators and hypothesis strategies)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from mrmotion.geometry.transforms import make_transform


def random_rigid(rng: np.random.Generator, size: int | tuple[int, ...] = (), scale_mm: float = 50.0) -> np.ndarray:
    """Uniformly random rotations and Gaussian translations (σ = scale_mm), shape (*size, 4, 4)."""
    shape = (size,) if isinstance(size, int) else tuple(size)
    count = int(np.prod(shape)) if shape else 1
    rotation = Rotation.random(count, random_state=rng).as_matrix().reshape(*shape, 3, 3)
    return make_transform(rotation, rng.normal(scale=scale_mm, size=(*shape, 3)))


#: Seeds for numpy generators; hypothesis shrinks seeds, and each seed gives fresh random poses.
seeds = st.integers(min_value=0, max_value=2**32 - 1)
