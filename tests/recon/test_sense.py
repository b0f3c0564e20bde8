"""CG-SENSE details: the warm start from the moving-coil model, the object's box, and bad input."""

import numpy as np
import pytest

from mrmotion.errors import MrMotionError
from mrmotion.geometry.parameters import transform_from_euler
from mrmotion.geometry.transforms import apply, make_transform
from mrmotion.physics.coils import GridCoilMaps, loop_coils
from mrmotion.physics.encoding import ImageGrid, MotionEncoding
from mrmotion.physics.sampling import cartesian
from mrmotion.physics.simulate import simulate
from mrmotion.physics.trajectory import MotionTrajectory
from mrmotion.recon.reconstruct import object_box, sense_reconstruction
from mrmotion.recon.sense import cg_sense


def offset_blob(shape, voxel, centre_mm):
    """A smooth blob of about 12 mm radius centred at ``centre_mm`` (grid centre at the origin), zero far away."""
    axes = [(np.arange(n) - n // 2) * voxel - c for n, c in zip(shape, centre_mm, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    image = np.exp(-(((x / 12) ** 2 + (y / 9) ** 2 + (z / 10) ** 2) ** 2))
    return np.where(image > 1e-6, image, 0.0).astype(complex)


@pytest.fixture(scope="module")
def scan():
    """A 3-mm 32³ grid, a blob off the centre, 8 loop coils fixed in the scanner, 4 poses (a few ° and mm)."""
    shape, voxel = (32, 32, 32), 3.0
    grid = ImageGrid(shape, make_transform(np.eye(3) * voxel, -(np.array(shape) // 2) * voxel))
    image = offset_blob(shape, voxel, (-15.0, 10.0, 6.0))
    coils = loop_coils(8, head_radius_mm=90.0, rings=2)
    sampling = cartesian(shape, (voxel,) * 3, mode="3d")
    rng = np.random.default_rng(7)
    poses = transform_from_euler(rng.uniform(-6, 6, (4, 3)), rng.uniform(-5, 5, (4, 3)))
    poses[0] = np.eye(4)
    motion = MotionTrajectory(np.linspace(0, sampling.duration_s, 5)[:-1], poses, end_s=sampling.duration_s)
    data = simulate(image, grid, sampling, motion, coils, eps=1e-8)
    maps = GridCoilMaps(data.coil_maps, grid.scanner_from_voxel)
    return image, grid, sampling, motion, data, maps


def error(image, truth):
    inside = np.abs(truth) > 0.05
    return np.linalg.norm((np.abs(image) - np.abs(truth))[inside]) / np.linalg.norm(np.abs(truth)[inside])


def test_the_object_box_holds_the_object_in_its_reference_pose(scan):
    image, grid, sampling, motion, data, _ = scan
    box = object_box(data.data, sampling, grid, motion)
    assert np.prod([part.stop - part.start for part in box]) < 0.6 * np.prod(grid.shape)
    outside = np.abs(image).copy()
    outside[box] = 0
    assert outside.max() < 1e-3 * np.abs(image).max()
    # A large constant move (30°, 20 mm): the data show the object elsewhere; the box is brought back.
    moved = MotionTrajectory.constant(transform_from_euler([0.0, 0.0, 30.0], [20.0, -15.0, 0.0]))
    far = simulate(image, grid, sampling, moved, None, eps=1e-8)
    box = object_box(far.data, sampling, grid, moved)
    outside = np.abs(image).copy()
    outside[box] = 0
    assert outside.max() < 1e-3 * np.abs(image).max()
    # Nothing in the data: the whole grid.
    empty = object_box(np.zeros_like(far.data), sampling, grid, None)
    assert empty == tuple(slice(0, n) for n in grid.shape)


def test_cropping_to_the_box_changes_the_image_only_within_the_solver_tolerance(scan):
    image, _, sampling, motion, data, maps = scan
    settings = dict(iterations=12, coil_model="moving", regularization=1e-5)
    cropped, _ = sense_reconstruction(data.data, sampling, data.scanner_from_logical, maps, motion, **settings)
    whole, _ = sense_reconstruction(
        data.data, sampling, data.scanner_from_logical, maps, motion, crop=False, **settings
    )
    assert cropped.image.shape == whole.image.shape == image.shape
    assert error(cropped.image, image) < 0.05 and error(whole.image, image) < 0.05
    assert error(cropped.image, image) <= 1.2 * error(whole.image, image)


def test_exact_coil_model_continues_from_the_moving_model_and_improves_on_it(scan):
    image, _, sampling, motion, data, maps = scan
    settings = dict(iterations=10, regularization=1e-5)
    moving, _ = sense_reconstruction(
        data.data, sampling, data.scanner_from_logical, maps, motion, coil_model="moving", **settings
    )
    seen = []
    exact, _ = sense_reconstruction(
        data.data,
        sampling,
        data.scanner_from_logical,
        maps,
        motion,
        exact_iterations=3,
        progress=lambda i, r: seen.append(i),
        **settings,
    )
    assert seen == list(range(1, 14))  # one progress bar over both stages
    assert exact.iterations == 3
    assert error(exact.image, image) < 0.8 * error(moving.image, image)
    seen.clear()  # by default, a grid this small (32³) takes as many exact iterations as moving ones
    sense_reconstruction(
        data.data, sampling, data.scanner_from_logical, maps, motion, progress=lambda i, r: seen.append(i), **settings
    )
    assert seen == list(range(1, 21))
    none, _ = sense_reconstruction(
        data.data, sampling, data.scanner_from_logical, maps, motion, exact_iterations=0, **settings
    )
    np.testing.assert_allclose(none.image, moving.image)
    with pytest.raises(MrMotionError, match="k-space data"):
        sense_reconstruction(data.data[:, :-5], sampling, data.scanner_from_logical, maps, motion)
    with pytest.raises(MrMotionError, match="k-space data"):
        sense_reconstruction(data.data[0], sampling, data.scanner_from_logical, maps, motion)
    corrupt = data.data.copy()
    corrupt[0, 3] = np.nan
    with pytest.raises(MrMotionError, match="NaN or infinite"):
        sense_reconstruction(corrupt, sampling, data.scanner_from_logical, maps, motion)
    with pytest.raises(MrMotionError, match="exact_iterations"):
        sense_reconstruction(data.data, sampling, data.scanner_from_logical, maps, motion, exact_iterations=-1)


def operator_of(scan, coil_model):
    _, grid, sampling, motion, data, maps = scan
    k = (data.scanner_from_logical[:3, :3] @ sampling.k_logical.T).T
    origin = apply(data.scanner_from_logical, np.zeros(3))  # the receiver's centre
    return MotionEncoding(grid, k, sampling.time_s, motion, maps, coil_model, origin_mm=origin)


def test_a_warm_start_at_the_solution_has_nothing_left_to_do(scan):
    _, grid, sampling, motion, data, maps = scan
    operator = operator_of(scan, "moving")
    solved = cg_sense(operator, data.data, iterations=40, regularization=1e-5, tolerance=1e-12)
    again = cg_sense(operator, data.data, 1, initial=solved.image, lam=solved.regularization_abs)
    change = np.linalg.norm(again.image - solved.image) / np.linalg.norm(solved.image)
    assert change < 1e-4
    with pytest.raises(MrMotionError, match="initial"):
        cg_sense(operator, data.data, 1, initial=np.zeros((3, 3, 3)))
    with pytest.raises(MrMotionError, match="initial"):
        cg_sense(operator, data.data, 1, initial=np.full(grid.shape, np.nan))
