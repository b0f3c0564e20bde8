"""Coil sensitivities seen from the moving object: clustered poses, coarse grids and low-rank groups.

Receive coils are fixed in the scanner; in the object frame, at pose ``A_t``, coil c weights voxel u by
``C_c(A_t r(u))``: a different weighting for every motion state. :class:`~mrmotion.physics.encoding.MotionEncoding`
needs these weightings as a few full-size images that NUFFTs can be applied to. They are smooth, which is used three
times (each error is measured in ``tests/physics/test_encoding.py``):

1. **Clusters**: states whose poses differ by less than a tolerance (largest displacement of a corner of the field
   of view) share one weighting (:func:`cluster_states`), evaluated at the cluster's central pose
   (:func:`central_states`). When a cap on their number forces a tolerance of millimetres, the clusters are fitted
   by k-means with each state weighted by the signal energy of its samples (:func:`fit_clusters`), and each is
   evaluated at its states' mean pose (:func:`refine_clusters`): poses sit where the signal is, near the k-space
   centre, where a coil error costs most (:func:`expected_energy` estimates the energy from the image).
2. **Coarse grid**: weightings are evaluated on a lattice about ``spacing_mm`` apart and interpolated to the image
   grid by local interpolation (:func:`coarse_axes`, :func:`upsample`).
3. **Groups of low rank**: clusters are split into groups of nearby poses; within a group g, an SVD compresses the
   weightings of its clusters into R_g spatial components, ``C_c(A_k r(u)) ≈ Σ_r U_g[k, c, r] V_g,r(u)``, and
   the group's samples cost R_g NUFFTs over those samples only. One group for all states is the cheapest when the
   poses are close (R ≈ coils); one group per cluster when they are far apart (then R_g = coils and no full-NUFFT
   is wasted on samples of other poses). :func:`plan_groups` picks the split of least estimated cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import FloatArray, apply
from mrmotion.physics.nufft import THREADS

if TYPE_CHECKING:
    from mrmotion.physics.encoding import ImageGrid

#: A NUFFT's cost that does not depend on its points (the oversampled FFT), in units of the cost of one sample point
#: times the number of voxels. Only the choice of groups depends on it. 0.4 (finufft at eps 1e-4, spreading on a 1-mm
#: head) chose one group of rank 85 for one state per line of the 1-mm benchmark (63 clusters, 127 s); 0.3 chose the 63
#: groups of rank 8 (88 s). With the FFTs planned by FFTW_MEASURE (nufft.fft_planning) and 64 coil poses placed by
#: signal energy (many close poses), 0.3 merged them into 22 groups of rank 381 in all, which spread each sample 21.7
#: times on average: 35.1 s, against 29.9 s for the 64 groups of rank 8 (8 spreads per sample; scratch timings of one
#: forward operator, the benchmark's ≤ 64-pose row shows the effect). Fitted to those two and to 2 states against one
#: (16 and 8 FFTs, 0.06 s each): 0.13.
FFT_COST = 0.13
#: Group tolerances tried by :func:`plan_groups` (mm, largest corner displacement from the group's first pose);
#: 0 = each cluster alone, inf = all clusters together.
GROUP_TOLERANCES_MM = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, np.inf)
#: Spacing (mm) of the coarse grid on which coil weightings are evaluated before the splines (the default everywhere).
COARSE_SPACING_MM = 8.0
#: Coarse nodes beyond each end of a grid: the local interpolation of :func:`upsample` reads the 6 nodes nearest
#: a voxel (3 on each side).
NODES_BEYOND = 2


#: States checked at once against the current cluster's representative in :func:`cluster_states`.
CLUSTER_BLOCK = 64


def cluster_states(
    grid: ImageGrid, transforms: FloatArray, tol_mm: float, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Group motion states whose FOV corners move by less than ``tol_mm`` from a cluster's first state.

    Returns ``(cluster of each state (T,), index of each cluster's representative state (K,))``. Greedy in time
    order: a state joins the previous state's cluster when it is close to its representative, else the closest
    cluster within ``tol_mm``, else starts a new one. The states that stay in the previous state's cluster are found
    :data:`CLUSTER_BLOCK` at a time (one state at a time, 44,000 states of continuous motion cost 16 s of Python).
    ``limit``: stop as soon as more than ``limit`` clusters are opened (then ``limit + 1`` representatives are
    returned and the labels are incomplete): enough to tell whether a tolerance fits a cap on clusters, and fast when
    it does not (a tight tolerance opens thousands of clusters, each compared with all the previous ones).
    """
    moved = _moved_corners(grid, transforms)
    labels = np.empty(len(transforms), dtype=np.int64)
    representatives: list[int] = []
    last, state = -1, 0
    while state < len(transforms):
        if last >= 0:  # the run of states close to the previous state's cluster, in one vectorised check
            stop = min(len(transforms), state + CLUSTER_BLOCK)
            far = _largest_distance(moved[state:stop], moved[representatives[last]]) > tol_mm
            run = int(np.argmax(far)) if far.any() else stop - state
            labels[state : state + run] = last
            state += run
            if run > 0:
                continue
        if representatives:
            distance = _largest_distance(moved[representatives], moved[state])
            best = int(np.argmin(distance))
            if distance[best] <= tol_mm:
                labels[state] = last = best
                state += 1
                continue
        representatives.append(state)
        labels[state] = last = len(representatives) - 1
        if limit is not None and len(representatives) > limit:
            break
        state += 1
    return labels, np.asarray(representatives)


