"""Augmented (4-D) k-space and gradient vectors: rigid or affine motion as a change of k-space coordinates.

Signal convention, stated once for the whole project: ``s(k) = Σ_r ρ(r) exp(−i k·r)``, k in radians per mm,
r in mm. An object moved by ``A = [R d; 0 1]`` (``ρ_A(r) = ρ(A⁻¹ r)``) then gives

    s_A(k) = exp(−i d·k) · s(Rᵀ k),

which is what the augmented vector ``Aᵀ [k; φ0] = [Rᵀ k; d·k + φ0]`` encodes: its first three components are where
the reference object's k-space is sampled, its fourth the phase added by the translation (Zahneisen & Ernst 2016,
eq. 12–15). For an affine ``A = [L d]`` the same holds with ``Lᵀ`` and an extra factor ``|det L|``.

Gradient waveforms transform like k (k is the time integral of γG), so the same functions apply to
``(..., 3)`` gradient vectors.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import FloatArray, as_transform, invert


def _kspace(k: ArrayLike, name: str = "k") -> FloatArray:
    array = np.asarray(k, dtype=np.float64)
    if array.ndim < 1 or array.shape[-1] != 3:
        raise MrMotionError(f"{name}: expected shape (..., 3) in rad/mm, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise MrMotionError(f"{name}: contains NaN or infinite values")
    return array


def augmented_kspace(motion: ArrayLike, k: ArrayLike, phase0: ArrayLike = 0.0) -> FloatArray:
    """``Aᵀ [k; φ0]`` for motions ``(..., 4, 4)`` and k-space points ``(..., 3)`` (rad/mm); returns ``(..., 4)``.

    Components 0–2: the k-space coordinate (rad/mm) at which the *unmoved* object is sampled; component 3: the
    phase (rad) ``d·k + φ0`` of the translation, so ``s_A(k) = exp(−i · out[..., 3]) · s(out[..., :3])``.
    Leading dimensions broadcast (e.g. one motion state per sample).
    """
    transform = as_transform(motion, "motion")
    vectors = _kspace(k)
    coordinates = np.einsum("...ji,...j->...i", transform[..., :3, :3], vectors)
    phase = np.einsum("...i,...i->...", transform[..., :3, 3], vectors) + np.asarray(phase0, dtype=np.float64)
    return np.concatenate([coordinates, phase[..., None]], axis=-1)


def prospective_kspace(motion: ArrayLike, k_nominal: ArrayLike) -> FloatArray:
    """``A⁻ᵀ [k0; 0]``: what to play so that an object moved by ``A`` is sampled at its own nominal ``k0``.

    With ``out = prospective_kspace(A, k0)`` the scanner samples at ``out[..., :3]`` (rigid: the gradients rotated,
    ``R k0``) and the receiver removes the phase ``out[..., 3]`` (rigid: ``−(Rᵀd)·k0``):
    ``s_A(out[..., :3]) · exp(−i · out[..., 3]) = |det L| · s(k0)`` (``|det L| = 1`` for rigid motion).
    """
    transform = as_transform(motion, "motion")
    return augmented_kspace(invert(transform, "motion"), k_nominal)
