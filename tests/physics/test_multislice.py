"""2-D multi-slice acquisition of a moving volume: identities (no motion, whole-voxel and whole-slice shifts),
time-varying motion, through-plane rotation, slice profile, non-Cartesian sampling and bad input."""

import numpy as np
import pytest

from mrmotion.errors import MrMotionError
from mrmotion.geometry.parameters import transform_from_euler, transform_from_rotvec
from mrmotion.geometry.transforms import make_transform
from mrmotion.physics.coil_weighting import coil_maps_on_grid
from mrmotion.physics.coils import loop_coils
from mrmotion.physics.combine import coil_images, combine
from mrmotion.physics.encoding import ImageGrid
from mrmotion.physics.multislice import multislice_kspace
from mrmotion.physics.sampling import cartesian, radial
from mrmotion.physics.simulate import simulate
from mrmotion.physics.trajectory import MotionTrajectory

SHAPE = (16, 14, 6)
VOXEL = (2.0, 2.5, 4.0)


def oblique_grid(shape=SHAPE, angles_deg=(20.0, -10.0, 35.0)):
    affine = transform_from_euler(angles_deg, (3.0, -5.0, 7.0)) @ np.diag([*VOXEL, 1.0])
    affine[:3, 3] -= affine[:3, :3] @ (np.array(shape) // 2)
    return ImageGrid(shape, affine)


def coils_for(grid):
    return loop_coils(2, head_radius_mm=80.0, centre_mm=grid.positions(grid.centre_index))


def volume(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.5, SHAPE) + 0.3j * rng.normal(size=SHAPE)


def phantom():
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    return np.clip(1.2 - np.sqrt(sum((a / 0.8) ** 2 for a in axes)), 0, 1) * (1 + 0.3 * np.cos(5 * axes[0]))


def moved_by_voxels(grid, shift):
    """The rigid translation that moves the object by ``shift`` voxels along the grid's axes."""
    return make_transform(np.eye(3), grid.scanner_from_voxel[:3, :3] @ np.asarray(shift, dtype=float))


def image_of(data, sampling, maps):
    return combine(coil_images(data, sampling), maps)


def test_no_motion_is_the_per_slice_fft_of_coil_maps_times_image():
    grid, rho = oblique_grid(), volume()
    coils = coils_for(grid)
    sampling = cartesian(SHAPE, VOXEL, mode="2d", order="random", seed=2)
    data = multislice_kspace(rho, grid, sampling, None, coils)
    maps = coil_maps_on_grid(coils, grid)
    spectrum = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(maps * rho, axes=(1, 2)), axes=(1, 2)), axes=(1, 2))
    index = sampling.grid_index
    np.testing.assert_allclose(data, spectrum[:, index[:, 0], index[:, 1], index[:, 2]], atol=1e-11)
    np.testing.assert_allclose(image_of(data, sampling, maps), rho, atol=1e-12)
    scan = simulate(rho, grid, sampling, coils=coils)  # the same through simulate(): its maps are complex64
    np.testing.assert_allclose(scan.data, data, atol=1e-11)
    np.testing.assert_allclose(image_of(scan.data, sampling, scan.coil_maps), rho, atol=1e-5)


def test_in_plane_translation_by_whole_voxels_shifts_the_image():
    grid, rho = oblique_grid(), volume(1)
    sampling = cartesian(SHAPE, VOXEL, mode="2d")
    motion = MotionTrajectory.constant(moved_by_voxels(grid, (2, -1, 0)))
    scan = simulate(rho, grid, sampling, motion, coils_for(grid))
    assert scan.coil_clusters is None and scan.coil_cluster_tol_mm is None  # per slice, not one operator
    expected = np.zeros_like(rho)
    expected[2:, :-1] = rho[:-2, 1:]  # ρ_A(u) = ρ(u − shift); spins from outside the FOV give no signal
    np.testing.assert_allclose(image_of(scan.data, sampling, scan.coil_maps), expected, atol=1e-5)


def test_through_plane_translation_by_one_slice_moves_the_content_by_one_slice():
    grid, rho = oblique_grid(), volume(2)
    sampling = cartesian(SHAPE, VOXEL, mode="2d", order="centric")
    motion = MotionTrajectory.constant(moved_by_voxels(grid, (0, 0, 1)))
    scan = simulate(rho, grid, sampling, motion, coils_for(grid))
    expected = np.zeros_like(rho)
    expected[..., 1:] = rho[..., :-1]
    np.testing.assert_allclose(image_of(scan.data, sampling, scan.coil_maps), expected, atol=1e-5)


@pytest.mark.parametrize("count, order", [(2, "random"), (14, "linear")])  # FFT, and few-line DFT, in phase
def test_each_sample_sees_the_state_holding_when_it_was_acquired(count, order):
    grid, rho = oblique_grid(), volume(3)
    coils = coils_for(grid)
    sampling = cartesian(SHAPE, VOXEL, mode="2d", order=order, seed=4)
    rng = np.random.default_rng(count)
    moves = np.stack([np.eye(4)] + [moved_by_voxels(grid, rng.integers(-2, 3, 3)) for _ in range(count - 1)])
    times = np.linspace(0.0, sampling.duration_s, count + 1)[:-1]
    data = multislice_kspace(rho, grid, sampling, MotionTrajectory(times, moves, sampling.duration_s), coils)
    states = np.searchsorted(times, sampling.time_s, side="right") - 1
    assert len(np.unique(states)) == count
    for state, move in enumerate(moves):
        alone = multislice_kspace(rho, grid, sampling, MotionTrajectory.constant(move), coils)
        np.testing.assert_allclose(data[:, states == state], alone[:, states == state], atol=1e-11)
    still = multislice_kspace(rho, grid, sampling, None, coils)
    assert np.abs(data - still).max() > 0.1 * np.abs(still).max()


