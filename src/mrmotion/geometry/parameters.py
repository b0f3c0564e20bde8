"""Rigid transforms to and from parameters, and distances between poses.

Parameterisations (all through :class:`scipy.spatial.transform.Rotation`, the project's reference):

* rotation vector in **radians** (axis × angle) + translation in mm;
* unit quaternion **scalar-last** ``(qx, qy, qz, qw)``, as scipy and ISMRMRD store it (returned with ``qw ≥ 0``);
* Euler angles in **degrees**, scipy's sequence strings: lowercase ``"xyz"`` = extrinsic rotations about the
  fixed x, then y, then z axes (the default); uppercase = intrinsic.

Distances: geodesic rotation angle, translation norm, and the displacement of points on a sphere of radius r
(framewise displacement of a head-sized sphere), all in the frame the transforms are expressed in.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.transform import Rotation

from mrmotion.errors import TransformError
from mrmotion.geometry.transforms import FloatArray, as_rigid, invert_rigid, make_transform


def _vectors(values: ArrayLike, width: int, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim < 1 or array.shape[-1] != width:
        raise TransformError(f"{name}: expected shape (..., {width}), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise TransformError(f"{name}: contains NaN or infinite values")
    return array


def _rotations(matrices: FloatArray) -> Rotation:
    return Rotation.from_matrix(matrices.reshape(-1, 3, 3))


def _from_rotation(rotation: Rotation, batch: tuple[int, ...], translation: FloatArray) -> FloatArray:
    return make_transform(rotation.as_matrix().reshape(*batch, 3, 3), translation)


def transform_from_rotvec(rotvec_rad: ArrayLike, translation_mm: ArrayLike = (0.0, 0.0, 0.0)) -> FloatArray:
    """Rigid transforms from rotation vectors ``(..., 3)`` (radians) and translations ``(..., 3)`` (mm)."""
    rotvec = _vectors(rotvec_rad, 3, "rotation vector")
    translation = _vectors(translation_mm, 3, "translation")
    batch = np.broadcast_shapes(rotvec.shape[:-1], translation.shape[:-1])
    rotvec = np.broadcast_to(rotvec, (*batch, 3)).copy()
    return _from_rotation(Rotation.from_rotvec(rotvec.reshape(-1, 3)), batch, translation)


def rotvec_from_transform(transform: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``(rotation vector in radians, translation in mm)``, each ``(..., 3)``, of rigid transforms."""
    array = as_rigid(transform)
    rotvec = _rotations(array[..., :3, :3]).as_rotvec().reshape(*array.shape[:-2], 3)
    return rotvec, array[..., :3, 3].copy()


def transform_from_quaternion(quat_xyzw: ArrayLike, translation_mm: ArrayLike = (0.0, 0.0, 0.0)) -> FloatArray:
    """Rigid transforms from scalar-last quaternions ``(..., 4)`` and translations ``(..., 3)`` in mm.

    Quaternions are normalised; a zero-length quaternion raises :class:`TransformError`.
    """
    quat = _vectors(quat_xyzw, 4, "quaternion (qx, qy, qz, qw)")
    norms = np.linalg.norm(quat, axis=-1)
    if np.any(norms < 1e-9):
        raise TransformError("quaternion (qx, qy, qz, qw): zero-length quaternion is not a rotation")
    translation = _vectors(translation_mm, 3, "translation")
    batch = np.broadcast_shapes(quat.shape[:-1], translation.shape[:-1])
    quat = np.broadcast_to(quat, (*batch, 4)).copy()
    return _from_rotation(Rotation.from_quat(quat.reshape(-1, 4)), batch, translation)


