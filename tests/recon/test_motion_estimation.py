"""Motion estimated from the k-space data (aligned SENSE): recovered poses, the image, and bad input."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mrmotion.errors import MrMotionError
from mrmotion.geometry.parameters import transform_from_euler
from mrmotion.geometry.transforms import make_transform
from mrmotion.physics.coils import loop_coils
from mrmotion.physics.encoding import ImageGrid
from mrmotion.physics.sampling import Sampling, cartesian
from mrmotion.physics.simulate import simulate
from mrmotion.physics.trajectory import MotionTrajectory
from mrmotion.recon.motion_estimation import estimate_motion, motion_states
from mrmotion.recon.reconstruct import sense_reconstruction


def textured_phantom(shape, voxel, rng):
    """An ellipsoidal 'head' with a dozen random smaller blobs inside (edges at several scales to align on)."""
    axes = [(np.arange(n) - n // 2) * voxel for n in shape]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    radii = np.array([70.0, 85.0, 60.0])[: len(shape)]
    image = 1.0 / (1.0 + np.exp((np.sqrt(np.sum((points / radii) ** 2, -1)) - 1.0) * 25))
    for _ in range(12):
        centre = rng.uniform(-0.5, 0.5, len(shape)) * radii
        size = rng.uniform(6, 15)
        image += rng.uniform(-0.5, 0.8) * np.exp(-np.sum((points - centre) ** 2, -1) / (2 * size**2)) * (image > 0.5)
    return image.astype(complex)


def pose_errors(estimated: np.ndarray, truth: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (deg) and displacement of ``centre`` (mm) between estimated and true transforms, per state."""
    difference = np.linalg.inv(truth) @ estimated
    angles = np.degrees(Rotation.from_matrix(difference[:, :3, :3]).magnitude())
    moved = lambda t: t[:, :3, :3] @ centre + t[:, :3, 3]  # noqa: E731
    return angles, np.linalg.norm(moved(estimated) - moved(truth), axis=1)


def shot_motion(sampling: Sampling, rotation_deg: np.ndarray, translation_mm: np.ndarray) -> MotionTrajectory:
    shots = np.unique(sampling.shot)
    starts = np.array([sampling.time_s[sampling.shot == s].min() for s in shots])
    return MotionTrajectory(starts, transform_from_euler(rotation_deg, translation_mm), end_s=sampling.duration_s)


