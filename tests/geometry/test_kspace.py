"""The augmented k-space identity s_A(k) = exp(−i d·k) s(Rᵀk), checked against direct DFTs of moved objects."""

import numpy as np
import pytest
from hypothesis import given, settings

from mrmotion.errors import MrMotionError, TransformError
from mrmotion.geometry.kspace import augmented_kspace, prospective_kspace
from mrmotion.geometry.transforms import apply, make_transform
from tests.helpers import random_rigid, seeds


def point_object_signal(amplitudes, positions, k):
    """Direct DFT of point scatterers: s(k) = Σ a_j exp(−i k·r_j)."""
    return np.exp(-1j * k @ positions.T) @ amplitudes


@settings(max_examples=40, deadline=None)
@given(seeds)
def test_moved_point_object_equals_augmented_formula(seed):
    rng = np.random.default_rng(seed)
    positions = rng.normal(size=(20, 3)) * 30
    amplitudes = rng.normal(size=20) + 1j * rng.normal(size=20)
    motion = random_rigid(rng, scale_mm=10)
    k = rng.normal(size=(50, 3))
    direct = point_object_signal(amplitudes, apply(motion, positions), k)
    augmented = augmented_kspace(motion, k)
    via_augmented = np.exp(-1j * augmented[:, 3]) * point_object_signal(amplitudes, positions, augmented[:, :3])
    np.testing.assert_allclose(via_augmented, direct, rtol=1e-10, atol=1e-10)


def gaussian_blobs(points, centres, widths, weights):
    squared = np.sum((points[:, None, :] - centres[None]) ** 2, axis=-1)
    return np.exp(-squared / (2 * widths**2)) @ weights


def test_small_grid_dft_of_moved_object_equals_augmented_kspace():
    """On a 36³ grid (2 mm voxels) an object of smooth Gaussian blobs is moved analytically (ρ_A = ρ∘A⁻¹) and
    sampled; its direct DFT equals exp(−i d·k) times the direct DFT of the unmoved sampled object at Rᵀk, for k
    inside the Nyquist ball (there the sampled objects are band-limited to rounding: blobs σ ≥ 3.5 mm, ≥ 6σ from
    the edge of the grid)."""
    rng = np.random.default_rng(7)
    n, voxel = 36, 2.0
    axis = (np.arange(n) - n // 2) * voxel
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    centres = np.clip(rng.normal(size=(4, 3)) * 3, -6, 6)
    widths, weights = rng.uniform(3.5, 4.5, size=4), rng.uniform(0.5, 1, 4)
    motion = make_transform(random_rigid(rng)[:3, :3], np.clip(rng.normal(size=3) * 2, -4, 4))
    moved = gaussian_blobs(apply(np.linalg.inv(motion), grid), centres, widths, weights)
    unmoved = gaussian_blobs(grid, centres, widths, weights)
    directions = rng.normal(size=(400, 3))
    k = directions / np.linalg.norm(directions, axis=1, keepdims=True) * rng.uniform(0, np.pi / voxel, (400, 1))
    direct = np.exp(-1j * k @ grid.T) @ moved
    augmented = augmented_kspace(motion, k)
    via = np.exp(-1j * augmented[:, 3]) * (np.exp(-1j * augmented[:, :3] @ grid.T) @ unmoved)
    assert np.max(np.abs(via - direct)) <= 1e-7 * np.max(np.abs(direct))
    # a wrong sign convention fails the same check by far
    wrong = np.exp(+1j * augmented[:, 3]) * (np.exp(-1j * augmented[:, :3] @ grid.T) @ unmoved)
    assert np.max(np.abs(wrong - direct)) > 1e-2 * np.max(np.abs(direct))
    # and the translation alone is a pure phase ramp
    shift = make_transform(np.eye(3), [3.0, -2.0, 1.0])
    np.testing.assert_allclose(augmented_kspace(shift, k)[:, 3], k @ [3.0, -2.0, 1.0])


@settings(max_examples=20, deadline=None)
@given(seeds)
def test_prospective_update_samples_the_object_at_its_nominal_k(seed):
    rng = np.random.default_rng(seed)
    positions, amplitudes = rng.normal(size=(10, 3)) * 30, rng.normal(size=10)
    motion = random_rigid(rng, scale_mm=10)
    k0 = rng.normal(size=(30, 3))
    play = prospective_kspace(motion, k0)
    measured = point_object_signal(amplitudes, apply(motion, positions), play[:, :3]) * np.exp(-1j * play[:, 3])
    np.testing.assert_allclose(measured, point_object_signal(amplitudes, positions, k0), atol=1e-9)


def test_augmented_kspace_bad_input():
    with pytest.raises(MrMotionError, match=r"k: expected shape \(\.\.\., 3\)"):
        augmented_kspace(np.eye(4), np.zeros((5, 2)))
    with pytest.raises(MrMotionError, match="NaN"):
        augmented_kspace(np.eye(4), [np.nan, 0, 0])
    with pytest.raises(TransformError, match="motion"):
        augmented_kspace(np.eye(3), [0, 0, 0])
