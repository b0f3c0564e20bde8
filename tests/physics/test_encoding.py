"""The motion-aware encoding operator against slow exact references: direct DFTs, closed-form Fourier transforms."""

import numpy as np
import pytest

from mrmotion.errors import MrMotionError
from mrmotion.geometry.parameters import transform_from_euler, transform_from_rotvec
from mrmotion.geometry.transforms import apply, make_transform
from mrmotion.physics import coil_weighting, encoding, nufft
from mrmotion.physics.coil_weighting import cluster_states
from mrmotion.physics.encoding import ImageGrid, MotionEncoding
from mrmotion.physics.trajectory import MotionTrajectory


class GaussianCoils:
    """Smooth synthetic receive fields (Gaussian magnitude, linear phase), fixed in the scanner."""

    def __init__(self, rng, count):
        self.count = count
        self.centres = rng.normal(size=(count, 3)) * 80
        self.phase = rng.normal(size=(count, 3)) * 0.01

    def sensitivities(self, points):
        points = np.asarray(points, dtype=np.float64)
        centres = self.centres.reshape(self.count, *([1] * (points.ndim - 1)), 3)
        magnitude = np.exp(-np.sum((points[None] - centres) ** 2, axis=-1) / (2 * 120.0**2))
        return magnitude * np.exp(1j * np.einsum("ci,...i->c...", self.phase, points))


