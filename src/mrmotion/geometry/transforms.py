"""Homogeneous 4×4 transforms: validate, build, split, compose, invert, re-orthonormalise, apply.

Conventions (see DESIGN.md §2):

* a transform is a float64 array of shape ``(..., 4, 4)`` acting on column vectors ``[x, y, z, 1]``;
* it is named ``target_from_source`` (``scanner_from_camera``), so ``a_from_c = a_from_b @ b_from_c``;
* translations are in millimetres; the rotation part of a *rigid* transform is a proper rotation (det = +1);
* every function broadcasts over leading (batch) dimensions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mrmotion.errors import TransformError

#: Default tolerance for "is this rotation orthonormal": max |RᵀR − I| and |det R − 1|.
RIGID_TOLERANCE = 1e-6

FloatArray = NDArray[np.float64]

_LAST_ROW = np.array([0.0, 0.0, 0.0, 1.0])
_IDENTITY_3 = np.eye(3)


def as_transform(matrix: ArrayLike, name: str = "transform") -> FloatArray:
    """Return ``matrix`` as a float64 ``(..., 4, 4)`` homogeneous transform, or raise :class:`TransformError`.

    Checks the shape, that every entry is finite, and that the last row is ``[0, 0, 0, 1]``.
    ``name`` is used in error messages (``scanner_from_camera``, ``pose 3``...).
    """
    try:
        array = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TransformError(f"{name}: expected numbers, got {type(matrix).__name__} ({error})") from None
    if array.ndim < 2 or array.shape[-2:] != (4, 4):
        raise TransformError(f"{name}: expected shape (..., 4, 4), got {array.shape}")
    if not np.isfinite(array).all():
        raise TransformError(f"{name}: contains NaN or infinite entries")
    # Plain comparisons instead of np.allclose: this check sits on the single-update hot path (~15 µs saved).
    if (np.abs(array[..., 3, :] - _LAST_ROW) > 1e-9).any():
        raise TransformError(f"{name}: last row must be [0, 0, 0, 1] (a homogeneous transform)")
    return array


def rigidity_error(transform: ArrayLike) -> FloatArray:
    """How far the rotation part is from a proper rotation: ``max(|RᵀR − I|, |det R − 1|)`` per transform."""
    rotation = np.asarray(transform, dtype=np.float64)[..., :3, :3]
    gram = np.swapaxes(rotation, -1, -2) @ rotation
    orthonormality = np.abs(gram - _IDENTITY_3).max(axis=(-2, -1))
    return np.maximum(orthonormality, np.abs(np.linalg.det(rotation) - 1.0))


def is_rigid(transform: ArrayLike, tol: float = RIGID_TOLERANCE) -> NDArray[np.bool_]:
    """True where the transform is a proper rigid motion (rotation + translation) within ``tol``."""
    return rigidity_error(transform) <= tol


def as_rigid(matrix: ArrayLike, name: str = "transform", tol: float = RIGID_TOLERANCE) -> FloatArray:
    """Like :func:`as_transform`, and also require a proper rotation part (orthonormal, det = +1) within ``tol``.

    The error names the worst offender in a batch and says whether it is a reflection, a scaling/shear, or
    merely too far from orthonormal (then :func:`orthonormalize` may be what the caller wants).
    """
    array = as_transform(matrix, name)
    errors = rigidity_error(array)
    if (errors <= tol).all():
        return array
    flat_index = int(np.argmax(errors))
    index = tuple(int(i) for i in np.unravel_index(flat_index, errors.shape))
    where = "" if array.ndim == 2 else f" (entry {index})"
    rotation = array.reshape(-1, 4, 4)[flat_index, :3, :3]
    det = float(np.linalg.det(rotation))
    if det < 0:
        reason = f"its rotation part is a reflection (det = {det:.3g}); a rigid motion needs det = +1"
    else:
        singular = np.linalg.svd(rotation, compute_uv=False)
        reason = (
            f"its rotation part is not orthonormal (singular values {np.array2string(singular, precision=4)}, "
            f"deviation {errors.reshape(-1)[flat_index]:.2e} > tolerance {tol:.0e}): scaling or shear is not rigid"
        )
    raise TransformError(f"{name}{where} is not a rigid transform: {reason}")


def make_transform(rotation: ArrayLike, translation: ArrayLike) -> FloatArray:
    """Build ``(..., 4, 4)`` transforms from ``(..., 3, 3)`` linear parts and ``(..., 3)`` translations (mm)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    translation = np.asarray(translation, dtype=np.float64)
    if rotation.shape[-2:] != (3, 3):
        raise TransformError(f"rotation: expected shape (..., 3, 3), got {rotation.shape}")
    if translation.shape[-1:] != (3,):
        raise TransformError(f"translation: expected shape (..., 3), got {translation.shape}")
    batch = np.broadcast_shapes(rotation.shape[:-2], translation.shape[:-1])
    out = np.zeros((*batch, 4, 4))
    out[..., :3, :3] = rotation
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def rotation_part(transform: ArrayLike) -> FloatArray:
    """The ``(..., 3, 3)`` linear (rotation) part."""
    return np.asarray(transform, dtype=np.float64)[..., :3, :3]