@pytest.fixture(scope="module")
def slice_scan():
    """One 2-D slice (96 × 96, 2.5 mm), 6 loop coils fixed in the scanner, 6 interleaved shots moved in-plane by up
    to 4° and 4 mm (the first shot at rest)."""
    rng = np.random.default_rng(11)
    shape, voxel = (96, 96), 2.5
    grid = ImageGrid(shape, make_transform(np.eye(3) * voxel, -np.array([*np.array(shape) // 2, 0]) * voxel))
    image = textured_phantom(shape, voxel, rng)
    sampling = cartesian((*shape, 1), (voxel, voxel, voxel), mode="3d", order="interleaved", shots=6)
    angles = np.concatenate([[0.0], rng.uniform(-4, 4, 5)])
    shifts = np.concatenate([[[0.0, 0.0]], rng.uniform(-4, 4, (5, 2))])
    motion = shot_motion(
        sampling, np.stack([0 * angles, 0 * angles, angles], -1), np.concatenate([shifts, np.zeros((6, 1))], -1)
    )
    coils = loop_coils(6, head_radius_mm=130.0)
    still = simulate(image, grid, sampling, None, coils)
    moved = simulate(image, grid, sampling, motion, coils)
    return sampling, coils, still, moved, motion


def test_in_plane_motion_of_a_slice_is_recovered_from_its_data(slice_scan):
    sampling, coils, still, moved, motion = slice_scan
    estimate = estimate_motion(moved.data, sampling, moved.scanner_from_logical, coils)
    assert estimate.motion.transforms.shape == (6, 4, 4)
    angles, shifts = pose_errors(estimate.motion.transforms, motion.transforms, estimate.centre_mm)
    assert np.all(angles < 0.2) and np.all(shifts < 0.2), (angles, shifts)
    # only in-plane parameters: no rotation about read or phase, no shift along the slice normal
    assert np.allclose(estimate.rotation_deg[:, :2], 0, atol=1e-9)
    assert np.allclose(estimate.translation_mm[:, 2], 0, atol=1e-9)
    assert estimate.residuals[-1] < 0.5 * estimate.residuals[0]
    reference, _ = sense_reconstruction(still.data, sampling, still.scanner_from_logical, coils)
    naive, _ = sense_reconstruction(moved.data, sampling, moved.scanner_from_logical, coils)
    mask = np.abs(reference.image) > 0.1 * np.abs(reference.image).max()
    error = lambda image: np.linalg.norm((image - reference.image)[mask]) / np.linalg.norm(reference.image[mask])  # noqa: E731
    assert error(estimate.result.image) < error(naive.image) / 5, (error(estimate.result.image), error(naive.image))


def test_the_reference_time_chooses_the_pose_the_image_shows(slice_scan):
    sampling, coils, _, moved, motion = slice_scan
    later = float(motion.times_s[3]) + 1e-6
    estimate = estimate_motion(moved.data, sampling, moved.scanner_from_logical, coils, reference_time_s=later)
    assert estimate.reference_state == 3
    np.testing.assert_allclose(estimate.motion.transforms[3], np.eye(4), atol=1e-12)
    truth = motion.relative_to_pose(motion.transforms[3]).transforms
    angles, shifts = pose_errors(estimate.motion.transforms, truth, estimate.centre_mm)
    assert np.all(angles < 0.2) and np.all(shifts < 0.2), (angles, shifts)


def test_volumes_are_refused_until_supported():
    sampling = cartesian((8, 8, 8), (4.0,) * 3, mode="3d")
    data = np.ones((1, len(sampling.k_logical)), dtype=complex)
    with pytest.raises(MrMotionError, match="single 2-D slices"):
        estimate_motion(data, sampling, np.eye(4), None)


def test_states_are_the_shots_or_equal_stretches_of_time():
    interleaved = cartesian((16, 12, 1), (1.0, 1.0, 1.0), mode="3d", order="interleaved", shots=4)
    state, starts = motion_states(interleaved)
    assert len(starts) == 4 and np.all(np.diff(starts) > 0)
    for shot in range(4):  # every shot is one state
        assert len(np.unique(state[interleaved.shot == shot])) == 1
    linear = cartesian((16, 12, 1), (1.0, 1.0, 1.0), mode="3d", order="linear")
    state, starts = motion_states(linear)  # one shot per phase line: each a state
    assert len(starts) == 12 and np.all(state == linear.shot)
    linear = cartesian((16, 96, 1), (1.0, 1.0, 1.0), mode="3d", order="linear")
    state, starts = motion_states(linear)  # too many one-line shots: 8 stretches of time
    assert len(starts) == 8 and np.all(np.diff(state) >= 0)
    state, starts = motion_states(linear, states=3)
    assert len(starts) == 3 and set(np.unique(state)) == {0, 1, 2}
    with pytest.raises(MrMotionError, match="states"):
        motion_states(linear, states=0)


@pytest.fixture(scope="module")
def small():
    shape = (16, 16)
    grid = ImageGrid(shape, make_transform(np.eye(3) * 4.0, -np.array([8.0, 8.0, 0.0]) * 4.0))
    sampling = cartesian((*shape, 1), (4.0, 4.0, 4.0), mode="3d", order="interleaved", shots=2)
    coils = loop_coils(2, head_radius_mm=60.0)
    scan = simulate(textured_phantom(shape, 4.0, np.random.default_rng(0)) * 0 + 1, grid, sampling, None, coils)
    return sampling, coils, scan


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d[:, :-1], "expected"),
        (lambda d: d[0], "expected"),
        (lambda d: np.where(np.arange(d.shape[1]) == 3, np.nan, d), "NaN"),
        (lambda d: np.zeros_like(d), "all zero"),
    ],
)
def test_bad_data_is_refused_with_the_reason(small, change, message):
    sampling, coils, scan = small
    with pytest.raises(MrMotionError, match=message):
        estimate_motion(change(scan.data), sampling, scan.scanner_from_logical, coils)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"iterations": 0}, "iterations"),
        ({"iterations": 2.5}, "iterations"),
        ({"image_iterations": 0}, "image_iterations"),
        ({"final_iterations": -1}, "final_iterations"),
        ({"regularization": float("nan")}, "regularization"),
        ({"states": -1}, "states"),
        ({"reference_time_s": 1e6}, "reference time"),
        ({"reference_time_s": float("nan")}, "reference time"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(small, options, message):
    sampling, coils, scan = small
    with pytest.raises(MrMotionError, match=message):
        estimate_motion(scan.data, sampling, scan.scanner_from_logical, coils, **options)


def test_states_that_never_sample_the_centre_are_refused():
    """A linear scan cut into 8 stretches of time: the outer ones saw only outer bands of k-space."""
    shape = (64, 64)
    grid = ImageGrid(shape, make_transform(np.eye(3) * 3.0, -np.array([32.0, 32.0, 0.0]) * 3.0))
    sampling = cartesian((*shape, 1), (3.0, 3.0, 3.0), mode="3d", order="linear")
    coils = loop_coils(2, head_radius_mm=130.0)
    scan = simulate(textured_phantom(shape, 3.0, np.random.default_rng(1)), grid, sampling, None, coils)
    with pytest.raises(MrMotionError, match="no samples near the k-space centre"):
        estimate_motion(scan.data, sampling, scan.scanner_from_logical, coils, states=8)
    # one state for the whole scan always sees the centre
    single = estimate_motion(scan.data, sampling, scan.scanner_from_logical, coils, states=1, iterations=1)
    assert len(single.motion) == 1 and np.allclose(single.motion.transforms[0], np.eye(4))


def test_coil_maps_that_do_not_match_the_data_are_refused(small):
    sampling, _, scan = small
    with pytest.raises(MrMotionError, match="2 coils but the coil maps 3"):
        estimate_motion(scan.data, sampling, scan.scanner_from_logical, loop_coils(3, head_radius_mm=60.0))