def oblique_grid(shape, rng):
    affine = transform_from_euler(rng.uniform(-40, 40, 3), rng.normal(size=3) * 5) @ np.diag([2.0, 2.5, 3.0, 1.0])
    affine[:3, 3] -= affine[:3, :3] @ (np.array(shape) // 2)
    return ImageGrid(shape, affine)


def random_motion(rng, states, end_s, scale_deg=3.0, scale_mm=3.0):
    times = np.sort(rng.uniform(0, end_s, states))
    times[0] = 0.0
    moves = transform_from_euler(rng.normal(size=(states, 3)) * scale_deg, rng.normal(size=(states, 3)) * scale_mm)
    return MotionTrajectory(times, moves, end_s=end_s)


def brute_force(grid, rho, k, times, motion, coils):
    """y_c(k) = Σ_r C_c(r) ρ_A(r) e^{−ik·r} summed over the moved voxels r = A r(u), one sample at a time."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), -1).reshape(-1, len(grid.shape))
    positions = grid.positions(index)
    states = motion.state_index(times)
    out = np.zeros((coils.count, len(k)), dtype=complex)
    for m in range(len(k)):
        transform = motion.transforms[states[m]]
        moved = apply(transform, positions)
        weight = abs(np.linalg.det(transform[:3, :3]))
        out[:, m] = weight * (coils.sensitivities(moved) * rho.reshape(-1)) @ np.exp(-1j * moved @ k[m])
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_exact_coil_model_equals_direct_dft_of_moved_object(seed):
    rng = np.random.default_rng(seed)
    grid = oblique_grid((10, 9, 8), rng)
    rho = rng.normal(size=grid.shape) + 1j * rng.normal(size=grid.shape)
    k, times = rng.normal(size=(200, 3)) * 0.5, rng.uniform(0, 10, 200)
    motion, coils = random_motion(rng, 6, 10.0), GaussianCoils(rng, 4)
    reference = brute_force(grid, rho, k, times, motion, coils)
    exact = MotionEncoding(grid, k, times, motion, coils, eps=1e-10)
    assert np.abs(exact.forward(rho) - reference).max() <= 1e-4 * np.abs(reference).max()
    # At full resolution and without truncation the formula is exact to rounding.
    full = MotionEncoding(
        grid, k, times, motion, coils, eps=1e-12, coarse_spacing_mm=0.5, rank_tol=1e-14, cluster_tol_mm=0.0
    )
    assert np.abs(full.forward(rho) - reference).max() <= 1e-9 * np.abs(reference).max()
    # "Coils move with the head" is an approximation: measurably worse.
    moving = MotionEncoding(grid, k, times, motion, coils, coil_model="moving", eps=1e-10)
    assert np.abs(moving.forward(rho) - reference).max() > 1e-2 * np.abs(reference).max()


def test_affine_motion_and_2d_grid():
    rng = np.random.default_rng(4)
    affine = make_transform(np.diag([1.5, 2.0, 3.0]), [-6.0, -8.0, 12.0])
    grid = ImageGrid((9, 8), affine)
    rho = rng.normal(size=grid.shape) + 0j
    k = np.concatenate([rng.normal(size=(50, 2)) * 0.6, np.zeros((50, 1))], axis=1)
    times = np.linspace(0, 1, 50)
    stretch = make_transform(np.array([[1.05, 0.02, 0], [0, 0.97, 0], [0, 0, 1.0]]), [1.0, -2.0, 0.0])
    motion = MotionTrajectory(np.array([0.0, 0.5]), np.stack([np.eye(4), stretch]), end_s=1.0, rigid=False)
    coils = GaussianCoils(rng, 2)
    reference = brute_force(grid, rho, k, times, motion, coils)
    encoded = MotionEncoding(grid, k, times, motion, coils, eps=1e-10).forward(rho)
    assert np.abs(encoded - reference).max() <= 1e-4 * np.abs(reference).max()


def five_state_scan(rng):
    """A random object on an oblique 9×8×7 grid, 150 random samples over 10 s, 5 random poses, 3 coils: (grid, rho,
    k, times, motion, coils)."""
    grid = oblique_grid((9, 8, 7), rng)
    rho = rng.normal(size=grid.shape) + 1j * rng.normal(size=grid.shape)
    k, times = rng.normal(size=(150, 3)) * 0.5, rng.uniform(0, 10, 150)
    return grid, rho, k, times, random_motion(rng, 5, 10.0), GaussianCoils(rng, 3)


@pytest.mark.parametrize("tolerances", [(0.0,), (2.0,), (np.inf,)])
def test_every_split_into_groups_is_exact(tolerances, monkeypatch):
    """Whatever the split of the states into low-rank groups (each cluster alone, some together, all together), the
    operator equals the direct DFT and its adjoint is exact."""
    monkeypatch.setattr(coil_weighting, "GROUP_TOLERANCES_MM", tolerances)
    rng = np.random.default_rng()
    grid, rho, k, times, motion, coils = five_state_scan(rng)
    operator = MotionEncoding(
        grid, k, times, motion, coils, eps=1e-12, coarse_spacing_mm=0.5, rank_tol=1e-14, cluster_tol_mm=0.0
    )
    expected_groups = {(0.0,): operator.clusters, (np.inf,): 1}.get(tolerances)
    if expected_groups is not None:
        assert len(operator._groups) == expected_groups
    reference = brute_force(grid, rho, k, times, motion, coils)
    assert np.abs(operator.forward(rho) - reference).max() <= 1e-9 * np.abs(reference).max()
    y = rng.normal(size=(operator.coils, 150)) + 1j * rng.normal(size=(operator.coils, 150))
    left, right = np.vdot(operator.forward(rho), y), np.vdot(rho, operator.adjoint(y))
    assert abs(left - right) <= 1e-9 * abs(right)


def test_many_nufft_calls_on_a_large_grid_plan_the_ffts_by_measuring_and_stay_exact(monkeypatch):
    """An operator whose groups send at least MEASURE_IMAGES images through the NUFFT per application on a grid above
    MEASURE_VOXELS (both lowered to this small grid) plans with FFTW_MEASURE and, moved from group to group (one per
    cluster), still equals the direct DFT; one uniform coil (1 image) plans by estimate."""
    monkeypatch.setattr(nufft, "MEASURE_VOXELS", 100)
    monkeypatch.setattr(nufft, "MEASURE_IMAGES", 4)  # one group of 3 coils, 2 per call, is enough: 4 images
    monkeypatch.setattr(coil_weighting, "GROUP_TOLERANCES_MM", (0.0,))  # each cluster its own group
    rng = np.random.default_rng()
    grid, rho, k, times, motion, coils = five_state_scan(rng)
    operator = MotionEncoding(
        grid, k, times, motion, coils, eps=1e-12, coarse_spacing_mm=0.5, rank_tol=1e-14, cluster_tol_mm=0.0, chunk=2
    )
    reference = brute_force(grid, rho, k, times, motion, coils)
    assert np.abs(operator.forward(rho) - reference).max() <= 1e-9 * np.abs(reference).max()
    assert operator._pair._options["fftw"] == nufft.FFTW_FLAGS["measure"]
    assert operator._planned_ahead  # 5 states × 3 coils (2 per call: 4 images each) predicted ≥ 4 images
    single = MotionEncoding(grid, k, times, motion, None, eps=1e-12)
    single.forward(rho)
    assert single._pair._options["fftw"] == nufft.FFTW_FLAGS["estimate"]
    assert not single._planned_ahead


def away_and_back(rng, back_mm: float):
    """A random object scanned in poses A, B, then A moved by ``back_mm`` (x), over unequal blocks of samples in
    time order: (grid, rho, k, times, motion, coils)."""
    grid = oblique_grid((8, 7, 6), rng)
    rho = rng.normal(size=grid.shape) + 1j * rng.normal(size=grid.shape)
    k, times = rng.normal(size=(180, 3)) * 0.5, np.sort(rng.uniform(0, 9, 180))
    a = transform_from_euler([4.0, -3.0, 2.0], [2.0, -1.0, 3.0])
    b = transform_from_euler([-6.0, 5.0, 1.0], [-3.0, 2.0, -2.0])
    back = make_transform(np.eye(3), [back_mm, 0.0, 0.0]) @ a
    motion = MotionTrajectory(np.array([0.0, 2.0, 7.0]), np.stack([a, b, back]), end_s=9.0)
    return grid, rho, k, times, motion, GaussianCoils(rng, 3)


def test_a_group_of_clusters_that_are_not_consecutive_stays_exact(monkeypatch):
    """Poses A, B, then A' (0.3 mm from A): three clusters, and the groups {A, A'} and {B}. The samples are sorted by
    group, so each cluster's block must be counted in the groups' order, not in the clusters' (a CI failure of the
    random-split test above: the blocks were shifted whenever a group joined clusters that were not consecutive)."""
    monkeypatch.setattr(coil_weighting, "GROUP_TOLERANCES_MM", (2.0,))
    rng = np.random.default_rng()
    grid, rho, k, times, motion, coils = away_and_back(rng, 0.3)
    operator = MotionEncoding(
        grid, k, times, motion, coils, eps=1e-12, coarse_spacing_mm=0.5, rank_tol=1e-14, cluster_tol_mm=0.0
    )
    assert [list(group.clusters) for group in operator._groups] == [[0, 2], [1]]
    reference = brute_force(grid, rho, k, times, motion, coils)
    assert np.abs(operator.forward(rho) - reference).max() <= 1e-9 * np.abs(reference).max()
    y = rng.normal(size=(operator.coils, len(k))) + 1j * rng.normal(size=(operator.coils, len(k)))
    left, right = np.vdot(operator.forward(rho), y), np.vdot(rho, operator.adjoint(y))
    assert abs(left - right) <= 1e-9 * abs(right)


@pytest.mark.parametrize("max_blocks", [0, 4096])
def test_a_pose_the_head_returns_to_shares_its_cluster_and_stays_exact(max_blocks, monkeypatch):
    """Poses A, B, then A again, in acquisition (time) order: the last state joins A's cluster, so the samples sorted
    by cluster are no longer sorted by state. Every sample must still get its own state's coordinate and phase, with
    the reordering applied as block copies or (``MAX_ORDER_BLOCKS`` 0) through an index array; the adjoint too."""
    monkeypatch.setattr(encoding, "MAX_ORDER_BLOCKS", max_blocks)
    rng = np.random.default_rng()
    grid, rho, k, times, motion, coils = away_and_back(rng, 0.0)
    operator = MotionEncoding(grid, k, times, motion, coils, eps=1e-12, coarse_spacing_mm=0.5, rank_tol=1e-14)
    assert operator.clusters == 2 and operator.order is not None
    assert (operator.order._index is None) == (max_blocks > 0)
    reference = brute_force(grid, rho, k, times, motion, coils)
    assert np.abs(operator.forward(rho) - reference).max() <= 1e-9 * np.abs(reference).max()
    y = rng.normal(size=reference.shape) + 1j * rng.normal(size=reference.shape)
    assert np.vdot(operator.forward(rho), y) == pytest.approx(np.vdot(rho, operator.adjoint(y)), rel=1e-10)


@pytest.mark.parametrize("max_blocks", [0, 4096])
def test_sample_order_equals_fancy_indexing(max_blocks, monkeypatch):
    """Runs of a given order sorted stably by key (blocks that continue one another merge): take and put equal an
    argsort's gather and scatter, along any axis."""
    monkeypatch.setattr(encoding, "MAX_ORDER_BLOCKS", max_blocks)
    rng = np.random.default_rng()
    bounds = np.unique(np.r_[0, rng.choice(np.arange(1, 500), 40, replace=False), 500])
    keys = rng.integers(0, 6, len(bounds) - 1)
    run_order = np.argsort(keys, kind="stable")
    order = encoding.SampleOrder(bounds[:-1][run_order], bounds[1:][run_order])
    index = np.argsort(np.repeat(keys, np.diff(bounds)), kind="stable")
    values = rng.normal(size=(3, 500)) + 1j * rng.normal(size=(3, 500))
    assert order.count == 500 and len(order.starts) <= len(keys)
    assert np.array_equal(order.take(values), values[:, index])
    back = np.empty_like(values)
    back[:, index] = values
    assert np.array_equal(order.put(values), back)
    assert np.array_equal(order.put(order.take(values)), values)
    # adding a range of sorted samples into an array in the given order, e.g. one cluster's samples
    for first, last in ((0, 500), (0, 1), (137, 311), (499, 500)):
        given, expected = np.zeros((3, 500), complex), np.zeros((3, 500), complex)
        order.add_to(given, first, values[:, first:last])
        expected[:, index[first:last]] += values[:, first:last]
        assert np.array_equal(given, expected)


