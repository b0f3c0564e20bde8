"""Coil sensitivities: Biot–Savart loops against closed forms, grid interpolation, and map estimation."""

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from scipy.special import ellipe, ellipk

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import make_transform
from mrmotion.physics.coils import (
    CoilMaps,
    GridCoilMaps,
    LoopCoils,
    estimate_coil_maps,
    head_array,
    loop_coils,
    sample_on_grid,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "brain_slice_7coil" / "brain_slice_7coil.npz"


def head_points(rng, count=500, radius=80.0, height=40.0):
    """Random points inside a cylinder of the given radius and height about the origin, mm."""
    r = radius * np.sqrt(rng.uniform(size=count))
    angle = rng.uniform(0, 2 * np.pi, size=count)
    return np.stack([r * np.cos(angle), r * np.sin(angle), rng.uniform(-height / 2, height / 2, count)], axis=1)


def grid_affine(voxel_mm, shape, rotation=None):
    """scanner_from_voxel for a grid centred on the origin, optionally rotated."""
    linear = np.diag(np.broadcast_to(voxel_mm, (3,)).astype(float))
    if rotation is not None:
        linear = rotation @ linear
    centre_index = (np.array([*shape, 1][:3]) - 1) / 2
    return make_transform(linear, -linear @ centre_index)


def cosine(a, b):
    """Per-voxel |<a, b>| / (|a||b|) over the coil axis (0)."""
    return np.abs(np.sum(a.conj() * b, axis=0)) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0) + 1e-300)


# ------------------------------------------------------------------------------------------------ LoopCoils
def test_loop_coils_satisfy_protocol_and_shapes():
    coils = loop_coils(8)
    assert isinstance(coils, CoilMaps)
    assert coils.count == 8
    assert coils.sensitivities([0.0, 0.0, 0.0]).shape == (8,)
    values = coils.sensitivities(np.zeros((2, 5, 3)))
    assert values.shape == (8, 2, 5) and values.dtype == np.complex128


@pytest.mark.parametrize(("rings", "centre"), [(1, (0.0, 0.0, 0.0)), (2, (5.0, -10.0, 30.0))])
def test_rss_is_one_at_the_centre(rings, centre):
    coils = loop_coils(8, centre_mm=centre, rings=rings)
    rss = np.sqrt(np.sum(np.abs(coils.sensitivities(centre)) ** 2))
    assert rss == pytest.approx(1.0, abs=1e-12)


def test_on_axis_field_matches_closed_form():
    radius = 50.0
    coil = LoopCoils([[0.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]], radius)
    z = np.linspace(-100.0, 100.0, 41)
    points = np.stack([z, np.zeros_like(z), np.zeros_like(z)], axis=1)
    field = coil.magnetic_field(points)[0]
    # B = μ0 I R² / (2 (R² + z²)^{3/2}); magnetic_field is in units of μ0 I / (4π).
    closed = 2 * np.pi * radius**2 / (radius**2 + z**2) ** 1.5
    np.testing.assert_allclose(field[:, 0], closed, rtol=1e-12)
    np.testing.assert_allclose(field[:, 1:], 0.0, atol=1e-12 * closed.max())
    # The normalised sensitivity is the same profile, scaled to 1 at the loop centre (axis along x: S = B_x).
    np.testing.assert_allclose(coil.sensitivities(points)[0], closed / closed[20], rtol=1e-12)


