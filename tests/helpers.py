"""Shared test helpers: random rigid transforms (numpy generators and hypothesis strategies), bad NIfTI files."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from mrmotion.geometry.transforms import make_transform

#: a RAS affine whose third voxel axis has zero length: a NIfTI file with it has no geometry
FLAT_AFFINE = np.diag([2.0, 2.0, 0.0, 1.0])


def save_with_sform_only(path, data: np.ndarray, affine: np.ndarray = FLAT_AFFINE) -> None:
    """Save a NIfTI image whose sform is ``affine`` and whose qform is unset, as a tool may write a singular
    affine (nibabel cannot make a qform of one, and warns when asked to)."""
    import nibabel

    header = nibabel.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_sform(affine, code=1)
    nibabel.save(nibabel.Nifti1Image(np.asarray(data, np.float32), None, header), path)


def random_rigid(rng: np.random.Generator, size: int | tuple[int, ...] = (), scale_mm: float = 50.0) -> np.ndarray:
    """Uniformly random rotations and Gaussian translations (σ = scale_mm), shape (*size, 4, 4)."""
    shape = (size,) if isinstance(size, int) else tuple(size)
    count = int(np.prod(shape)) if shape else 1
    rotation = Rotation.random(count, random_state=rng).as_matrix().reshape(*shape, 3, 3)
    return make_transform(rotation, rng.normal(scale=scale_mm, size=(*shape, 3)))


#: Seeds for numpy generators; hypothesis shrinks seeds, and each seed gives fresh random poses.
seeds = st.integers(min_value=0, max_value=2**32 - 1)
