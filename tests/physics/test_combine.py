"""Coil images by inverse FFT against the textbook fftshift(ifftn(ifftshift(k-space))), odd and even sizes."""

import numpy as np
import pytest

from mrmotion.errors import MrMotionError
from mrmotion.physics.combine import coil_images, combine
from mrmotion.physics.sampling import cartesian, radial


@pytest.mark.parametrize(
    ("shape", "mode", "order"),
    [
        ((9, 8, 7), "3d", "random"),
        ((8, 7, 5), "2d", "interleaved"),
        ((9, 6, 1), "2d", "linear"),
        ((10, 9, 1), "3d", "centric"),
    ],
)
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_coil_images_equal_the_shifted_inverse_fft(shape, mode, order, dtype):
    rng = np.random.default_rng()
    sampling = cartesian(shape, (1.0, 1.2, 2.0), mode=mode, order=order)
    count = len(sampling.time_s)
    data = (rng.standard_normal((3, count)) + 1j * rng.standard_normal((3, count))).astype(dtype)
    grid = np.zeros((3, *shape), dtype=complex)
    index = sampling.grid_index
    grid[:, index[:, 0], index[:, 1], index[:, 2]] = data
    axes = (1, 2) if mode == "2d" or shape[2] == 1 else (1, 2, 3)
    expected = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(grid, axes=axes), axes=axes), axes=axes)
    expected = expected[..., 0] if shape[2] == 1 else expected
    got = coil_images(data, sampling)
    assert got.dtype == dtype and got.shape == expected.shape
    assert np.abs(got - expected).max() <= (1e-5 if dtype == np.complex64 else 1e-12) * np.abs(expected).max()


def test_coil_images_need_cartesian_sampling():
    sampling = radial((16, 16, 1), (1.0, 1.0, 1.0), spokes=8)
    with pytest.raises(MrMotionError, match="Cartesian"):
        coil_images(np.zeros((1, len(sampling.time_s)), dtype=complex), sampling)


def test_sense1_combination_against_its_formula():
    rng = np.random.default_rng()
    maps = rng.standard_normal((4, 6, 5)) + 1j * rng.standard_normal((4, 6, 5))
    maps[:, 0, 0] = 0  # where no coil sees: 0, not a division by zero
    images = rng.standard_normal((4, 6, 5)) + 1j * rng.standard_normal((4, 6, 5))
    got = combine(images, maps)
    power = np.sum(np.abs(maps) ** 2, axis=0)
    expected = np.sum(np.conj(maps) * images, axis=0) / np.where(power > 0, power, 1)
    assert got[0, 0] == 0
    assert np.allclose(got, expected)


@pytest.mark.parametrize(("shape", "mode"), [((30, 28, 6), "3d"), ((30, 10, 3), "2d")])
def test_calibration_images_are_the_windowed_centre(shape, mode):
    """Only the central 24 samples along the readout and each phase-encode axis (2-D: in-plane; shorter axes:
    whole) contribute, with a Hann window; the rest of k-space adds nothing."""
    from mrmotion.physics.combine import calibration_images

    rng = np.random.default_rng()
    sampling = cartesian(shape, (1.0, 1.0, 2.0), mode=mode, order="random")
    data = rng.standard_normal((2, len(sampling))) + 1j * rng.standard_normal((2, len(sampling)))
    offsets = sampling.grid_index - np.array(shape) // 2
    weight = np.ones(len(sampling))
    for axis in range(3 if mode == "3d" else 2):
        span = min(24, shape[axis])
        weight *= np.where(np.abs(offsets[:, axis]) < span / 2, np.cos(np.pi * offsets[:, axis] / span) ** 2, 0)
    np.testing.assert_allclose(calibration_images(data, sampling), coil_images(data * weight, sampling), atol=1e-12)
    outside = weight == 0
    assert outside.any()
    changed = data.copy()
    changed[:, outside] = rng.standard_normal((2, int(outside.sum())))
    np.testing.assert_allclose(calibration_images(changed, sampling), calibration_images(data, sampling), atol=1e-12)
    with pytest.raises(MrMotionError, match="width"):
        calibration_images(data, sampling, width=1)
    with pytest.raises(MrMotionError, match="Cartesian"):
        calibration_images(data[:, :10], radial((16, 16, 1), (1.0, 1.0, 1.0), spokes=8))