class UniformCoil:
    count = 1

    def sensitivities(self, points):
        return np.ones((1, *np.asarray(points).shape[:-1]), dtype=complex)


@pytest.mark.parametrize("in_time_order", [True, False])
def test_one_uniform_coil_with_states_no_sample_sees_stays_exact(in_time_order):
    """coils=None takes its own path (the samples times the phases); a state between two samples is dropped."""
    rng = np.random.default_rng()
    grid = oblique_grid((8, 7, 9), rng)
    rho = rng.normal(size=grid.shape) + 1j * rng.normal(size=grid.shape)
    times = np.concatenate([rng.uniform(0, 3, 60), rng.uniform(4, 9, 90)])
    times = np.sort(times) if in_time_order else rng.permutation(times)
    k = rng.normal(size=(len(times), 3)) * 0.5
    moves = transform_from_euler(rng.normal(size=(4, 3)) * 4, rng.normal(size=(4, 3)) * 3)
    motion = MotionTrajectory(np.array([0.0, 3.2, 3.6, 4.0]), moves, end_s=9.0)  # 2 states unseen
    operator = MotionEncoding(grid, k, times, motion, None, eps=1e-12)
    assert operator.states == 2 and (operator.order is None) == in_time_order
    reference = brute_force(grid, rho, k, times, motion, UniformCoil())
    assert np.abs(operator.forward(rho) - reference).max() <= 1e-9 * np.abs(reference).max()


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_coordinates_computed_in_chunks_that_cut_through_runs_of_one_state_stay_exact(chunk, monkeypatch):
    """The per-sample coordinates and phases are made chunk by chunk on threads: chunks that end inside a run of
    one state, or hold many runs, give the brute-force samples (affine motion included: |det| per sample)."""
    monkeypatch.setattr(encoding, "AUGMENTED_CHUNK", chunk)
    rng = np.random.default_rng()
    grid = oblique_grid((7, 8, 6), rng)
    rho = rng.normal(size=grid.shape) + 1j * rng.normal(size=grid.shape)
    times = np.sort(rng.uniform(0, 10, 300))
    k = rng.normal(size=(len(times), 3)) * 0.5
    motion = random_motion(rng, 9, 10.0)
    scaled = motion.transforms.copy()
    scaled[:, :3, :3] *= rng.uniform(0.9, 1.1, (len(scaled), 1, 1))
    motion = MotionTrajectory(motion.times_s, scaled, end_s=10.0, rigid=False)
    operator = MotionEncoding(grid, k, times, motion, None, eps=1e-12)
    reference = brute_force(grid, rho, k, times, motion, UniformCoil())
    assert np.abs(operator.forward(rho) - reference).max() <= 1e-9 * np.abs(reference).max()
    # samples out of time order and a pose the head returns to: sorted runs read their k where it is given
    grid, rho, k, times, motion, coils = away_and_back(rng, 0.0)
    shuffled = rng.permutation(len(times))
    options = {"eps": 1e-12, "coarse_spacing_mm": 0.5, "rank_tol": 1e-14}
    operator = MotionEncoding(grid, k[shuffled], times[shuffled], motion, coils, **options)
    assert operator.order is not None
    reference = brute_force(grid, rho, k[shuffled], times[shuffled], motion, coils)
    assert np.abs(operator.forward(rho) - reference).max() <= 1e-9 * np.abs(reference).max()


def test_groups_follow_the_spread_of_the_poses():
    """Close poses share one group (their weightings compress to about one rank per coil); poses far apart get
    a group each (compressing them together would not save NUFFTs but would cost every sample all components)."""
    rng = np.random.default_rng(4)
    grid = ImageGrid((64, 64, 64), np.diag([3.0, 3.0, 3.0, 1.0]) @ make_transform(np.eye(3), [-32.0, -32.0, -32.0]))
    coils = GaussianCoils(rng, 4)
    for scale_deg, scale_mm, expected in ((1e-4, 1e-4, 1), (20.0, 30.0, 6)):
        poses = transform_from_euler(rng.normal(size=(6, 3)) * scale_deg, rng.normal(size=(6, 3)) * scale_mm)
        weights, _ = coil_weighting.coarse_weights(coils, grid, poses, 8.0)
        groups = coil_weighting.plan_groups(grid, poses, weights, np.full(6, 40_000), 1e-5)
        assert len(groups) == expected
        assert sorted(np.concatenate([g.clusters for g in groups])) == list(range(6))
        approximation = np.concatenate([g.weights_u @ g.coarse_v for g in groups])
        order = np.concatenate([g.clusters for g in groups])
        assert np.abs(approximation - weights[order]).max() <= 1e-4 * np.abs(weights).max()