def quaternion_from_transform(transform: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``(scalar-last unit quaternion (..., 4) with qw ≥ 0, translation (..., 3) in mm)`` of rigid transforms."""
    array = as_rigid(transform)
    quat = _rotations(array[..., :3, :3]).as_quat(canonical=True).reshape(*array.shape[:-2], 4)
    return quat, array[..., :3, 3].copy()


def transform_from_euler(
    angles_deg: ArrayLike, translation_mm: ArrayLike = (0.0, 0.0, 0.0), seq: str = "xyz"
) -> FloatArray:
    """Rigid transforms from Euler angles ``(..., 3)`` in degrees (scipy ``seq``; default extrinsic x, y, z)."""
    angles = _vectors(angles_deg, 3, "Euler angles")
    translation = _vectors(translation_mm, 3, "translation")
    batch = np.broadcast_shapes(angles.shape[:-1], translation.shape[:-1])
    angles = np.broadcast_to(angles, (*batch, 3)).copy()
    try:
        rotation = Rotation.from_euler(seq, angles.reshape(-1, 3), degrees=True)
    except ValueError as error:
        raise TransformError(f"Euler sequence {seq!r}: {error}") from None
    return _from_rotation(rotation, batch, translation)


def euler_from_transform(transform: ArrayLike, seq: str = "xyz") -> tuple[FloatArray, FloatArray]:
    """``(Euler angles (..., 3) in degrees for scipy ``seq``, translation (..., 3) in mm)`` of rigid transforms."""
    array = as_rigid(transform)
    try:
        angles = _rotations(array[..., :3, :3]).as_euler(seq, degrees=True)
    except ValueError as error:
        raise TransformError(f"Euler sequence {seq!r}: {error}") from None
    return angles.reshape(*array.shape[:-2], 3), array[..., :3, 3].copy()


def rotation_angle(transform: ArrayLike) -> FloatArray:
    """Geodesic rotation angle (radians, in [0, π]) of rigid transforms ``(..., 4, 4)``."""
    array = as_rigid(transform)
    return _rotations(array[..., :3, :3]).magnitude().reshape(array.shape[:-2])


def rotation_distance(first: ArrayLike, second: ArrayLike) -> FloatArray:
    """Geodesic angle (radians) between the rotation parts of two rigid transforms: angle of ``R₁ᵀ R₂``."""
    return rotation_angle(invert_rigid(first) @ as_rigid(second))


def translation_distance(first: ArrayLike, second: ArrayLike) -> FloatArray:
    """Euclidean distance (mm) between the translation parts of two transforms."""
    return np.linalg.norm(as_rigid(first)[..., :3, 3] - as_rigid(second)[..., :3, 3], axis=-1)


def sphere_rms_displacement(transform: ArrayLike, radius_mm: float = 50.0) -> FloatArray:
    """Root-mean-square displacement (mm) of points on a sphere of radius r about the origin under ``transform``.

    Exact closed form: for x uniform on the sphere, E[x] = 0 and E[x xᵀ] = r²/3 · I, so
    ``E|(R − I)x + d|² = |d|² + r²/3 · ‖R − I‖²_F``. The sphere is centred at the frame's origin, so express
    the motion about the head centre (e.g. the isocentre of a centred head) for a meaningful number.
    """
    if not np.isfinite(radius_mm) or radius_mm < 0:
        raise TransformError(f"radius_mm must be a finite number ≥ 0, got {radius_mm}")
    array = as_rigid(transform)
    deviation = array[..., :3, :3] - np.eye(3)
    squared = np.sum(array[..., :3, 3] ** 2, axis=-1) + radius_mm**2 / 3.0 * np.sum(deviation**2, axis=(-2, -1))
    return np.sqrt(squared)


def framewise_displacement(poses: ArrayLike, radius_mm: float = 50.0) -> FloatArray:
    """Displacement (mm) between consecutive poses ``(T, 4, 4)``: RMS over a sphere of radius r.

    Entry t is :func:`sphere_rms_displacement` of ``poses[t] @ poses[t-1]⁻¹``; entry 0 is 0.
    """
    array = as_rigid(poses, "poses")
    if array.ndim != 3:
        raise TransformError(f"poses: expected shape (T, 4, 4), got {array.shape}")
    out = np.zeros(array.shape[0])
    if array.shape[0] > 1:
        relative = array[1:] @ invert_rigid(array[:-1], check=False)
        out[1:] = sphere_rms_displacement(relative, radius_mm)
    return out
