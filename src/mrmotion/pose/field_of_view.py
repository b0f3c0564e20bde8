"""Voxels outside a volume's field of view: the exact zeros that resampling writes where the source volume had none.

Software that reorients a volume (turns it, or pads it onto a larger grid) writes zeros where the new grid reaches
beyond the scanned field of view. The pose networks were trained mostly on fields of view that fill their cube, and
such a zero edge can make the localiser take the tissue along it for the brain (``benchmarks/pose.py``, the check
with the voxels turned). :func:`~mrmotion.pose.estimate.estimate_pose` therefore gives those voxels the value of the
nearest scanned voxel (:func:`edges_extended`, edge padding), which the networks read like a field of view that fills
the cube.

Zeros are taken for "outside the field of view" only when the rest of the volume is convex
(:func:`outside_field_of_view`): a turned or padded box is, while a skull-stripped or masked volume, whose background
is also exactly zero, is not (its brain's convex hull is 5–8% background on the fetal atlases of ../shared/data), and
smearing its brain's edge outward would make a head-sized blob.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, spatial

#: the scanned region counts as convex when at most this share of the voxels inside its convex hull is outside it
#: (:func:`convex_hull_gap`; python benchmarks/pose_field_of_view.py measures it on turned volumes, clean rendered
#: heads on a zero background and the skull-stripped fetal atlases)
CONVEX_TOLERANCE = 0.005
#: the convexity test runs on at most this many voxels along each axis (every k-th voxel; a convex region stays
#: convex on a sub-lattice)
TEST_VOXELS = 64


def outside_field_of_view(data: np.ndarray) -> np.ndarray | None:
    """Boolean mask of the voxels outside the field of view of a 3-D volume: its exact zeros connected to the array's
    faces, when the rest of the volume (the scanned region) is convex (:data:`CONVEX_TOLERANCE`). None when there
    are no such zeros or the scanned region is not convex (e.g. a skull-stripped or masked volume)."""
    zero = np.asarray(data) == 0
    if not any(face.any() for face in _faces(zero)):
        return None
    labels, _ = ndimage.label(zero)
    touching = np.unique(np.concatenate([face.ravel() for face in _faces(labels)]))
    outside = np.isin(labels, touching[touching > 0])
    if outside.all() or convex_hull_gap(~outside) > CONVEX_TOLERANCE:
        return None
    return outside


def _faces(volume: np.ndarray) -> list[np.ndarray]:
    """The six faces (2-D slices at the ends of each axis) of a 3-D array."""
    return [volume[0], volume[-1], volume[:, 0], volume[:, -1], volume[:, :, 0], volume[:, :, -1]]


def convex_hull_gap(region: np.ndarray) -> float:
    """Share of the voxels inside a boolean 3-D region's convex hull that are not in the region: 0 for a convex
    region; 1 when it has no volume (fewer than 4 voxels, or all in a plane). Measured on a sub-lattice of at most
    :data:`TEST_VOXELS` voxels along each axis."""
    step = max(1, int(np.ceil(max(region.shape) / TEST_VOXELS)))
    coarse = region[::step, ::step, ::step]
    surface = np.argwhere(coarse & ~ndimage.binary_erosion(coarse))
    try:
        hull = spatial.ConvexHull(surface)
    except (spatial.QhullError, ValueError):  # fewer than 4 points, or all in a plane: no volume to be convex
        return 1.0
    lower, upper = surface.min(axis=0), surface.max(axis=0) + 1
    box = np.stack(np.meshgrid(*(np.arange(a, b) for a, b in zip(lower, upper, strict=True)), indexing="ij"), -1)
    inside = spatial.Delaunay(surface[hull.vertices]).find_simplex(box.reshape(-1, 3)) >= 0
    missing = ~coarse[lower[0] : upper[0], lower[1] : upper[1], lower[2] : upper[2]].ravel()[inside]
    return float(missing.mean()) if inside.any() else 1.0


def edges_extended(data: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """A copy of ``data`` whose voxels in ``outside`` take the value of the nearest voxel not in it (edge padding;
    nearest by Euclidean distance in voxels). ``data`` is left unchanged."""
    nearest = ndimage.distance_transform_edt(outside, return_distances=False, return_indices=True)
    return np.asarray(data)[tuple(nearest)]