def test_gaussian_phantom_against_closed_form_fourier_transform():
    """Sampled Gaussian blobs (σ ≥ 2.5 voxels) moved rigidly: the simulated k-space equals the closed-form
    continuous Fourier transform exp(−i d·k) ρ̂(Rᵀk) divided by the voxel volume."""
    rng = np.random.default_rng(5)
    shape, voxel = (32, 32, 32), 2.0
    grid = ImageGrid(shape, make_transform(np.eye(3) * voxel, -(np.array(shape) // 2) * voxel))
    centres, widths = rng.normal(size=(3, 3)) * 4, rng.uniform(5.0, 7.0, 3)
    positions = grid.positions(np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1))
    rho = sum(np.exp(-np.sum((positions - c) ** 2, -1) / (2 * w**2)) for c, w in zip(centres, widths, strict=True))
    motion = MotionTrajectory.constant(transform_from_euler([8.0, -5.0, 12.0], [3.0, -2.0, 1.5]))
    k = rng.uniform(-0.5, 0.5, size=(300, 3))
    simulated = MotionEncoding(grid, k, np.zeros(300), motion, None, eps=1e-10).forward(rho)[0]
    rotation, shift = motion.transforms[0, :3, :3], motion.transforms[0, :3, 3]
    q = k @ rotation  # Rᵀk per row
    closed = (
        sum(
            (2 * np.pi * w**2) ** 1.5 * np.exp(-(w**2) * np.sum(q**2, -1) / 2) * np.exp(-1j * q @ c)
            for c, w in zip(centres, widths, strict=True)
        )
        * np.exp(-1j * k @ shift)
        / voxel**3
    )
    assert np.abs(simulated - closed).max() <= 1e-4 * np.abs(closed).max()


def test_zero_motion_is_the_plain_fft_and_translation_a_phase_ramp():
    rng = np.random.default_rng(6)
    shape = (8, 6, 5)
    voxel = np.array([1.0, 2.0, 3.0])
    grid = ImageGrid(shape, make_transform(np.diag(voxel), -(np.array(shape) // 2) * voxel))
    rho = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    k = 2 * np.pi * (index - np.array(shape) // 2) / (np.array(shape) * voxel)
    still = MotionEncoding(grid, k, np.zeros(len(k)), None, None, eps=1e-12).forward(rho)[0]
    fft = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(rho)))
    np.testing.assert_allclose(still.reshape(shape), fft, atol=1e-9 * np.abs(fft).max())
    shift = np.array([1.3, -2.2, 0.7])
    moved = MotionEncoding(
        grid, k, np.zeros(len(k)), MotionTrajectory.constant(make_transform(np.eye(3), shift)), None, eps=1e-12
    ).forward(rho)[0]
    np.testing.assert_allclose(moved, still * np.exp(-1j * k @ shift), atol=1e-9 * np.abs(fft).max())


def test_adjoint_dot_product():
    rng = np.random.default_rng(7)
    grid = oblique_grid((12, 10, 6), rng)
    k, times = rng.normal(size=(400, 3)) * 0.6, rng.uniform(0, 5, 400)
    for model in ("exact", "moving"):
        operator = MotionEncoding(grid, k, times, random_motion(rng, 8, 5.0), GaussianCoils(rng, 3), coil_model=model)
        x = rng.normal(size=grid.shape) + 1j * rng.normal(size=grid.shape)
        y = rng.normal(size=(operator.coils, 400)) + 1j * rng.normal(size=(operator.coils, 400))
        left, right = np.vdot(operator.forward(x), y), np.vdot(x, operator.adjoint(y))
        assert abs(left - right) <= 1e-6 * abs(right)


@pytest.mark.parametrize(
    ("shape", "model", "coil_count", "affine"),
    [((11, 8, 6), "moving", 4, False), ((9, 12), "moving", 3, True), ((10, 7, 5), "exact", 0, True)],
)
def test_normal_operator_of_one_coil_weighting_is_a_convolution_equal_to_adjoint_of_forward(
    shape, model, coil_count, affine
):
    """With one weighting for all samples (coils moving with the head, one uniform coil), EᴴE is applied as a
    Toeplitz convolution: it equals Eᴴ(E x) for random motion (affine: |det| ≠ 1 amplitudes), odd and even sizes."""
    rng = np.random.default_rng()
    grid = oblique_grid(shape, rng) if len(shape) == 3 else ImageGrid(shape, np.diag([2.0, 1.5, 1.0, 1.0]))
    k, times = rng.normal(size=(500, 3)) * 0.7, rng.uniform(0, 5, 500)
    if len(shape) == 2:
        k[:, 2] = 0.0
    motion = random_motion(rng, 6, 5.0)
    if affine:
        scales = np.diag([1.1, 0.9, 1.05, 1.0])
        motion = MotionTrajectory(motion.times_s, motion.transforms @ scales, end_s=5.0, rigid=False)
    coils = GaussianCoils(rng, coil_count) if coil_count else None
    operator = MotionEncoding(grid, k, times, motion, coils, coil_model=model, eps=1e-12)
    assert operator.uses_toeplitz
    x = rng.normal(size=grid.shape) + 1j * rng.normal(size=grid.shape)
    expected = operator.adjoint(operator.forward(x))
    got = operator.normal(x)
    assert np.linalg.norm(got - expected) <= 1e-9 * np.linalg.norm(expected)
    with pytest.raises(MrMotionError, match="does not match"):
        operator.normal(np.zeros((3, 3)))


def test_several_coil_weightings_use_forward_then_adjoint():
    rng = np.random.default_rng(3)
    grid = oblique_grid((8, 7, 6), rng)
    k, times = rng.normal(size=(300, 3)) * 0.6, rng.uniform(0, 5, 300)
    operator = MotionEncoding(grid, k, times, random_motion(rng, 5, 5.0, scale_deg=20), GaussianCoils(rng, 2))
    assert operator.clusters > 1 and not operator.uses_toeplitz
    x = rng.normal(size=grid.shape) + 1j * rng.normal(size=grid.shape)
    assert np.allclose(operator.normal(x), operator.adjoint(operator.forward(x)))


def test_clustering_shares_coil_weightings_only_between_close_states():
    rng = np.random.default_rng(8)
    grid = oblique_grid((10, 10, 10), rng)
    base = transform_from_euler([2.0, 0.0, 0.0], [1.0, 0.0, 0.0])
    nearly = transform_from_euler([2.0, 0.0, 0.0], [1.01, 0.0, 0.0])
    far = transform_from_euler([2.0, 0.0, 0.0], [3.0, 0.0, 0.0])
    labels, representatives = cluster_states(grid, np.stack([base, nearly, far, base]), tol_mm=0.05)
    assert list(labels) == [0, 0, 1, 0] and list(representatives) == [0, 2]


def test_a_limit_on_clusters_stops_the_clustering_early_and_changes_nothing_when_it_fits():
    rng = np.random.default_rng(5)
    grid = oblique_grid((6, 6, 6), rng)
    transforms = _walk(rng, 300)
    labels, representatives = cluster_states(grid, transforms, 3.0)
    same = cluster_states(grid, transforms, 3.0, limit=len(representatives))
    assert np.array_equal(same[0], labels) and np.array_equal(same[1], representatives)
    stopped = cluster_states(grid, transforms, 3.0, limit=len(representatives) - 2)[1]
    assert np.array_equal(stopped, representatives[: len(representatives) - 1])


def test_a_cluster_is_weighted_at_its_central_state():
    """A drift through one cluster: the coil weighting is evaluated at the middle of it (weighted by samples), not
    at the state that opened the cluster."""
    grid = oblique_grid((8, 8, 8), np.random.default_rng(3))
    drift = np.stack([transform_from_euler([0.0, 0.0, 0.0], [0.1 * i, 0.0, 0.0]) for i in range(11)])
    labels, representatives = cluster_states(grid, drift, tol_mm=5.0)
    assert list(representatives) == [0] and np.all(labels == 0)
    assert list(coil_weighting.central_states(grid, drift, labels, np.ones(11))) == [5]
    heavy_end = np.r_[np.ones(10), 1000.0]  # most samples at the last pose
    assert list(coil_weighting.central_states(grid, drift, labels, heavy_end)) == [10]


def test_long_motion_fills_the_cluster_cap(monkeypatch):
    """More poses than MAX_CLUSTERS: the tolerance is the smallest (to 1/64 of its doubling step) that fits, so
    the cap is used, not a quarter of it."""
    import mrmotion.physics.encoding as encoding

    monkeypatch.setattr(encoding, "MAX_CLUSTERS", 12)
    rng = np.random.default_rng(4)
    grid = oblique_grid((6, 6, 6), rng)
    states = 200
    walk = np.cumsum(rng.normal(size=(states, 3)), axis=0)
    motion = MotionTrajectory(np.linspace(0, 1, states), transform_from_euler(walk, walk), end_s=1.01)
    k, times = rng.normal(size=(400, 3)), np.linspace(0, 1, 400)
    operator = MotionEncoding(grid, k, times, motion, coils=GaussianCoils(rng, 2), eps=1e-9)
    assert 9 <= operator.clusters <= 12
    finer = cluster_states(grid, motion.transforms, operator.cluster_tol_mm * 0.95)[1]
    assert len(finer) > 12
    # a cap given to the operator instead of the module's default
    for cap in (1, 3):
        assert MotionEncoding(grid, k, times, motion, GaussianCoils(rng, 2), max_clusters=cap).clusters <= cap
    for bad in (0, -2, 2.5, True, "8"):
        with pytest.raises(MrMotionError, match="max_clusters"):
            MotionEncoding(grid, k, times, motion, GaussianCoils(rng, 2), max_clusters=bad)


def _walk(rng, states, step_deg=0.8, step_mm=0.5):
    degrees = np.cumsum(rng.normal(size=(states, 3)) * step_deg, axis=0)
    return transform_from_euler(degrees, np.cumsum(rng.normal(size=(states, 3)) * step_mm, axis=0))


def test_refined_clusters_are_closer_to_their_states_and_their_poses_are_the_mean_transforms():
    """k-means from the greedy clusters: every label used, each pose the sample-weighted mean of its states'
    transforms, and the weighted mean squared corner distance to the pose lower than the greedy clusters' central
    states give (k-means cannot raise it)."""
    rng = np.random.default_rng()
    grid = oblique_grid((8, 7, 6), rng)
    transforms, weights = _walk(rng, 150), rng.integers(1, 20, 150).astype(float)
    greedy = cluster_states(grid, transforms, 6.0)[0]
    labels, poses = coil_weighting.refine_clusters(grid, transforms, greedy, weights)
    assert labels.shape == (150,) and set(labels) == set(range(len(poses)))
    for cluster, pose in enumerate(poses):
        members = labels == cluster
        assert np.allclose(pose, np.average(transforms[members], axis=0, weights=weights[members]))

    def weighted_square(labels, poses):
        moved = grid.corners()[None] @ transforms[:, :3, :3].transpose(0, 2, 1) + transforms[:, None, :3, 3]
        at = grid.corners()[None] @ poses[labels, :3, :3].transpose(0, 2, 1) + poses[labels, None, :3, 3]
        return np.sum(weights * np.mean(np.sum((moved - at) ** 2, axis=-1), axis=-1))

    central = transforms[coil_weighting.central_states(grid, transforms, greedy, weights)]
    assert weighted_square(labels, poses) < weighted_square(greedy, central)
    distances = coil_weighting.pose_distances(grid, transforms, labels, poses)
    assert distances.shape == (150,) and np.all(distances >= 0)


def test_refinement_keeps_affine_motion_affine_and_drops_emptied_clusters():
    rng = np.random.default_rng(11)
    grid = oblique_grid((6, 6, 6), rng)
    scales = np.stack([np.diag([1.0 + 0.01 * i, 1.0, 1.0 - 0.005 * i, 1.0]) for i in range(40)])
    labels = np.r_[np.zeros(20, int), np.full(20, 5)]  # label numbers with gaps
    refined, poses = coil_weighting.refine_clusters(grid, scales, labels, np.ones(40))
    assert set(refined) <= set(range(len(poses))) and len(poses) <= 2
    assert np.allclose(poses[:, 3], [0, 0, 0, 1]) and not np.allclose(poses[0, :3, :3], np.eye(3))
    # a state equal to its cluster's pose is at distance 0
    one = coil_weighting.refine_clusters(grid, scales[:1], np.zeros(1, int), np.ones(1))
    assert coil_weighting.pose_distances(grid, scales[:1], *one)[0] == pytest.approx(0.0, abs=1e-9)


def test_capped_clusters_refined_by_k_means_make_a_smaller_coil_error(monkeypatch):
    """Long motion (more poses than MAX_CLUSTERS): the k-space against one coil weighting per state is closer with the
    fitted clusters than with the greedy clusters' central states, and the reported distances are the largest and
    the rms corner distance of a state from the pose its coils were evaluated at."""
    rng = np.random.default_rng(21)
    grid = oblique_grid((8, 7, 6), rng)
    states = 120
    motion = MotionTrajectory(np.linspace(0, 1, states), _walk(rng, states), end_s=1.01)
    k, times = rng.normal(size=(3000, 3)) * 0.5, np.linspace(0, 1, 3000)
    coils, image = GaussianCoils(rng, 3), rng.normal(size=grid.shape)
    monkeypatch.setattr(encoding, "MAX_CLUSTERS", 100_000)
    reference = MotionEncoding(grid, k, times, motion, coils, eps=1e-10, cluster_tol_mm=0.0, rank_tol=1e-12)
    monkeypatch.setattr(encoding, "MAX_CLUSTERS", 12)
    fitted = MotionEncoding(grid, k, times, motion, coils, eps=1e-10)

    def greedy_as_made(grid, transforms, weights, count, starts):
        return coil_weighting.central_poses(grid, transforms, starts[0], weights)

    monkeypatch.setattr(encoding, "fit_clusters", greedy_as_made)
    greedy = MotionEncoding(grid, k, times, motion, coils, eps=1e-10)
    expected = reference.forward(image)
    errors = [np.linalg.norm(op.forward(image) - expected) / np.linalg.norm(expected) for op in (fitted, greedy)]
    assert fitted.clusters <= 12 and errors[0] < 0.85 * errors[1]
    assert fitted.coil_pose_distance_mm > fitted.coil_pose_rms_mm > 0
    assert reference.coil_pose_distance_mm == reference.coil_pose_rms_mm == 0.0


def test_capped_coil_poses_placed_by_signal_energy_make_a_smaller_coil_error(monkeypatch):
    """A smooth object's signal is near the k-space centre; with the samples ordered by |k| (centric), the states
    seen early hold most of it. Weighting the states by the expected energy of their samples
    (coil_weighting.expected_energy of the image) puts the capped coil poses there: a smaller k-space error than
    weighting every sample the same, at the same cap. An all-zero energy is the same as none."""
    rng = np.random.default_rng(4)
    grid = oblique_grid((10, 9, 8), rng)
    states = 150
    motion = MotionTrajectory(np.linspace(0, 1, states), _walk(rng, states), end_s=1.01)
    k = rng.normal(size=(4000, 3)) * 0.6
    k = k[np.argsort(np.linalg.norm(k, axis=1))]
    times = np.linspace(0, 1, len(k))
    position = np.stack(np.meshgrid(*(np.arange(n) - (n - 1) / 2 for n in grid.shape), indexing="ij"))
    image = np.exp(-np.sum(position**2, axis=0) / (2 * 1.5**2)) * (1 + 0.1 * rng.normal(size=grid.shape))
    coils = GaussianCoils(rng, 3)
    monkeypatch.setattr(encoding, "MAX_CLUSTERS", 100_000)
    reference = MotionEncoding(grid, k, times, motion, coils, eps=1e-10, cluster_tol_mm=0.0, rank_tol=1e-12)
    monkeypatch.setattr(encoding, "MAX_CLUSTERS", 6)
    energy = coil_weighting.expected_energy(image, grid, k)
    weighted = MotionEncoding(grid, k, times, motion, coils, eps=1e-10, sample_energy=energy)
    even = MotionEncoding(grid, k, times, motion, coils, eps=1e-10)
    zero = MotionEncoding(grid, k, times, motion, coils, eps=1e-10, sample_energy=np.zeros(len(k)))
    expected = reference.forward(image)
    errors = [np.linalg.norm(op.forward(image) - expected) / np.linalg.norm(expected) for op in (weighted, even)]
    assert weighted.clusters <= 6 and errors[0] < 0.7 * errors[1]
    assert np.array_equal(zero.forward(image), even.forward(image))


def test_sample_energy_bad_values():
    rng = np.random.default_rng(2)
    grid = oblique_grid((6, 6, 6), rng)
    k, times = rng.normal(size=(10, 3)), np.linspace(0, 1, 10)
    for bad, message in (
        (np.ones(9), r"one value per sample, \(10,\)"),
        (np.full(10, np.nan), "finite"),
        (np.r_[-1.0, np.ones(9)], "≥ 0"),
    ):
        with pytest.raises(MrMotionError, match=message):
            MotionEncoding(grid, k, times, sample_energy=bad)


def test_expected_energy_follows_a_gaussian_spectrum(monkeypatch):
    """An isotropic Gaussian of s.d. σ mm has |ρ̂(k)|² ∝ exp(−σ²|k|²) (k in rad/mm): the shell means of its DFT
    follow it on an anisotropic, oblique grid, whatever the direction of k; k beyond the grid's frequencies gets the
    outermost shell's value."""
    rng = np.random.default_rng(8)
    linear = transform_from_rotvec(rng.normal(size=3))[:3, :3] @ np.diag([1.5, 2.0, 2.5])
    shape = (40, 32, 28)
    grid = ImageGrid(shape, make_transform(linear, -linear @ ((np.array(shape) - 1) / 2)))
    sigma = 6.0
    points = grid.positions(np.indices(shape).reshape(3, -1).T)
    squared = np.sum(points**2, axis=-1).reshape(shape)
    image = np.exp(-squared / (2 * sigma**2))
    radius = np.r_[0.0, np.linspace(0.1, 0.35, 6)]  # from about the DFT's frequency spacing (0.1 rad/mm) on
    k = radius[:, None] * transform_from_rotvec(rng.normal(size=3))[:3, :3][0][None]
    energy = coil_weighting.expected_energy(image, grid, k)
    assert np.allclose(energy / energy[0], np.exp(-(sigma**2) * radius**2), rtol=0.1, atol=1e-4)
    assert np.all(np.diff(energy) < 0)
    far = coil_weighting.expected_energy(image, grid, np.array([[10.0, 0, 0], [20.0, 0, 0]]))
    assert far[0] == far[1] and far[0] < 1e-6 * energy[0]
    # a large image is block-averaged first (here 3³ blocks): the same profile where the energy is
    monkeypatch.setattr(coil_weighting, "SPECTRUM_VOXELS", 2000)
    coarse = coil_weighting.expected_energy(image, grid, k)
    assert np.allclose(coarse[:4] / coarse[0], energy[:4] / energy[0], rtol=0.25)


def test_fitted_clusters_are_never_worse_than_their_start():
    """fit_clusters keeps the least weighted squared corner distance over its starts and k-means++ seedings: never
    above the refined start's; reproducible (seeded); at most the cap of clusters."""
    rng = np.random.default_rng(13)
    grid = oblique_grid((6, 6, 6), rng)
    transforms = _walk(rng, 200)
    weights = rng.random(200) ** 4
    start, _ = cluster_states(grid, transforms, 3.0)
    start = np.minimum(start, 9)
    labels, poses = coil_weighting.fit_clusters(grid, transforms, weights, 10, [start])
    again = coil_weighting.fit_clusters(grid, transforms, weights, 10, [start])
    assert np.array_equal(labels, again[0]) and np.array_equal(poses, again[1]) and len(poses) <= 10
    refined = coil_weighting.refine_clusters(grid, transforms, start, weights)
    cost = coil_weighting.cluster_cost(grid, transforms, labels, poses, weights)
    assert cost <= coil_weighting.cluster_cost(grid, transforms, *refined, weights)


def test_bad_inputs():
    rng = np.random.default_rng(9)
    grid = oblique_grid((6, 6, 6), rng)
    k, times = rng.normal(size=(10, 3)), np.linspace(0, 1, 10)
    with pytest.raises(MrMotionError, match="coil_model"):
        MotionEncoding(grid, k, times, coil_model="rigid")
    with pytest.raises(MrMotionError, match=r"expected k \(M, 3\)"):
        MotionEncoding(grid, k[:, :2], times)
    with pytest.raises(MrMotionError, match="not extrapolated"):
        MotionEncoding(grid, k, times + 5, MotionTrajectory(np.array([0.0, 1.0]), np.stack([np.eye(4)] * 2), end_s=2.0))
    operator = MotionEncoding(grid, k, times)
    with pytest.raises(MrMotionError, match="does not match the grid"):
        operator.forward(np.zeros((5, 6, 6)))
    with pytest.raises(MrMotionError, match="2-D or 3-D"):
        ImageGrid((5,), np.eye(4))


def test_groups_respect_the_memory_bound():
    """With a bound on the components per group (their full-size images must fit in memory), no group exceeds it,
    whatever would be cheapest; single clusters always fit (at most one component per coil)."""
    rng = np.random.default_rng(5)
    grid = ImageGrid((64, 64, 64), np.diag([3.0, 3.0, 3.0, 1.0]) @ make_transform(np.eye(3), [-32.0, -32.0, -32.0]))
    coils = GaussianCoils(rng, 4)
    poses = transform_from_euler(rng.normal(size=(12, 3)) * 0.3, rng.normal(size=(12, 3)) * 0.3)
    weights, _ = coil_weighting.coarse_weights(coils, grid, poses, 8.0)
    free = coil_weighting.plan_groups(grid, poses, weights, np.full(12, 1000), 1e-5)
    assert max(g.rank for g in free) > 4  # the cheapest split has a group of more than 4 components
    bounded = coil_weighting.plan_groups(grid, poses, weights, np.full(12, 1000), 1e-5, max_rank=4)
    assert all(g.rank <= 4 or len(g.clusters) == 1 for g in bounded)
    assert sorted(np.concatenate([g.clusters for g in bounded])) == list(range(12))


@pytest.mark.parametrize(("shape", "coil_count"), [((14, 12, 10), 0), ((16, 13), 0), ((14, 12, 10), 3), ((16, 13), 2)])
def test_simulation_encodes_only_the_box_of_nonzero_voxels_and_stays_exact(shape, coil_count):
    """simulate() encodes the box holding the non-zero voxels (zero voxels add nothing): the k-space equals the
    encoding of the whole grid, to the NUFFT's accuracy, also with coils (the box reuses the whole grid's coarse
    coil nodes, so a reconstruction on the whole grid models the coils as the simulation did)."""
    from mrmotion.physics.sampling import cartesian
    from mrmotion.physics.simulate import acquisition_frame, object_support, simulate

    rng = np.random.default_rng()
    image = np.zeros(shape, dtype=complex)
    inner = tuple(slice(2, n - 3) for n in shape)
    image[inner] = rng.normal(size=image[inner].shape)
    grid = ImageGrid(shape, transform_from_euler(rng.uniform(-30, 30, 3), rng.normal(size=3)) @ np.diag([2, 2, 3, 1.0]))
    box, box_grid = object_support(image, grid)
    assert box == inner and box_grid.shape == image[inner].shape
    assert np.allclose(box_grid.positions(np.zeros(len(shape))), grid.positions([2] * len(shape)))
    matrix = (*shape, 1) if len(shape) == 2 else shape
    sampling = cartesian(matrix, (2.0, 2.0, 3.0), mode="2d" if len(shape) == 2 else "3d", order="linear")
    motion = random_motion(rng, 4, sampling.duration_s)
    coils = GaussianCoils(rng, coil_count) if coil_count else None
    scan = simulate(image, grid, sampling, motion, coils, eps=1e-12)
    frame = acquisition_frame(grid)
    k = (frame[:3, :3] @ sampling.k_logical.T).T
    whole = MotionEncoding(grid, k, sampling.time_s, scan.motion, coils, eps=1e-12, origin_mm=frame[:3, 3])
    expected = whole.forward(image)
    assert np.linalg.norm(scan.data - expected) <= 1e-9 * np.linalg.norm(expected)
    # how the coils were evaluated is reported: the operator's clusters (one for a uniform coil, tolerance 0)
    assert scan.coil_clusters == (whole.clusters if coils is not None else 1)
    assert scan.coil_cluster_tol_mm == (whole.coil_pose_distance_mm if scan.coil_clusters > 1 else 0.0)
    everything, same = object_support(np.zeros(shape), grid)  # nothing to encode: the whole grid, not an error
    assert same is grid and everything == tuple(slice(0, n) for n in shape)


def test_k_in_another_frame_equals_k_rotated_to_the_scanner():
    rng = np.random.default_rng()
    grid = oblique_grid((8, 9, 7), rng)
    rho = rng.normal(size=grid.shape) + 1j * rng.normal(size=grid.shape)
    k, times = rng.normal(size=(150, 3)) * 0.5, np.sort(rng.uniform(0, 10, 150))
    motion, coils = random_motion(rng, 4, 10.0), GaussianCoils(rng, 3)
    frame = transform_from_euler(rng.uniform(-90, 90, 3), np.zeros(3))[:3, :3]
    origin = rng.normal(size=3) * 10
    rotated = MotionEncoding(grid, k @ frame.T, times, motion, coils, eps=1e-12, origin_mm=origin)
    given = MotionEncoding(grid, k, times, motion, coils, eps=1e-12, origin_mm=origin, k_frame=frame)
    reference = rotated.forward(rho)
    assert np.abs(given.forward(rho) - reference).max() <= 1e-9 * np.abs(reference).max()
    with pytest.raises(MrMotionError, match="k_frame"):
        MotionEncoding(grid, k, times, motion, coils, k_frame=np.eye(4))


def test_runs_of_close_states_are_merged_and_fitted_as_one():
    """merge_runs: consecutive states within the tolerance of their run's first state, a new run at the first state
    beyond it. fit_clusters on each state repeated four times: the clusters and poses of the states without copies
    (weights summed)."""
    rng = np.random.default_rng()
    grid = oblique_grid((7, 6, 5), rng)
    slow = _walk(rng, 400, step_deg=0.01, step_mm=0.01)
    runs = coil_weighting.merge_runs(grid, slow, 0.1)
    assert runs[0] == 0 and np.all(np.diff(runs) >= 0) and np.all(np.diff(runs) <= 1) and runs[-1] > 0
    moved = coil_weighting._moved_corners(grid, slow)
    firsts = np.searchsorted(runs, np.arange(runs[-1] + 1))
    assert np.all(coil_weighting._largest_distance(moved, moved[firsts][runs]) <= 0.1)
    assert np.all(coil_weighting._largest_distance(moved[firsts[1:]], moved[firsts[:-1]]) > 0.1)
    base, weights = _walk(rng, 60), rng.random(60) ** 2
    jittered = np.repeat(base, 4, axis=0)
    jittered[:, :3, 3] += rng.uniform(-0.005, 0.005, size=(240, 3))
    merged = coil_weighting.merge_runs(grid, jittered, 0.1)  # each state's copies in one run
    assert np.all(merged.reshape(60, 4) == merged[::4, None]) and merged[-1] > 0
    start = np.minimum(cluster_states(grid, base, 3.0)[0], 7)
    copies = np.repeat(base, 4, axis=0)
    labels, poses = coil_weighting.fit_clusters(grid, copies, np.repeat(weights / 4, 4), 8, [np.repeat(start, 4)])
    alone = coil_weighting.fit_clusters(grid, base, weights, 8, [start])
    assert np.array_equal(labels, np.repeat(alone[0], 4)) and np.allclose(poses, alone[1], rtol=0, atol=1e-9)


def test_fit_clusters_and_expected_energy_bad_inputs():
    rng = np.random.default_rng(3)
    grid = oblique_grid((6, 6, 6), rng)
    transforms, start = _walk(rng, 20), np.zeros(20, dtype=int)
    for weights, count, starts, message in (
        (np.ones(19), 4, [start], "20 finite weights"),
        (np.r_[np.nan, np.ones(19)], 4, [start], "finite weights"),
        (-np.ones(20), 4, [start], "≥ 0"),
        (np.ones(20), 0, [start], "whole number ≥ 1"),
        (np.ones(20), 2.5, [start], "whole number ≥ 1"),
        (np.ones(20), 4, [np.full(20, 4)], "< 4 clusters"),
        (np.ones(20), 4, [start[:5]], "label the 20 states"),
    ):
        with pytest.raises(MrMotionError, match=message):
            coil_weighting.fit_clusters(grid, transforms, weights, count, starts)
    broken = transforms.copy()
    broken[3, 0, 3] = np.nan
    for bad, message in ((transforms[:0], r"T ≥ 1"), (transforms[:, :3], r"\(T, 4, 4\)"), (broken, "NaN")):
        with pytest.raises(MrMotionError, match=message):
            coil_weighting.fit_clusters(grid, bad, np.ones(len(bad)), 4, [])
    image, k = rng.normal(size=grid.shape), rng.normal(size=(10, 3))
    for bad_image, bad_k, message in (
        (image[:5], k, "does not match its grid"),
        (np.where(image > 1, np.nan, image), k, "NaN"),
        (image, k[:, :2], r"\(M, 3\)"),
        (image, np.r_[k[:9], [[np.inf, 0, 0]]], "finite"),
    ):
        with pytest.raises(MrMotionError, match=message):
            coil_weighting.expected_energy(bad_image, grid, bad_k)
    # all-zero weights are allowed (every state as likely a seed), and a constant image has all its energy at k = 0
    labels, poses = coil_weighting.fit_clusters(grid, transforms, np.zeros(20), 4, [start])
    assert len(poses) <= 4 and labels.shape == (20,)
    flat = coil_weighting.expected_energy(np.ones(grid.shape), grid, np.array([[0.0, 0, 0], [1.0, 0, 0]]))
    assert flat[0] > 0 and flat[1] == 0