def _moved_corners(grid: ImageGrid, transforms: FloatArray) -> np.ndarray:
    """(T, P, 3) the grid's FOV corners moved by each of T transforms (scanner mm)."""
    # a batched matmul (np.einsum took 12 ms for 44,000 states, this 1 ms)
    return np.swapaxes(transforms[:, :3, :3] @ grid.corners().T, 1, 2) + transforms[:, None, :3, 3]


def _largest_distance(corners: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Largest distance (mm) between corresponding corners, ``(..., P, 3)`` against ``(P, 3)``: the largest
    ``np.linalg.norm`` to rounding (~1e-14 mm), without its per-call overhead."""
    difference = corners - reference
    return np.sqrt(np.max(np.einsum("...pi,...pi->...p", difference, difference), axis=-1))


def central_states(grid: ImageGrid, transforms: FloatArray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """For each cluster of :func:`cluster_states`, the member whose FOV corners lie closest (largest corner
    distance) to the cluster's mean corners, each state weighted by ``weights`` (its number of samples).

    A cluster's coil weighting is evaluated at one pose; the greedy clustering grows clusters from their first
    state, which sits at their edge for motion that drifts through them. In the first version of
    ``benchmarks/coil_cluster_error.py`` (28 clusters of 6.4 mm for a 300-state random walk) the central state took
    the k-space error from 10% to 7%.
    """
    moved = _moved_corners(grid, transforms)
    weights = np.asarray(weights, dtype=np.float64) + 1e-12
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(labels.max() + 2))
    central = np.empty(len(bounds) - 1, dtype=np.int64)
    for cluster in range(len(central)):
        members = order[bounds[cluster] : bounds[cluster + 1]]
        weight = weights[members]
        mean = np.einsum("t,tpi->pi", weight, moved[members]) / weight.sum()
        distance = _largest_distance(moved[members], mean)
        central[cluster] = members[int(np.argmin(distance))]
    return central


#: Lloyd (k-means) iterations that refine clusters whose tolerance the cap on clusters forced (:func:`refine_clusters`;
#: their effect on the k-space error is measured by ``benchmarks/coil_cluster_error.py``). 20 did no better than 5 in
#: a scratch comparison on that benchmark's random walk.
REFINE_ITERATIONS = 5


def refine_clusters(
    grid: ImageGrid,
    transforms: FloatArray,
    labels: np.ndarray,
    weights: np.ndarray,
    iterations: int = REFINE_ITERATIONS,
) -> tuple[np.ndarray, FloatArray]:
    """Lloyd's k-means on the moved FOV corners, from the clusters ``labels`` (T,), each state weighted by
    ``weights`` (its number of samples, or their signal energy); returns ``(labels (T,), poses (K, 4, 4))``.

    The greedy clusters of :func:`cluster_states` are balls of one radius grown in time order; when a cap on their
    number forces a radius of millimetres, moving each state to the cluster whose mean it is nearest (mean squared
    corner distance) and taking the means again lowers the coil error of the states on average. A cluster's pose is
    the sample-weighted mean of its states' transforms (affine, no longer exactly rigid): it moves every voxel to the
    mean of the positions the cluster's states move it to, which minimises the squared position error that sharing
    one coil weighting makes, for every voxel at once (the moved corners are linear in the transform, so the means of
    the corners are the mean transform's corners). Clusters that lose all their states are dropped.
    """
    count = len(transforms)
    moved = _moved_corners(grid, transforms).reshape(count, -1)
    rows = transforms[:, :3].reshape(count, 12)
    weights = np.asarray(weights, dtype=np.float64) + 1e-12
    labels = np.unique(np.asarray(labels), return_inverse=True)[1].reshape(count)
    for step in range(iterations + 1):
        sums = np.zeros((int(labels.max()) + 1, 12))
        for column in range(12):  # (np.add.at is ~10× slower)
            sums[:, column] = np.bincount(labels, weights * rows[:, column], len(sums))
        mean_transforms = sums / np.bincount(labels, weights=weights)[:, None]
        if step == iterations:
            break
        means = _moved_corners(grid, _as_transforms(mean_transforms)).reshape(len(sums), -1)
        # squared distances |x − m|² = |x|² − 2 x·m + |m|² (corners of ~10² mm: ~1e-10 mm² of rounding)
        distance = np.sum(means**2, axis=1)[None] - 2.0 * moved @ means.T
        nearest = np.argmin(distance, axis=1)
        if np.array_equal(nearest, labels):
            break
        labels = np.unique(nearest, return_inverse=True)[1].reshape(count)
    return labels, _as_transforms(mean_transforms)


#: k-means++ seedings tried, besides the greedy clusters, by :func:`fit_clusters` (the best by
#: :func:`cluster_cost` is kept)
SEEDINGS = 8


def seeded_labels(
    grid: ImageGrid, transforms: FloatArray, weights: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """(T,) labels of the nearest of ``count`` seed states chosen by k-means++ (Arthur & Vassilvitskii 2007): each
    next seed drawn with probability ∝ weight × squared FOV-corner distance to the nearest seed so far, so seeds
    crowd where the weight is (the states sampled near the k-space centre) and still reach the far poses."""
    moved = _moved_corners(grid, transforms).reshape(len(transforms), -1)
    weights = np.asarray(weights, dtype=np.float64) + 1e-300
    seeds = [int(rng.choice(len(moved), p=weights / weights.sum()))]
    nearest = np.sum((moved - moved[seeds[0]]) ** 2, axis=1)
    labels = np.zeros(len(moved), dtype=np.int64)
    for seed in range(1, min(count, len(moved))):
        chance = weights * nearest
        if chance.sum() <= 0:  # every state sits on a seed already
            break
        seeds.append(int(rng.choice(len(moved), p=chance / chance.sum())))
        distance = np.sum((moved - moved[seeds[-1]]) ** 2, axis=1)
        closer = distance < nearest
        labels[closer], nearest[closer] = seed, distance[closer]
    return labels


def cluster_cost(
    grid: ImageGrid, transforms: FloatArray, labels: np.ndarray, poses: FloatArray, weights: np.ndarray
) -> float:
    """What the k-means of :func:`refine_clusters` lowers: Σ over states of weight × squared distance (mm², summed
    over the FOV corners) between the state's moved corners and its cluster pose's."""
    difference = _moved_corners(grid, transforms) - _moved_corners(grid, poses)[labels]
    return float(np.sum(np.asarray(weights, dtype=np.float64) * np.einsum("tpi,tpi->t", difference, difference)))


#: :func:`fit_clusters` fits its k-means to runs of consecutive states that stay within this distance (mm, largest
#: FOV-corner displacement from the run's first state) of each other, taken as one weighted state: one state per
#: phase-encode line of continuous motion (44,037 states on the 1-mm simulation benchmark) is 5,799 such runs.
#: A run's states then share a cluster: a state can only be kept from a cluster boundary that falls inside its run,
#: so within this distance of where it would be, against the millimetres of a cap-forced cluster radius (the coil
#: weighting changes by ~1% per 1.5 mm, ``benchmarks/coil_cluster_error.py``).
MERGE_TOL_MM = 0.1


def merge_runs(grid: ImageGrid, transforms: FloatArray, tol_mm: float) -> np.ndarray:
    """(T,) run index of each state: consecutive states whose FOV corners stay within ``tol_mm`` of the run's first
    state's form one run (0, 1, 2, … in time order). Each run is found by vectorised checks of blocks of states that
    double in size while the run continues (a Python step per run, not per state)."""
    moved = _moved_corners(grid, transforms)
    labels = np.empty(len(transforms), dtype=np.int64)
    start, run = 0, 0
    while start < len(transforms):
        stop, block = start + 1, CLUSTER_BLOCK
        while stop < len(transforms):
            end = min(len(transforms), stop + block)
            far = _largest_distance(moved[stop:end], moved[start]) > tol_mm
            if far.any():
                stop += int(np.argmax(far))
                break
            stop, block = end, 2 * block
        labels[start:stop] = run
        start, run = stop, run + 1
    return labels


def fit_clusters(
    grid: ImageGrid,
    transforms: FloatArray,
    weights: np.ndarray,
    count: int,
    starts: list[np.ndarray],
    seed: int = 0,
) -> tuple[np.ndarray, FloatArray]:
    """At most ``count`` clusters of the states for a cap on coil poses: ``(labels (T,), poses (K, 4, 4))``.

    Each start (``starts``: labels, e.g. the greedy clusters of :func:`cluster_states` at the tolerance that fits the
    cap) and :data:`SEEDINGS` k-means++ seedings (:func:`seeded_labels`, seeded with ``seed``: the result is
    reproducible) are refined by :func:`refine_clusters`, each state weighted by ``weights``, and the clustering of
    least :func:`cluster_cost` is kept. With ``weights`` the signal energy of each state's samples, this puts the poses
    where a coil error costs most: on the simulation benchmark's one-state-per-line motion (MNI152 at 6 mm), 96% of the
    energy is in 10% of the states (a scratch count) and 8 poses so placed are about as accurate as 64 placed by the
    number of samples (``benchmarks/coil_cluster_error.py``). The greedy start keeps the result at least as good as
    before by this cost when the weights are even (k-means++ alone then did worse in a scratch test).

    Everything runs on the runs of consecutive states within :data:`MERGE_TOL_MM` of each other (:func:`merge_runs`),
    each taken as one state at its states' weighted mean transform with their summed weight (a start labels a run as
    it labels the run's heaviest state), and a run's states share its cluster. This is exact for the rest: the corners
    are linear in the transform, so a cluster's mean pose and the cost differ from the states' own only by the spread
    within the runs, the same for every candidate. One state per line of the 1-mm simulation benchmark (44,037 states,
    5,799 runs): 1.0 s → 0.2 s, the same clusters' cost (scratch timing).
    """
    transforms = np.asarray(transforms, dtype=np.float64)
    if transforms.ndim != 3 or transforms.shape[1:] != (4, 4) or len(transforms) == 0:
        raise MrMotionError(f"fit_clusters: expected (T, 4, 4) transforms with T ≥ 1, got shape {transforms.shape}")
    if not np.all(np.isfinite(transforms)):
        raise MrMotionError("fit_clusters: the transforms have NaN or infinite entries")
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(transforms),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise MrMotionError(f"fit_clusters: expected {len(transforms)} finite weights ≥ 0, got shape {weights.shape}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise MrMotionError(f"fit_clusters: the number of clusters must be a whole number ≥ 1, got {count!r}")
    if any(np.shape(start) != (len(transforms),) or (len(start) and np.max(start) >= count) for start in starts):
        raise MrMotionError(f"fit_clusters: each start must label the {len(transforms)} states with < {count} clusters")
    runs = merge_runs(grid, transforms, MERGE_TOL_MM)
    merged = refine_clusters(grid, transforms, runs, weights, iterations=0)[1]  # each run's weighted mean transform
    merged_weights = np.bincount(runs, weights=weights)
    heaviest = np.lexsort((-weights, runs))[np.searchsorted(runs, np.arange(len(merged)))]  # runs is sorted
    rng = np.random.default_rng(seed)
    candidates = [
        *(np.asarray(start)[heaviest] for start in starts),
        *(seeded_labels(grid, merged, merged_weights, count, rng) for _ in range(SEEDINGS)),
    ]
    best, best_cost = None, np.inf
    for labels in candidates:
        refined = refine_clusters(grid, merged, labels, merged_weights)
        cost = cluster_cost(grid, merged, *refined, merged_weights)
        if cost < best_cost:
            best, best_cost = refined, cost
    assert best is not None
    return best[0][runs], best[1]


#: :func:`expected_energy` block-averages larger images to at most this many voxels (a 1-mm head: 0.1 s, not 1 s)
SPECTRUM_VOXELS = 2**21


def expected_energy(image: np.ndarray, grid: ImageGrid, k: np.ndarray, shells: int = 128) -> np.ndarray:
    """(M,) the mean power ``|ρ̂|²`` of ``image`` (on ``grid``) over the shell of spatial frequency ``|k|`` of each
    of M samples ``k`` (M, 3) in rad/mm (any frame: only ``|k|`` is used).

    An estimate of each sample's signal energy before the simulation (for :func:`fit_clusters`): the shells are
    rotation-invariant, so the moved object's energy at k is about the still one's at the same ``|k|`` (on the
    coil-cluster benchmark's line motion, a scratch comparison: the weights per state so estimated correlate 0.98 with
    the simulated energies and give the same k-space errors). One FFT of the image (block-averaged to at most
    :data:`SPECTRUM_VOXELS` voxels); samples beyond its highest frequency get the outermost shell's.
    """
    image = np.asarray(image)
    k = np.asarray(k, dtype=np.float64)
    if image.shape != tuple(grid.shape):
        raise MrMotionError(f"expected_energy: image shape {image.shape} does not match its grid {grid.shape}")
    if not np.all(np.isfinite(image)):
        raise MrMotionError("expected_energy: the image has NaN or infinite values")
    if k.ndim != 2 or k.shape[1] != 3 or not np.all(np.isfinite(k)):
        raise MrMotionError(f"expected_energy: k must be finite (M, 3) in rad/mm, got shape {k.shape}")
    dims = image.ndim
    # block averages of `factor`³ voxels for large images (their lowest frequencies, where the energy is)
    factor = max(1, int(np.ceil((image.size / SPECTRUM_VOXELS) ** (1 / dims))))
    if factor > 1:
        shape = tuple(n // factor for n in image.shape)
        cut = image[tuple(slice(0, n * factor) for n in shape)]
        image = cut.reshape([m for n in shape for m in (n, factor)]).mean(axis=tuple(range(1, 2 * dims, 2)))
    power = np.abs(scipy.fft.fftn(image.astype(np.complex64), workers=THREADS)) ** 2
    # rad/mm of voxel frequency ν (cycles/voxel): k = 2π L⁻ᵀ ν, L the grid's first `dims` voxel axes (× factor);
    # |k|² is the quadratic form of the axes' Gram matrix, accumulated in place from broadcast (small) products
    columns = 2 * np.pi * np.linalg.pinv(factor * grid.scanner_from_voxel[:3, :dims]).T
    gram = columns.T @ columns
    frequencies = [  # each along its own axis, for broadcasting
        np.fft.fftfreq(n).astype(np.float32).reshape([-1 if axis == i else 1 for axis in range(dims)])
        for i, n in enumerate(power.shape)
    ]
    squared = np.zeros(power.shape, dtype=np.float32)
    for a in range(dims):
        for b in range(a, dims):
            squared += np.float32(gram[a, b] * (1 if a == b else 2)) * (frequencies[a] * frequencies[b])
    radius = np.sqrt(np.maximum(squared, 0.0, out=squared), out=squared).ravel()
    width = float(radius.max()) / shells + 1e-12
    shell = np.minimum((radius / width).astype(np.int64), shells - 1)
    counts = np.bincount(shell, minlength=shells)
    filled = counts > 0
    mean = np.bincount(shell, weights=power.ravel(), minlength=shells)[filled] / counts[filled]
    centres = (np.arange(shells) + 0.5)[filled] * width
    sample_radius = np.sqrt(np.einsum("mi,mi->m", k, k))  # (np.linalg.norm: 4× slower on 10⁷ samples)
    return np.interp(sample_radius, centres, mean)


def _as_transforms(rows: np.ndarray) -> FloatArray:
    """(K, 12) top rows of affine transforms → (K, 4, 4)."""
    result = np.tile(np.eye(4), (len(rows), 1, 1))
    result[:, :3] = rows.reshape(-1, 3, 4)
    return result


def pose_distances(grid: ImageGrid, transforms: FloatArray, labels: np.ndarray, poses: FloatArray) -> np.ndarray:
    """(T,) largest FOV-corner distance (mm) between each state and the pose its cluster's coils are evaluated at."""
    return _largest_distance(_moved_corners(grid, transforms), _moved_corners(grid, poses)[labels])


def central_poses(
    grid: ImageGrid, transforms: FloatArray, labels: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, FloatArray]:
    """``(labels, poses (K, 4, 4))``: the clusters as given, each evaluated at its :func:`central_states` member (the
    counterpart of :func:`refine_clusters` for clusters within the requested tolerance)."""
    return labels, transforms[central_states(grid, transforms, labels, weights)]


def coarse_axes(grid: ImageGrid, spacing_mm: float, box: tuple[slice, ...] | None = None) -> list[np.ndarray]:
    """Voxel positions of the coarse lattice the coil weightings are evaluated on (:func:`upsample` interpolates).

    Per axis, nodes ``h`` voxels apart, ``h ≈ spacing_mm`` (the first and last voxels are nodes), and
    :data:`NODES_BEYOND` nodes beyond each end, which the local interpolation needs; short axes keep every voxel.
    ``box`` (slices of ``grid``): only the nodes the box's voxels depend on, in the box's voxel units.
    Interpolation being local, the box's weighting then equals the whole grid's restricted to the box, and the
    nodes far from the box, whose weightings differ most between poses, do not raise the rank of the compression
    (one state per phase-encode line of a 1-mm head, 63 clusters in one group: rank 85 instead of 504)."""
    voxel = np.linalg.norm(grid.scanner_from_voxel[:3, : len(grid.shape)], axis=0)
    parts = box if box is not None else tuple(slice(0, n) for n in grid.shape)
    axes = []
    for size, step, part in zip(grid.shape, voxel, parts, strict=True):
        points = int(np.ceil((size - 1) * step / spacing_mm)) + 1
        first, last = part.start, part.stop - 1
        if size <= max(points, 4):  # dense: every voxel is a node
            axes.append(np.arange(first, last + 1, dtype=np.float64) - first)
            continue
        h = (size - 1) / (points - 1)
        nodes = np.arange(int(np.floor(first / h)) - NODES_BEYOND, int(np.ceil(last / h)) + NODES_BEYOND + 1)
        axes.append(nodes * h - first)
    return axes


def _interpolation_matrix(size: int, positions: np.ndarray) -> np.ndarray:
    """(size, nodes) weights of local Lagrange interpolation (degree 5, the 6 nearest nodes; error O(h⁶)) at voxels
    0 … size−1 from values at equally spaced ``positions`` that reach :data:`NODES_BEYOND` nodes beyond both ends.

    Written here because scipy's cubic splines (``CubicSpline``, ``make_interp_spline``, ``map_coordinates`` with
    its prefilter) are global: every node moves every value, so a sub-box interpolated from its own nodes would
    differ from the whole grid. Here a voxel depends on its six nearest nodes only. On loop coils around a 2-mm
    head, 8-mm nodes: 8e-6 largest error inside the head (the not-a-knot cubic spline: 3e-5; local cubic: 3e-4)."""
    h = positions[1] - positions[0]
    reach = NODES_BEYOND * h - 1e-9
    if not np.allclose(np.diff(positions), h) or positions[0] > -reach or positions[-1] < size - 1 + reach:
        raise ValueError(f"coarse nodes must be equally spaced and reach {NODES_BEYOND} nodes beyond the grid")
    x = (np.arange(size) - positions[0]) / h
    left = np.clip(np.floor(x).astype(np.int64), NODES_BEYOND, len(positions) - NODES_BEYOND - 2)
    t = (x - left)[:, None]
    offsets = np.arange(-NODES_BEYOND, NODES_BEYOND + 2)  # the nodes left − 2 … left + 3
    weights = np.ones((size, len(offsets)))
    for j, node in enumerate(offsets):
        for other in offsets[offsets != node]:
            weights[:, j] *= (t[:, 0] - other) / (node - other)
    matrix = np.zeros((size, len(positions)))
    matrix[np.arange(size)[:, None], left[:, None] + offsets] = weights
    return matrix


def upsample(
    coarse: np.ndarray,
    grid: ImageGrid,
    axes: list[np.ndarray],
    dtype: type = np.complex128,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Local interpolation of ``(R, *coarse shape)`` values on :func:`coarse_axes` to ``(R, *grid.shape)``.

    Separable: one small (size × coarse size) matrix per axis (:func:`_interpolation_matrix`; the identity on
    dense axes). Real and imaginary parts are interpolated as real numbers in the precision of ``dtype``, one
    component at a time, the small axes first and the first axis by one matrix product written straight into the
    output (10× faster than complex tensordots of whole stacks). ``out``: a C-ordered array of at least R
    components of ``grid.shape`` to write into (reusing memory saves the first-touch cost of a fresh array, a
    third of the time at 1 mm); its first R components are returned."""
    real = np.float32 if np.dtype(dtype) == np.complex64 else np.float64
    matrices = [
        np.eye(size, dtype=real)
        if np.array_equal(positions, np.arange(size))
        else _interpolation_matrix(size, positions).astype(real)
        for size, positions in zip(grid.shape, axes, strict=True)
    ]
    count = coarse.shape[0]
    result = np.empty((count, *grid.shape), dtype=dtype) if out is None else out[:count]
    if result.shape != (count, *grid.shape) or result.dtype != dtype or not result.flags.c_contiguous:
        raise ValueError(f"out: need a C-ordered {np.dtype(dtype)} array of ({count}, *{grid.shape}) or more")
    pairs = result.view(real).reshape(count, *grid.shape, 2)  # (…, real/imaginary): the complex memory layout
    parts = np.stack([coarse.real, coarse.imag], axis=-1).astype(real)
    for component in range(count):
        small = parts[component]
        for axis in range(len(grid.shape) - 1, 0, -1):
            small = np.moveaxis(np.tensordot(matrices[axis], small, axes=([1], [axis])), 0, axis)
        flat = np.ascontiguousarray(small).reshape(small.shape[0], -1)
        np.matmul(matrices[0], flat, out=pairs[component].reshape(grid.shape[0], -1))
    return result


def coil_maps_on_grid(
    coils, grid: ImageGrid, spacing_mm: float = COARSE_SPACING_MM, dtype: type = np.complex128
) -> np.ndarray:
    """``(count, *grid.shape)`` sensitivities of scanner-fixed coils on the grid (coarse lattice, local
    interpolation)."""
    axes = coarse_axes(grid, spacing_mm)
    positions = grid.positions(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1))
    return upsample(np.asarray(coils.sensitivities(positions), dtype=np.complex128), grid, axes, dtype)


@dataclass(frozen=True, eq=False)
class CoilGroup:
    """Clusters whose coil weightings share one set of spatial components.

    clusters : indices of the clusters in the group.
    weights_u : (len(clusters), coils, R) coefficients of each cluster's coil weighting.
    coarse_v : (R, *coarse shape) spatial components on the coarse grid (:func:`upsample` to the image grid).
    """

    clusters: np.ndarray
    weights_u: np.ndarray
    coarse_v: np.ndarray

    @property
    def rank(self) -> int:
        return self.weights_u.shape[2]


def coarse_weights(
    coils, grid: ImageGrid, poses: FloatArray, spacing_mm: float, axes: list[np.ndarray] | None = None
) -> tuple[np.ndarray, list]:
    """``(K, coils, G)`` weightings ``C_c(A_k r(u))`` of scanner-fixed coils at the coarse-grid voxels of ``grid``
    for K poses (None: one uniform coil), and the coarse axes (``axes``: given node positions in ``grid``'s voxel
    units, which may lie outside it, instead of :func:`coarse_axes`)."""
    axes = coarse_axes(grid, spacing_mm) if axes is None else [np.asarray(a, dtype=np.float64) for a in axes]
    positions = grid.positions(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)).reshape(-1, 3)
    if coils is None:
        return np.ones((len(poses), 1, len(positions)), dtype=np.complex128), axes
    moved = apply(poses[:, None], positions[None])  # (K, G, 3)
    return np.moveaxis(np.asarray(coils.sensitivities(moved), dtype=np.complex128), 0, 1), axes


def compress(weights: np.ndarray, rank_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """SVD of ``(K, coils, G)`` weightings truncated at relative singular value ``rank_tol``: U (K, coils, R) and
    V (R, G) with ``weights ≈ U V``.

    Through a QR of the transposed wide matrix (Wᴴ = Q R, then the SVD of the small R): as accurate as LAPACK's
    SVD of W, and far faster here (BLAS-3 QR instead of the wide bidiagonalisation)."""
    clusters, count, size = weights.shape
    q, r = np.linalg.qr(weights.reshape(clusters * count, size).conj().T)
    u, singular, vh = np.linalg.svd(r.conj().T)
    rank = max(1, int(np.sum(singular > rank_tol * singular[0])))
    return (u[:, :rank] * singular[:rank]).reshape(clusters, count, rank), vh[:rank] @ q.conj().T


def _rank_from_gram(gram: np.ndarray, rank_tol: float) -> int:
    """Numerical rank of W from its Gram matrix W Wᴴ (eigenvalues are squared singular values)."""
    values = np.linalg.eigvalsh(gram)
    return max(1, int(np.sum(values > (rank_tol**2) * values[-1])))


def plan_groups(
    grid: ImageGrid,
    poses: FloatArray,
    weights: np.ndarray,
    samples: np.ndarray,
    rank_tol: float,
    max_rank: int | None = None,
) -> list[CoilGroup]:
    """Split K clusters (``poses`` (K, 4, 4), coarse ``weights`` (K, coils, G), ``samples`` (K,) per cluster) into
    groups of nearby poses, each compressed by :func:`compress`, choosing among :data:`GROUP_TOLERANCES_MM` the split
    of least estimated cost ``Σ_g R_g (FFT_COST · voxels + samples_g)`` (module docstring) whose groups all have at
    most ``max_rank`` components (their full-size images must fit in memory; one cluster per group always does, as
    its rank is at most the number of coils)."""
    clusters, count, _ = weights.shape
    voxels = float(np.prod(grid.shape))
    if clusters == 1:
        u, v = compress(weights, rank_tol)
        return [CoilGroup(np.zeros(1, dtype=np.int64), u, v)]
    flat = weights.reshape(clusters * count, -1)
    gram = flat @ flat.conj().T  # all groups' ranks from sub-blocks of one product
    best: tuple[float, list[np.ndarray]] | None = None
    seen: set[tuple[int, ...]] = set()
    for tol in GROUP_TOLERANCES_MM:
        labels = cluster_states(grid, poses, tol)[0] if np.isfinite(tol) else np.zeros(clusters, dtype=np.int64)
        if tuple(labels) in seen:
            continue
        seen.add(tuple(labels))
        members = [np.flatnonzero(labels == g) for g in range(labels.max() + 1)]
        cost, fits = 0.0, True
        for member in members:
            rows = (member[:, None] * count + np.arange(count)).reshape(-1)
            rank = _rank_from_gram(gram[np.ix_(rows, rows)], rank_tol)
            fits = fits and (max_rank is None or rank <= max_rank or len(member) == 1)
            cost += rank * (FFT_COST * voxels + samples[member].sum())
        if fits and (best is None or cost < best[0]):
            best = (cost, members)
    groups = []
    for member in best[1]:
        u, v = compress(weights[member], rank_tol)
        groups.append(CoilGroup(member, u, v))
    return groups
