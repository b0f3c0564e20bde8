"""Reconstruction with known motion: the augmented-SENSE experiment of Zahneisen & Ernst, and the real 7-coil slice."""

from pathlib import Path

import numpy as np
import pytest

from mrmotion.geometry.parameters import transform_from_euler
from mrmotion.geometry.transforms import make_transform
from mrmotion.physics.coils import GridCoilMaps, estimate_coil_maps, loop_coils
from mrmotion.physics.encoding import ImageGrid
from mrmotion.physics.sampling import Sampling, cartesian
from mrmotion.physics.simulate import simulate
from mrmotion.physics.trajectory import MotionTrajectory
from mrmotion.recon.reconstruct import sense_reconstruction

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def nrmse(image, reference, mask):
    return np.linalg.norm((image - reference)[mask]) / np.linalg.norm(reference[mask])


def blob_phantom(shape, voxel):
    """Smooth (band-limited) ellipsoid-like blobs, well inside the field of view."""
    axes = [(np.arange(n) - n // 2) * voxel for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    image = np.exp(-(((x / 22) ** 2 + (y / 30) ** 2 + (z / 18) ** 2) ** 2))
    image += 0.6 * np.exp(-(((x - 8) / 7) ** 2 + ((y + 10) / 9) ** 2 + ((z - 4) / 6) ** 2))
    image -= 0.4 * np.exp(-(((x + 9) / 6) ** 2 + ((y - 6) / 10) ** 2 + (z / 8) ** 2))
    return image.astype(complex)


def test_second_scan_after_60_degrees_and_10_mm_comes_back_to_the_first_position():
    """Zahneisen & Ernst 2016: scan, move by ~60° and 10 mm, scan again; reconstructing the second scan with the
    transformed augmented k-space returns the object to its first position."""
    shape, voxel = (32, 32, 32), 3.0
    grid = ImageGrid(shape, make_transform(np.eye(3) * voxel, -(np.array(shape) // 2) * voxel))
    image = blob_phantom(shape, voxel)
    coils = loop_coils(8, head_radius_mm=110.0, rings=2)
    sampling = cartesian(shape, (voxel,) * 3, mode="3d")
    moved = MotionTrajectory.constant(transform_from_euler([0.0, 20.0, 60.0], [10.0, -10.0, 5.0]))
    first = simulate(image, grid, sampling, None, coils, eps=1e-8)
    second = simulate(image, grid, sampling, moved, coils, eps=1e-8)
    maps = GridCoilMaps(first.coil_maps, grid.scanner_from_voxel)
    reference, _ = sense_reconstruction(first.data, sampling, first.scanner_from_logical, maps, iterations=20)
    naive, _ = sense_reconstruction(second.data, sampling, second.scanner_from_logical, maps, iterations=20)
    corrected, _ = sense_reconstruction(
        second.data, sampling, second.scanner_from_logical, maps, motion=moved, iterations=20
    )
    mask = np.abs(image) > 0.05
    assert nrmse(reference.image, image, mask) < 0.01
    assert nrmse(naive.image, reference.image, mask) > 0.5  # without the motion it is elsewhere
    # Back in place; the residual comes from k-space corners that the rotation moved out of the sampled cube.
    assert nrmse(corrected.image, reference.image, mask) < 0.05


@pytest.fixture(scope="module")
def real_slice():
    path = SHARED / "brain_slice_7coil" / "brain_slice_7coil.npz"
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    coil_images = np.moveaxis(np.load(path)["arr_0"], -1, 0).astype(np.complex128)  # (7, 256, 216)
    return coil_images


def test_real_slice_multishot_motion_corrected_with_known_motion(real_slice):
    coil_images = real_slice
    maps = estimate_coil_maps(coil_images, method="walsh")
    combined = np.sum(np.conj(maps) * coil_images, axis=0) / np.maximum(np.sum(np.abs(maps) ** 2, axis=0), 1e-12)
    shape, voxel = combined.shape, 1.0
    grid = ImageGrid(shape, make_transform(np.eye(3) * voxel, -np.array([*np.array(shape) // 2, 0]) * voxel))
    coils = GridCoilMaps(maps, grid.scanner_from_voxel)
    sampling = cartesian((*shape, 1), (voxel, voxel, voxel), mode="3d", order="interleaved", shots=8)
    rng = np.random.default_rng(3)
    shots = np.unique(sampling.shot)
    starts = np.array([sampling.time_s[sampling.shot == s].min() for s in shots])
    angles = np.concatenate([[0.0], rng.uniform(-4, 4, len(shots) - 1)])
    shifts = np.concatenate([[[0.0, 0.0]], rng.uniform(-4, 4, (len(shots) - 1, 2))])
    poses = transform_from_euler(
        np.stack([np.zeros_like(angles)] * 2 + [angles], -1), np.concatenate([shifts, np.zeros((len(shots), 1))], -1)
    )
    motion = MotionTrajectory(starts, poses, end_s=sampling.duration_s)
    still = simulate(combined, grid, sampling, None, coils)
    corrupted = simulate(combined, grid, sampling, motion, coils)
    recon = dict(iterations=15, regularization=1e-4)
    reference, _ = sense_reconstruction(still.data, sampling, still.scanner_from_logical, coils, **recon)
    naive, _ = sense_reconstruction(corrupted.data, sampling, corrupted.scanner_from_logical, coils, **recon)
    corrected, _ = sense_reconstruction(
        corrupted.data, sampling, corrupted.scanner_from_logical, coils, motion=motion, **recon
    )
    mask = np.abs(reference.image) > 0.1 * np.abs(reference.image).max()
    error_naive = nrmse(naive.image, reference.image, mask)
    error_corrected = nrmse(corrected.image, reference.image, mask)
    assert error_naive > 0.1
    assert error_corrected <= error_naive / 5, (error_corrected, error_naive)


def test_accelerated_real_slice_without_coil_maps(real_slice):
    """A scan sampled at every third phase line plus 24 central lines (GRAPPA-style autocalibration), with no
    coil maps: maps estimated from the calibration region reconstruct it; maps from the zero-filled full-resolution
    coil images (the way before) carry the aliasing into the image."""
    from mrmotion.physics.combine import calibration_images, coil_images

    maps = estimate_coil_maps(real_slice, method="walsh")
    combined = np.sum(np.conj(maps) * real_slice, axis=0) / np.maximum(np.sum(np.abs(maps) ** 2, axis=0), 1e-12)
    shape = combined.shape
    grid = ImageGrid(shape, make_transform(np.eye(3), -np.array([*np.array(shape) // 2, 0.0])))
    full = cartesian((*shape, 1), (1.0, 1.0, 1.0), mode="3d")
    scan = simulate(combined, grid, full, None, GridCoilMaps(maps, grid.scanner_from_voxel))
    phase = full.grid_index[:, 1] - shape[1] // 2
    keep = (phase % 3 == 0) | (np.abs(phase) < 12)
    sampling = Sampling(
        full.k_logical[keep], full.time_s[keep], full.shot[keep], full.slice_index[keep], full.matrix,
        full.voxel_size_mm, full.mode, full.grid_index[keep],
    )  # fmt: skip
    data = scan.data[:, keep]
    mask = np.abs(combined) > 0.1 * np.abs(combined).max()
    errors = {}
    for name, images in (
        ("calibration", calibration_images(data, sampling)),
        ("zero-filled", coil_images(data, sampling)),
    ):
        estimated = GridCoilMaps(estimate_coil_maps(images), grid.scanner_from_voxel)
        result, _ = sense_reconstruction(data, sampling, scan.scanner_from_logical, estimated, iterations=20)
        errors[name] = nrmse(np.abs(result.image), np.abs(combined), mask)
    assert errors["calibration"] < 0.06 and errors["zero-filled"] > 1.4 * errors["calibration"], errors  # 0.045, 0.078