def test_through_plane_rotation_changes_the_signal_more_with_the_angle():
    grid, rho = oblique_grid(), phantom()
    coils = coils_for(grid)
    sampling = cartesian(SHAPE, VOXEL, mode="2d")
    still = multislice_kspace(rho, grid, sampling, None, coils)
    centre = grid.positions(grid.centre_index)
    read_axis = grid.scanner_from_voxel[:3, 0] / VOXEL[0]  # a tilt about the read axis moves spins through-plane
    errors = []
    for angle_deg in (1.0, 3.0, 9.0):
        turn = transform_from_rotvec(np.radians(angle_deg) * read_axis)
        pose = make_transform(np.eye(3), centre) @ turn @ make_transform(np.eye(3), -centre)
        data = multislice_kspace(rho, grid, sampling, MotionTrajectory.constant(pose), coils)
        errors.append(np.linalg.norm(data - still) / np.linalg.norm(still))
    assert 0.005 < errors[0] < errors[1] < errors[2] < 1.0, errors


def test_boxcar_profile_of_a_volume_constant_across_slices():
    grid = oblique_grid()
    rho = np.repeat(volume(5)[..., :1], SHAPE[2], axis=2)
    sampling = cartesian(SHAPE, VOXEL, mode="2d")
    maps = np.ones((1, *SHAPE))
    thin = image_of(multislice_kspace(rho, grid, sampling), sampling, maps)
    thick = image_of(multislice_kspace(rho, grid, sampling, profile_points=3), sampling, maps)
    np.testing.assert_allclose(thin, rho, atol=1e-12)
    # Interior slices: the mean over sub-planes of a z-constant object is the object.
    np.testing.assert_allclose(thick[..., 1:-1], rho[..., 1:-1], atol=1e-12)
    # Outermost slices: the sub-plane beyond the last voxel centre is outside the volume (no signal there).
    np.testing.assert_allclose(thick[..., [0, -1]], rho[..., [0, -1]] * 2 / 3, atol=1e-12)
    # With coils, each sub-plane is weighted by the (scanner-fixed) coils at its own position.
    coils = coils_for(grid)
    thick = multislice_kspace(rho, grid, sampling, None, coils, profile_points=3)
    thin = multislice_kspace(rho, grid, sampling, None, coils)
    assert 1e-5 < np.linalg.norm(thick - thin) / np.linalg.norm(thin) < 0.4


def test_radial_sampling_equals_a_direct_dft_of_each_slice():
    shape = (10, 8, 3)
    grid = oblique_grid(shape)
    rho = np.random.default_rng(6).normal(size=shape)
    coils = coils_for(grid)
    sampling = radial(shape, VOXEL, mode="2d", spokes=7)
    data = multislice_kspace(rho, grid, sampling, None, coils, eps=1e-10)
    maps = coil_maps_on_grid(coils, grid)
    u = np.stack(np.meshgrid(*[np.arange(n) - n // 2 for n in shape[:2]], indexing="ij"), -1).reshape(-1, 2)
    kappa = sampling.k_logical[:, :2] * np.array(VOXEL[:2])
    expected = np.empty_like(data)
    for m, s in enumerate(sampling.slice_index):
        weighted = (maps[..., s] * rho[..., s]).reshape(len(maps), -1)
        expected[:, m] = weighted @ np.exp(-1j * u @ kappa[m])
    np.testing.assert_allclose(data, expected, atol=1e-8 * np.abs(expected).max())


def test_moving_coil_model_matches_exact_without_motion_and_differs_with_it():
    grid, rho = oblique_grid(), volume(7)
    coils = coils_for(grid)
    sampling = cartesian(SHAPE, VOXEL, mode="2d")
    exact = multislice_kspace(rho, grid, sampling, None, coils)
    moving = multislice_kspace(rho, grid, sampling, None, coils, coil_model="moving")
    np.testing.assert_allclose(moving, exact, atol=1e-3 * np.abs(exact).max())
    motion = MotionTrajectory.constant(transform_from_euler((4.0, 0.0, 0.0), (0.0, 6.0, 0.0)))
    exact = multislice_kspace(rho, grid, sampling, motion, coils)
    moving = multislice_kspace(rho, grid, sampling, motion, coils, coil_model="moving")
    assert np.linalg.norm(moving - exact) > 1e-3 * np.linalg.norm(exact)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sampling": cartesian((16, 14, 5), VOXEL, mode="2d")}, "matrix"),
        ({"sampling": cartesian(SHAPE, (2.0, 2.5, 3.0), mode="2d")}, "voxel size"),
        ({"sampling": cartesian(SHAPE, VOXEL, mode="3d")}, "mode '2d'"),
        ({"image": np.ones(SHAPE[:2])}, "3-D image"),
        ({"image": np.full(SHAPE, np.nan)}, "NaN"),
        ({"profile_points": 0}, "profile_points"),
        ({"coil_model": "rigid"}, "coil_model"),
        ({"cluster_tol_mm": -1.0}, "cluster_tol_mm"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(change, message):
    grid = oblique_grid()
    arguments = {"image": np.ones(SHAPE), "grid": grid, "sampling": cartesian(SHAPE, VOXEL, mode="2d")}
    arguments.update(change)
    with pytest.raises(MrMotionError, match=message):
        multislice_kspace(**arguments)


def test_simulate_refuses_a_mismatched_matrix():
    grid = oblique_grid()
    with pytest.raises(MrMotionError, match="matrix"):
        simulate(np.ones(SHAPE), grid, cartesian((16, 14, 7), VOXEL, mode="2d"))
