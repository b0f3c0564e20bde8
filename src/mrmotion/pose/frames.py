"""The head frame, and rotations built from the axes a network predicts.

Head frame (issue 4): origin at the brain centre (centroid of the brain mask), axes toward the subject's **left**,
**posterior** and **superior**, so ``scanner_from_head`` maps head mm to scanner LPS mm. A brain in canonical
orientation in LPS (an atlas shipped with a RAS affine and canonical axes) has the identity rotation.

The pose network predicts, in the scanner frame, one pseudovector along the left–right axis (known only up to sign:
the head is nearly mirror-symmetric) and two vectors, anterior and superior. :func:`rotation_from_axes` turns them
into a proper rotation, choosing the left–right sign that makes ``det = +1``.
"""

from __future__ import annotations

import numpy as np

from mrmotion.errors import MrMotionError

FloatArray = np.ndarray


def rotation_from_axes(left: np.ndarray, anterior: np.ndarray, superior: np.ndarray) -> FloatArray:
    """Nearest proper rotation whose columns are (left, posterior, superior), from predicted axes.

    Parameters
    ----------
    left : (..., 3) left–right axis, any length, sign ignored (a pseudovector).
    anterior, superior : (..., 3) vectors toward anterior and superior, any length.

    Returns
    -------
    (..., 3, 3) rotation ``scanner_from_head[:3, :3]``: columns are the head's left, posterior and superior
    directions in the scanner frame. The left–right sign is chosen so that det = +1; the SVD (orthogonal
    Procrustes) spreads the disagreement between the three axes evenly.
    """
    left, anterior, superior = (np.asarray(v, dtype=np.float64) for v in (left, anterior, superior))
    columns = []
    for name, vector in (("left", left), ("anterior", anterior), ("superior", superior)):
        if vector.shape[-1:] != (3,):
            raise MrMotionError(f"{name} axis must have shape (..., 3), got {vector.shape}")
        norm = np.linalg.norm(vector, axis=-1, keepdims=True)
        if not np.all(np.isfinite(norm)) or np.any(norm == 0):
            raise MrMotionError(f"{name} axis is zero or not finite; cannot build a rotation")
        columns.append(vector / norm)
    left, anterior, superior = np.broadcast_arrays(*columns)
    matrix = np.stack([left, -anterior, superior], axis=-1)
    flip = np.linalg.det(matrix) < 0
    matrix[..., 0] = np.where(flip[..., None], -matrix[..., 0], matrix[..., 0])
    u, _, vt = np.linalg.svd(matrix)
    rotation = u @ vt
    # det(matrix) > 0 makes u @ vt proper except when the three axes are (nearly) coplanar: correct that case too.
    bad = np.linalg.det(rotation) < 0
    if np.any(bad):
        u = u.copy()
        u[..., -1] = np.where(bad[..., None], -u[..., -1], u[..., -1])
        rotation = u @ vt
    return rotation


def axes_from_rotation(rotation: np.ndarray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(left, anterior, superior) unit vectors of a head whose ``scanner_from_head`` rotation is given."""
    rotation = np.asarray(rotation, dtype=np.float64)
    return rotation[..., :, 0], -rotation[..., :, 1], rotation[..., :, 2]


def brain_centre(mask: np.ndarray, scanner_from_voxel: np.ndarray, weights: np.ndarray | None = None) -> FloatArray:
    """Centroid (scanner LPS mm) of a brain mask (boolean or fractional) given in voxel indices."""
    values = np.asarray(mask, dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    total = values.sum()
    if not np.isfinite(total) or total <= 0:
        raise MrMotionError("the brain mask is empty: no voxel to take the centre of")
    index = np.indices(values.shape, dtype=np.float64).reshape(3, -1)
    centre_voxel = index @ values.ravel() / total
    return scanner_from_voxel[:3, :3] @ centre_voxel + scanner_from_voxel[:3, 3]


def canonical_head_pose(mask: np.ndarray, scanner_from_voxel: np.ndarray) -> FloatArray:
    """``scanner_from_head`` of a brain in canonical orientation: identity rotation, brain centroid as origin."""
    pose = np.eye(4)
    pose[:3, 3] = brain_centre(mask, scanner_from_voxel)
    return pose


def brain_size_mm(mask: np.ndarray, scanner_from_voxel: np.ndarray) -> float:
    """Length (mm) of the brain's longest axis, as the ellipsoid with the mask's second moments: 2·sqrt(5·λmax)."""
    values = np.asarray(mask, dtype=np.float64)
    if values.sum() <= 0:
        raise MrMotionError("the brain mask is empty: no size to measure")
    points = scanner_from_voxel[:3, :3] @ np.indices(values.shape, dtype=np.float64).reshape(3, -1)
    return float(2.0 * np.sqrt(5.0 * np.linalg.eigvalsh(second_moments(values.ravel(), points))[-1]))


def second_moments(weights: np.ndarray, points: np.ndarray) -> FloatArray:
    """(3, 3) weighted covariance of points (3, N) about their weighted centroid (weights (N,), positive sum)."""
    centre = points @ weights / weights.sum()
    centred = points - centre[:, None]
    return (centred * weights) @ centred.T / weights.sum()