def test_off_axis_field_matches_elliptic_integrals():
    """Whole-space check against Simpson et al.'s closed form (complete elliptic integrals)."""
    radius = 50.0
    coil = LoopCoils([[0.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]], radius)  # axis along x: cylindrical (ρ in y-z, x)
    rng = np.random.default_rng(1)
    points = rng.uniform(-120, 120, size=(2000, 3))
    rho = np.hypot(points[:, 1], points[:, 2])
    wire_distance = np.hypot(rho - radius, points[:, 0])
    points, rho = points[wire_distance > 15], rho[wire_distance > 15]
    x = points[:, 0]
    alpha2 = radius**2 + rho**2 + x**2 - 2 * radius * rho
    beta2 = radius**2 + rho**2 + x**2 + 2 * radius * rho
    m = 1 - alpha2 / beta2
    c = 4.0  # μ0 I / π in units of μ0 I / (4π)
    b_rho = c * x / (2 * alpha2 * np.sqrt(beta2) * rho) * ((radius**2 + rho**2 + x**2) * ellipe(m) - alpha2 * ellipk(m))
    b_axial = c / (2 * alpha2 * np.sqrt(beta2)) * ((radius**2 - rho**2 - x**2) * ellipe(m) + alpha2 * ellipk(m))
    expected = np.stack([b_axial, b_rho * points[:, 1] / rho, b_rho * points[:, 2] / rho], axis=1)
    field = coil.magnetic_field(points)[0]
    error = np.linalg.norm(field - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert error.max() < 1e-5  # measured 7.6e-7 with 64 segments (15 mm or more from the wire)
    assert error[wire_distance[wire_distance > 15] > 25].max() < 1e-9  # measured 1.2e-10


def test_sensitivities_are_smooth_at_1mm():
    coils = loop_coils(8, rings=2)
    rng = np.random.default_rng(2)
    points = head_points(rng, 2000)
    step = rng.normal(size=(2000, 3))
    step /= np.linalg.norm(step, axis=1, keepdims=True)  # 1 mm in a random direction
    here, there = coils.sensitivities(points), coils.sensitivities(points + step)
    change = np.linalg.norm(there - here, axis=0) / np.linalg.norm(here, axis=0)
    assert change.max() < 0.05  # measured 0.032 at most, 0.016 median


@pytest.mark.parametrize("rings", [1, 2])
def test_rotating_the_ring_permutes_the_coils(rings):
    """Turning the array by one coil spacing about z: S_{c+1}(R p) = exp(iφ) S_c(p) (B_x + i B_y turns by φ)."""
    count = 8
    per_ring = count // rings
    angle = 2 * np.pi / per_ring
    coils = loop_coils(count, rings=rings)
    rotation = Rotation.from_rotvec([0.0, 0.0, angle]).as_matrix()
    points = head_points(np.random.default_rng(3), 300)
    here = coils.sensitivities(points)
    rotated = coils.sensitivities(points @ rotation.T)
    shifted = np.array([(c // per_ring) * per_ring + (c % per_ring + 1) % per_ring for c in range(count)])
    np.testing.assert_allclose(rotated[shifted], np.exp(1j * angle) * here, atol=1e-10)
    # Magnitudes differ between coils at a point, so this is a real permutation, not a trivial identity.
    assert np.abs(np.abs(here[0]) - np.abs(here[1])).max() > 0.1


# --------------------------------------------------------------------------------------------- GridCoilMaps
@pytest.mark.parametrize("shape", [(20, 18), (12, 14, 10)])
def test_grid_maps_reproduce_samples_at_grid_points(shape):
    coils = loop_coils(6)
    rotation = Rotation.from_euler("xyz", [0.2, -0.1, 0.4]).as_matrix()
    affine = grid_affine([4.0, 5.0, 3.0], shape, rotation)
    maps = sample_on_grid(coils, shape, affine)
    assert maps.shape == (6, *shape)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    if len(shape) == 2:
        index = np.concatenate([index, np.zeros((*shape, 1))], axis=-1)
    points = index @ affine[:3, :3].T + affine[:3, 3]
    np.testing.assert_allclose(maps, coils.sensitivities(points), atol=1e-12)
    for order in (1, 3):
        grid = GridCoilMaps(maps, affine, order=order)
        np.testing.assert_allclose(grid.sensitivities(points), maps, atol=1e-10)
        # single-precision maps stay single (half the memory) and to single-precision rounding
        single = GridCoilMaps(maps.astype(np.complex64), affine, order=order)
        assert single.maps.dtype == np.complex64 and single._coefficients.dtype == np.float32
        np.testing.assert_allclose(single.sensitivities(points), maps, atol=1e-5 * np.abs(maps).max())


@pytest.mark.parametrize(("order", "bound"), [(3, 1e-3), (1, 1e-2)])
def test_grid_interpolation_of_smooth_maps_is_accurate(order, bound):
    """4 mm grid reaching ≥ 8 mm beyond the points (the mirror boundary bends the spline near the edge)."""
    coils = loop_coils(8)
    shape = (49, 49, 21)
    affine = grid_affine(4.0, shape)
    grid = GridCoilMaps(sample_on_grid(coils, shape, affine), affine, order=order)
    points = head_points(np.random.default_rng(4), 3000, radius=75.0, height=40.0)
    error = np.linalg.norm(grid.sensitivities(points) - coils.sensitivities(points), axis=0)
    relative = error / np.linalg.norm(coils.sensitivities(points), axis=0)
    assert relative.max() < bound  # measured: 5.6e-5 (cubic), 1.9e-3 (linear)


def test_grid_outside_points_take_nearest_edge_and_2d_maps_extend_through_plane():
    rng = np.random.default_rng(5)
    maps = rng.normal(size=(2, 5, 4)) + 1j * rng.normal(size=(2, 5, 4))
    grid = GridCoilMaps(maps, np.eye(4))
    points = np.array([[-10.0, 2.0, 0.0], [2.0, 100.0, 0.0], [3.0, 1.0, 37.0], [1.0, 2.0, -5.0]])
    expected = np.stack([maps[:, 0, 2], maps[:, 2, 3], maps[:, 3, 1], maps[:, 1, 2]], axis=1)
    np.testing.assert_allclose(grid.sensitivities(points), expected, atol=1e-12)


# --------------------------------------------------------------------------------------------- estimation
def synthetic(shape, voxel_mm, seed, noise=1e-3):
    """Object × LoopCoils maps + noise on a centred grid: (images, true maps, object support)."""
    coils = loop_coils(8, rings=2 if len(shape) == 3 else 1)
    affine = grid_affine(voxel_mm, shape)
    true = sample_on_grid(coils, shape, affine)
    centre = (np.array(shape) - 1) / 2
    position = (np.indices(shape).T - centre).T * voxel_mm  # (d, *shape) mm
    radii = (80.0, 65.0, 50.0)[: len(shape)]
    ellipse = sum((p / r) ** 2 for p, r in zip(position, radii, strict=True))
    texture = 1 + 0.5 * np.sin(position[0] / 9) * np.cos(position[1] / 13)
    obj = (ellipse < 1) * texture * np.exp(0.02j * position[0])
    rng = np.random.default_rng(seed)
    images = obj * true + noise * (rng.normal(size=true.shape) + 1j * rng.normal(size=true.shape))
    return images, true, ellipse < 0.9


@pytest.mark.parametrize("method", ["walsh", "espirit"])
@pytest.mark.parametrize(("shape", "voxel"), [((96, 96), 2.0), ((48, 40, 28), 4.0)])
def test_estimated_maps_match_true_maps_up_to_phase(method, shape, voxel):
    images, true, inside = synthetic(shape, voxel, seed=6)
    options = {"walsh": {"kernel": 5}, "espirit": {"kernel": 3, "calibration": 12}} if len(shape) == 3 else {}
    maps = estimate_coil_maps(images, method=method, **options.get(method, {}))
    assert maps.shape == true.shape
    assert cosine(maps, true)[inside].min() > 0.99  # measured ≥ 0.9977 (walsh), ≥ 0.9986 (espirit)
    rss = np.sum(np.abs(maps) ** 2, axis=0)
    support = rss > 0
    np.testing.assert_allclose(rss[support], 1.0, atol=1e-10)
    assert support[inside].all() and not support.all()  # the background is masked


def test_reference_coil_fixes_that_coils_phase():
    images, _, inside = synthetic((64, 64), 3.0, seed=7)
    maps = estimate_coil_maps(images, reference=2)
    assert np.abs(np.angle(maps[2][inside])).max() < 1e-8


def roughness(maps, region):
    """RMS relative change of the maps between neighbouring voxels (first axis) inside ``region``."""
    both = region[1:] & region[:-1]
    difference = np.sum(np.abs(np.diff(maps, axis=1)) ** 2, axis=0)[both].sum()
    return np.sqrt(difference / np.sum(np.abs(maps[:, 1:]) ** 2, axis=0)[both].sum())


@pytest.fixture(scope="module")
def brain_slice():
    if not DATA.exists():
        pytest.skip(f"real data not found at {DATA}")
    images = np.moveaxis(np.load(DATA)["arr_0"], -1, 0)  # (coil, readout, phase)
    rss = np.sqrt(np.sum(np.abs(images) ** 2, axis=0))
    return images, rss, rss > 0.15 * rss.max()


@pytest.mark.parametrize("method", ["walsh", "espirit"])
def test_real_slice_combination_reproduces_rss(brain_slice, method):
    images, rss, brain = brain_slice
    maps = estimate_coil_maps(images, method=method)
    combined = np.sum(maps.conj() * images, axis=0) / np.maximum(np.sum(np.abs(maps) ** 2, axis=0), 1e-30)
    assert np.corrcoef(np.abs(combined)[brain], rss[brain])[0, 1] > 0.98  # measured 0.99996 (walsh), 0.99995 (espirit)
    # Smooth: the raw coil images over the rSoS change ~16% per voxel (anatomy and noise), the maps ~1.5%.
    naive = images / rss * np.exp(-1j * np.angle(images[0]))
    assert roughness(maps, brain) < 0.04
    assert roughness(maps, brain) < 0.25 * roughness(naive, brain)


def test_real_slice_walsh_and_espirit_agree(brain_slice):
    images, _, brain = brain_slice
    walsh = estimate_coil_maps(images, method="walsh")
    espirit = estimate_coil_maps(images, method="espirit")
    assert np.percentile(cosine(walsh, espirit)[brain], 1) > 0.99  # measured 0.998


# --------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("count", "two_d", "rings"), [(8, False, 2), (8, True, 1), (5, False, 1), (2, False, 1)])
def test_head_array_surrounds_the_grid(count, two_d, rings):
    from mrmotion.physics.encoding import ImageGrid

    grid = ImageGrid((30, 40, 1 if two_d else 20), make_transform(np.diag([2.0, 1.5, 3.0]), [5.0, -8.0, 12.0]))
    centre = grid.positions(grid.centre_index)
    array = head_array(grid, count, two_d)
    expected = loop_coils(count, head_radius_mm=1.1 * 30.0 + 20.0, centre_mm=centre, rings=rings)  # 30: y half-extent
    points = centre + np.random.default_rng(0).normal(scale=20.0, size=(50, 3))
    np.testing.assert_array_equal(array.sensitivities(points), expected.sensitivities(points))
    distances = np.linalg.norm((np.asarray(array.centres_mm) - centre)[:, :2], axis=1)
    np.testing.assert_allclose(distances, 53.0)  # loop centres on the cylinder about z through the grid's centre


def test_bad_loop_parameters():
    with pytest.raises(MrMotionError, match="count"):
        loop_coils(0)
    with pytest.raises(MrMotionError, match="count"):
        loop_coils(-3)
    with pytest.raises(MrMotionError, match="two rings need an even"):
        loop_coils(7, rings=2)
    with pytest.raises(MrMotionError, match="rings"):
        loop_coils(8, rings=3)
    with pytest.raises(MrMotionError, match="head_radius_mm"):
        loop_coils(8, head_radius_mm=-1.0)
    with pytest.raises(MrMotionError, match="centre_mm"):
        loop_coils(8, centre_mm=(0.0, 0.0))
    with pytest.raises(MrMotionError, match="radius_mm"):
        LoopCoils([[0.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]], 0.0)
    with pytest.raises(MrMotionError, match="normals"):
        LoopCoils([[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]], 10.0)
    with pytest.raises(MrMotionError, match="centres_mm and normals"):
        LoopCoils([[0.0, 0.0, 0.0]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 10.0)
    with pytest.raises(MrMotionError, match="centres_mm: contains NaN"):
        LoopCoils([[np.nan, 0.0, 0.0]], [[1.0, 0.0, 0.0]], 10.0)


@pytest.mark.parametrize(
    ("points", "match"),
    [
        (np.zeros((4, 2)), r"points_mm: expected shape \(\.\.\., 3\)"),
        (np.zeros((0, 3)), "points_mm: no points"),
        ([[np.inf, 0.0, 0.0]], "points_mm: contains NaN or infinite"),
        ("abc", "points_mm: expected numbers"),
    ],
)
def test_bad_points(points, match):
    grid = GridCoilMaps(np.ones((2, 3, 3)), np.eye(4))
    for coils in (loop_coils(4), grid):
        with pytest.raises(MrMotionError, match=match):
            coils.sensitivities(points)


def test_bad_grid_maps():
    with pytest.raises(MrMotionError, match=r"maps: expected shape \(count, X, Y\)"):
        GridCoilMaps(np.ones((3, 4)), np.eye(4))
    with pytest.raises(MrMotionError, match="maps: empty"):
        GridCoilMaps(np.ones((0, 4, 4)), np.eye(4))
    with pytest.raises(MrMotionError, match="maps: contains NaN"):
        GridCoilMaps(np.full((2, 4, 4), np.nan), np.eye(4))
    with pytest.raises(MrMotionError, match="scanner_from_voxel"):
        GridCoilMaps(np.ones((2, 4, 4)), np.eye(3))
    with pytest.raises(MrMotionError, match="scanner_from_voxel: singular"):
        GridCoilMaps(np.ones((2, 4, 4)), np.diag([1.0, 1.0, 0.0, 1.0]))
    with pytest.raises(MrMotionError, match="order"):
        GridCoilMaps(np.ones((2, 4, 4)), np.eye(4), order=7)
    with pytest.raises(MrMotionError, match="shape"):
        sample_on_grid(loop_coils(4), (4,), np.eye(4))
    with pytest.raises(MrMotionError, match="shape"):
        sample_on_grid(loop_coils(4), (4, 0, 3), np.eye(4))


def test_bad_estimation_input():
    images = synthetic((32, 32), 6.0, seed=8)[0]
    with pytest.raises(MrMotionError, match=r"coil_images: expected shape \(count, X, Y\)"):
        estimate_coil_maps(images[0, 0])
    with pytest.raises(MrMotionError, match="coil_images: empty"):
        estimate_coil_maps(images[:0])
    bad = images.copy()
    bad[0, 3, 3] = np.nan
    with pytest.raises(MrMotionError, match="coil_images: contains NaN"):
        estimate_coil_maps(bad)
    with pytest.raises(MrMotionError, match="coil_images: all values are zero"):
        estimate_coil_maps(np.zeros_like(images))
    with pytest.raises(MrMotionError, match="method"):
        estimate_coil_maps(images, method="sos")
    with pytest.raises(MrMotionError, match="kernel: Walsh box widths must be odd"):
        estimate_coil_maps(images, kernel=4)
    with pytest.raises(MrMotionError, match="kernel: expected a positive int"):
        estimate_coil_maps(images, kernel=(3, 3, 3))
    with pytest.raises(MrMotionError, match="kernel: expected a positive int"):
        estimate_coil_maps(images, kernel=0)
    with pytest.raises(MrMotionError, match="threshold"):
        estimate_coil_maps(images, threshold=1.5)
    with pytest.raises(MrMotionError, match="reference"):
        estimate_coil_maps(images, reference=8)
    with pytest.raises(MrMotionError, match="reference"):
        estimate_coil_maps(images, reference="body")
    with pytest.raises(MrMotionError, match="calibration"):
        estimate_coil_maps(images, method="espirit", calibration=4)