def translation_part(transform: ArrayLike) -> FloatArray:
    """The ``(..., 3)`` translation part, in mm."""
    return np.asarray(transform, dtype=np.float64)[..., :3, 3]


def compose(*transforms: ArrayLike) -> FloatArray:
    """Matrix product in the order given: ``compose(a_from_b, b_from_c) == a_from_c``. Broadcasts over batches."""
    if not transforms:
        raise TransformError("compose: needs at least one transform")
    result = as_transform(transforms[0], "compose argument 0")
    for index, transform in enumerate(transforms[1:], start=1):
        result = result @ as_transform(transform, f"compose argument {index}")
    return result


def invert_rigid(transform: ArrayLike, name: str = "transform", check: bool = True) -> FloatArray:
    """Closed-form inverse of a rigid transform: ``[R d]⁻¹ = [Rᵀ −Rᵀd]``.

    With ``check=True`` (default) a non-rigid input raises :class:`TransformError`; use :func:`invert` for affines.
    """
    array = as_rigid(transform, name) if check else np.asarray(transform, dtype=np.float64)
    out = np.empty_like(array)
    rotation_t = np.swapaxes(array[..., :3, :3], -1, -2)
    out[..., :3, :3] = rotation_t
    out[..., :3, 3:] = -rotation_t @ array[..., :3, 3:]
    out[..., 3, :] = _LAST_ROW
    return out


def invert(transform: ArrayLike, name: str = "transform") -> FloatArray:
    """Inverse of a general (affine) transform; raises :class:`TransformError` if it is singular."""
    array = as_transform(transform, name)
    det = np.linalg.det(array[..., :3, :3])
    if np.any(np.abs(det) < 1e-12):
        raise TransformError(f"{name}: singular linear part (det = 0) cannot be inverted")
    return np.linalg.inv(array)


def orthonormalize(transform: ArrayLike, name: str = "transform") -> FloatArray:
    """Project the linear part onto the nearest proper rotation (Frobenius norm, via SVD); keep the translation.

    Use it after long chains of compositions, where rounding lets ``RᵀR`` drift from the identity.
    A reflection (det < 0) is refused rather than silently turned into a rotation.
    """
    array = as_transform(transform, name)
    u, _, vt = np.linalg.svd(array[..., :3, :3])
    det = np.linalg.det(u @ vt)
    if np.any(det < 0):
        raise TransformError(f"{name}: linear part is a reflection (det < 0); no nearby proper rotation")
    return make_transform(u @ vt, array[..., :3, 3])


def procrustes_rotation(cross_covariance: ArrayLike) -> FloatArray:
    """The proper rotation R (3, 3) maximising trace(Rᵀ H) for a cross-covariance H = Σ w · a · bᵀ, i.e. the one
    that best turns the vectors b onto the vectors a (Kabsch / orthogonal Procrustes, det = +1 enforced)."""
    u, _, vt = np.linalg.svd(np.asarray(cross_covariance, dtype=np.float64))
    return u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0]) @ vt


def apply(transform: ArrayLike, points: ArrayLike) -> FloatArray:
    """Apply ``(..., 4, 4)`` transforms to ``(..., 3)`` points (mm). Leading dimensions broadcast."""
    array = as_transform(transform)
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-1:] != (3,):
        raise TransformError(f"points: expected shape (..., 3), got {points.shape}")
    return np.einsum("...ij,...j->...i", array[..., :3, :3], points) + array[..., :3, 3]
