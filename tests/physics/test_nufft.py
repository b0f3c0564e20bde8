"""The NUFFT wrapper against a direct DFT, in both precisions, with points far outside [−π, π)."""

import numpy as np
import pytest

from mrmotion.errors import MrMotionError
from mrmotion.physics import nufft
from mrmotion.physics.nufft import NufftPair, fft_planning


def direct(image: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """y_m = Σ_u f(u) exp(−i κ_m · (u − n//2)), one point at a time."""
    shape = np.array(image.shape)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, len(shape))
    return np.exp(-1j * kappa @ (index - shape // 2).T) @ image.reshape(-1)


@pytest.mark.parametrize("planning", ["estimate", "measure"])
@pytest.mark.parametrize(("dtype", "eps", "tolerance"), [(np.complex128, 1e-9, 1e-8), (np.complex64, 1e-4, 1e-4)])
def test_forward_and_adjoint_equal_the_direct_dft(dtype, eps, tolerance, planning):
    rng = np.random.default_rng()
    shape = (9, 8, 7)
    image = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    kappa = rng.uniform(-12.0, 12.0, (50, 3))  # beyond finufft's [−3π, 3π]: wrapped by the wrapper
    before = kappa.copy()
    pair = NufftPair(shape, kappa, eps=eps, dtype=dtype, fft_planning=planning)
    assert pair._options["fftw"] == nufft.FFTW_FLAGS[planning]
    expected = direct(image, kappa)
    got = pair.forward(image)[0]
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < tolerance
    samples = rng.standard_normal(50) + 1j * rng.standard_normal(50)
    # <F x, y> = <x, Fᴴ y>: the adjoint plan is made lazily, on the same (wrapped) points
    left = np.vdot(pair.forward(image)[0], samples)
    right = np.vdot(image, pair.adjoint(samples)[0])
    assert abs(left - right) / abs(left) < tolerance
    assert np.array_equal(kappa, before), "the caller's points were changed"


def test_bad_points():
    with pytest.raises(MrMotionError, match="NaN"):
        NufftPair((4, 4), np.array([[0.0, np.nan]]))
    with pytest.raises(MrMotionError, match=r"expected shape \(M, 2\)"):
        NufftPair((4, 4), np.zeros((3, 3)))
    with pytest.raises(MrMotionError, match=r"expected shape \(M, 2\)"):
        NufftPair((4, 4), np.zeros((0, 2)))
    with pytest.raises(MrMotionError, match="2-D or 3-D"):
        NufftPair((4,), np.zeros((3, 1)))
    with pytest.raises(MrMotionError, match="fft_planning must be one of"):
        NufftPair((4, 4), np.zeros((3, 2)), fft_planning="patient")


def test_fft_planning_measures_only_large_grids_transformed_often():
    """FFTW's measuring (seconds on a 1-mm grid, once per process) is chosen only where the faster FFTs repay it."""
    large, many = nufft.MEASURE_VOXELS + 1, nufft.MEASURE_IMAGES
    assert fft_planning(large, many) == "measure"
    assert fft_planning(large, many - 1) == "estimate"  # e.g. one coil, or coils moving with the head
    assert fft_planning(nufft.MEASURE_VOXELS, many) == "estimate"  # small grids: the tests, 2-D slices


def test_a_pair_planned_while_plans_are_made_ahead_gives_the_same_transform():
    """plan_ahead measures FFTW plans in a background thread; a pair planned (by measuring) at the same time waits
    for finufft's planning lock and transforms exactly as a pair planned by estimate."""
    rng = np.random.default_rng()
    shape = (24, 20, 18)
    image = rng.standard_normal((2, *shape)) + 1j * rng.standard_normal((2, *shape))
    kappa = rng.uniform(-np.pi, np.pi, (300, 3))
    thread = nufft.plan_ahead(shape, 2, 1e-10, np.complex128, kinds=(2, 1))
    measured = NufftPair(shape, kappa, 2, eps=1e-10, fft_planning="measure")
    samples = measured.forward(image)
    thread.join(timeout=60)
    assert not thread.is_alive() and thread.error is None
    estimated = NufftPair(shape, kappa, 2, eps=1e-10)
    assert np.abs(samples - estimated.forward(image)).max() <= 1e-9 * np.abs(samples).max()
    back = rng.standard_normal((2, 300)) + 1j * rng.standard_normal((2, 300))
    reference = estimated.adjoint(back)
    assert np.abs(measured.adjoint(back) - reference).max() <= 1e-9 * np.abs(reference).max()


def test_planning_ahead_keeps_its_error_instead_of_raising_in_its_thread():
    thread = nufft.plan_ahead((8, 8, 8), 2, 1e-6, np.complex64, kinds=(3,))  # no such kind for a pair
    thread.join(timeout=60)
    assert isinstance(thread.error, KeyError)


def test_set_points_moves_both_transforms():
    """One pair of plans moved from points to points (how the operator visits its groups) gives what fresh plans do."""
    rng = np.random.default_rng()
    shape = (8, 9, 6)
    image = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    first, second = rng.uniform(-np.pi, np.pi, (40, 3)), rng.uniform(-np.pi, np.pi, (25, 3))
    pair = NufftPair(shape, first, eps=1e-10)
    pair.forward(image), pair.adjoint(np.ones(40))  # both plans made on the first points
    pair.set_points(second)
    samples = rng.standard_normal(25) + 1j * rng.standard_normal(25)
    fresh = NufftPair(shape, second, eps=1e-10)
    assert pair.count == 25
    assert np.allclose(pair.forward(image), fresh.forward(image), atol=1e-9)
    assert np.allclose(pair.adjoint(samples), fresh.adjoint(samples), atol=1e-9)
    assert np.allclose(pair.forward(image)[0], direct(image, second), atol=1e-8)


def test_points_in_k_space_order_are_transformed_unsorted_and_exactly():
    """Cartesian lines (in order) get a type-2 plan without sorting, random points a sorted one; both equal the
    direct DFT, also after moving the pair from ordered to random points and back."""
    rng = np.random.default_rng()
    shape = (10, 9, 8)
    image = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    grid = np.stack(np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij"), -1).reshape(-1, 3)
    angle = rng.uniform(0.0, 0.3)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0, 0, 1.0]])
    lines = (grid * (2 * np.pi / np.array(shape))) @ rotation.T
    scattered = lines[rng.permutation(len(lines))]
    pair = NufftPair(shape, lines, eps=1e-10)
    for points, in_order in [(lines, True), (scattered, False), (lines, True)]:
        pair.set_points(points)
        assert pair._in_order is in_order
        expected = direct(image, points)
        assert np.linalg.norm(pair.forward(image)[0] - expected) / np.linalg.norm(expected) < 1e-8
