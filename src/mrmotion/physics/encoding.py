"""The motion-aware multi-coil encoding operator: image → k-space samples of a moving object, and its adjoint.

Physics (DESIGN.md §2). A sample at scanner k-space position k (rad/mm), taken while the object is moved by
``A_t = [L_t d_t]`` (scanner LPS mm, about the isocentre), with receive coil c fixed in the scanner, is

    y_c(k) = Σ_r C_c(r) ρ(A_t⁻¹ r) e^{−i k·r}
           = |det L_t| e^{−i k·d_t} Σ_u C_c(A_t r(u)) ρ(u) e^{−i (L_tᵀk)·r(u)}         (r = A_t r(u))

where u runs over the voxels of the (unmoved) image and r(u) = L u + o their scanner positions. The augmented
k-space vector ``A_tᵀ[k; 0] = [L_tᵀk; d_t·k]`` gives every sample its own coordinate and phase, so a single NUFFT
over all samples handles any number of motion states.

The coils, fixed in the scanner, appear in the object frame as ``C_c(A_t r(u))``: different for every state.
:mod:`mrmotion.physics.coil_weighting` turns them into groups g of states, each with R_g spatial components
``V_g,r(u)`` (clusters of close poses, a coarse grid, an SVD; its errors are measured in the tests). Then, for a
sample m of group g,

    y_c(k_m) = a_m e^{−iφ_m} Σ_r U_g[cluster(m), c, r] NUFFT[V_g,r ρ](κ_m)

R_g NUFFTs over the group's samples: one group (all states) when the poses are close, one per cluster when they are
far apart. ``coil_model="moving"`` is the common approximation that coils move with the head (``C_c(r(u))`` for
every state): one group, R ≤ number of coils.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import FloatArray, apply, as_transform
from mrmotion.physics.coil_weighting import (
    COARSE_SPACING_MM,
    CoilGroup,
    central_poses,
    cluster_states,
    coarse_weights,
    fit_clusters,
    plan_groups,
    pose_distances,
    upsample,
)
from mrmotion.physics.nufft import THREADS, NufftPair, fft_planning, plan_ahead
from mrmotion.physics.toeplitz import ToeplitzNormal
from mrmotion.physics.trajectory import MotionTrajectory

COIL_MODELS = ("exact", "moving")
#: At most this many coil weightings are evaluated by default; more poses are fitted to this many clusters, placed
#: where the signal is (``coil_weighting.fit_clusters``). 16 since 2026-11-25 (64 before): on the simulation
#: benchmark's one-state-per-line motion, 16 poses placed by signal energy gave a k-space error of 0.8% (64 placed
#: by sample count: 1.5%) at half the time (benchmarks/coil_cluster_error.py, benchmarks/simulate_vs_torchio.py).
MAX_CLUSTERS = 16
#: Memory for full-size coil weighting components (R × voxels) kept between applications of the operator (an
#: iterative reconstruction applies it dozens of times); beyond it, each group's components are interpolated again
#: at every application (slower, never more memory than one group's).
CACHE_BYTES = 1_000_000_000
#: One group's full-size components must fit in this much memory, or the operator refuses with a clear message.
MAX_WEIGHT_BYTES = 4_000_000_000
#: Samples per chunk when the per-sample coordinates and phases are computed (2 MB of phases: stays in cache).
AUGMENTED_CHUNK = 1 << 18


@dataclass(frozen=True, eq=False)
class ImageGrid:
    """A voxel grid in the scanner: ``shape`` (2 or 3 sizes) and ``scanner_from_voxel`` (4×4, LPS mm).

    A 2-D grid is one slice: voxel (i, j) sits at ``scanner_from_voxel @ [i, j, 0, 1]``.
    """

    shape: tuple[int, ...]
    scanner_from_voxel: FloatArray

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise MrMotionError(f"image grid must be 2-D or 3-D with positive sizes, got {self.shape}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "scanner_from_voxel", as_transform(self.scanner_from_voxel, "scanner_from_voxel"))

    @property
    def centre_index(self) -> np.ndarray:
        """Voxel index of the grid centre, ``n // 2`` per axis (3 entries, 0 for the slice axis of 2-D grids)."""
        centre = np.zeros(3)
        centre[: len(self.shape)] = np.array(self.shape) // 2
        return centre

    def positions(self, index: ArrayLike) -> FloatArray:
        """Scanner positions (mm) of voxel indices ``(..., ndim)``."""
        index = np.asarray(index, dtype=np.float64)
        if index.shape[-1] == 2:
            index = np.concatenate([index, np.zeros((*index.shape[:-1], 1))], axis=-1)
        return apply(self.scanner_from_voxel, index)

    def cropped(self, box: tuple[slice, ...]) -> ImageGrid:
        """The grid of a box of voxels (slices with steps of 1): the same voxels, the affine moved to its first."""
        if len(box) != len(self.shape) or any(
            part.step not in (None, 1) or not 0 <= part.start < part.stop <= n
            for part, n in zip(box, self.shape, strict=False)
        ):
            raise MrMotionError(f"box {box} is not a non-empty box of voxels of the grid {self.shape}")
        first = np.zeros(3)
        first[: len(self.shape)] = [part.start for part in box]
        shift = np.eye(4)
        shift[:3, 3] = first
        return ImageGrid(tuple(part.stop - part.start for part in box), self.scanner_from_voxel @ shift)

    def corners(self) -> FloatArray:
        """Scanner positions of the corners of the grid, (4 or 8, 3)."""
        extents = [(0, n - 1) for n in self.shape]
        corners = np.stack(np.meshgrid(*extents, indexing="ij"), axis=-1).reshape(-1, len(self.shape))
        return self.positions(corners)


def _checked_energy(sample_energy: ArrayLike | None, count: int) -> np.ndarray | None:
    """``sample_energy`` as (count,) float64, None when not given or all zero; refuses other shapes, NaNs,
    infinities and negative values."""
    if sample_energy is None:
        return None
    energy = np.asarray(sample_energy, dtype=np.float64)
    if energy.shape != (count,):
        raise MrMotionError(f"sample_energy: expected one value per sample, ({count},), got shape {energy.shape}")
    if not np.all(np.isfinite(energy)) or np.any(energy < 0):
        raise MrMotionError("sample_energy must be finite and ≥ 0 (a signal energy per sample)")
    return energy if energy.any() else None


class MotionEncoding:
    """``E``: image (grid) → multi-coil samples ``(coils, M)`` of the moving object, and ``Eᴴ``.

    Parameters
    ----------
    grid : the image grid (object frame at the reference pose).
    k_scanner : (M, 3) sample positions in scanner k-space, rad/mm (logical k rotated by the acquisition frame),
        or in another frame with ``k_frame``.
    times_s : (M,) sample times, s (to look up the motion state).
    motion : piecewise-constant motion (scanner LPS, about the isocentre), or None for a still object.
    coils : an object with ``count`` and ``sensitivities(points_mm) -> (count, ...)`` (scanner frame), or None
        for one uniform coil.
    coil_model : ``"exact"`` (coils fixed in the scanner) or ``"moving"`` (approximation: coils move with the head).
    eps, dtype : NUFFT accuracy and precision (``complex64`` halves memory; eps ≥ 1e-6 then).
    cluster_tol_mm, rank_tol, coarse_spacing_mm : accuracy of the coil weighting (module docstring); the
        cluster tolerance grows (the smallest that fits) when more than ``max_clusters`` clusters would be needed,
        and the clusters are then fitted by k-means, each state weighted by its samples' ``sample_energy``
        (:func:`~mrmotion.physics.coil_weighting.fit_clusters`). After construction, ``coil_pose_distance_mm`` is
        the largest FOV-corner distance between a state and the pose its coils were evaluated at (0 for one pose)
        and ``coil_pose_rms_mm`` the root mean square of those distances, each state weighted by its samples'
        ``sample_energy`` when given, else by their number.
    max_clusters : at most this many poses at which the coils are evaluated (default :data:`MAX_CLUSTERS`): the
        exact model's cost for long motion is about ``max_clusters × coils`` full-grid FFTs; fewer is faster and
        less accurate (``benchmarks/coil_cluster_error.py``).
    sample_energy : (M,) the expected signal energy of each sample (any scale, ≥ 0): ``Σ_c |y_c|²`` of measured
        data, or :func:`~mrmotion.physics.coil_weighting.expected_energy` of the image to be simulated. Only used
        when ``max_clusters`` binds: the coil poses then go where the signal is. None: every sample weighs the same
        (as does an all-zero energy).
    coarse_axes : the coil weighting's coarse nodes per axis, in this grid's voxel units (default:
        :func:`~mrmotion.physics.coil_weighting.coarse_axes` of this grid); a box cut from a larger grid passes the
        nodes of the larger grid's lattice it depends on (``coarse_axes(larger, spacing, box)``), so its weighting
        is the larger grid's, restricted.
    chunk : rank components per NUFFT call (memory vs speed).
    k_frame : (3, 3) rotation taking the given k to scanner k-space (e.g. the acquisition frame's, for logical
        k): ``k_scanner = k_frame @ k``, folded into each state's mapping instead of rotating every sample.
    origin_mm : (3,) where the receiver is centred (the acquisition's FOV centre, scanner LPS mm): samples are
        demodulated by ``e^{+i k·origin}``, as a scanner does for an off-centre field of view. With no motion and
        the grid centre at the origin, the forward operator is then the plain centred FFT.
    """

    def __init__(
        self,
        grid: ImageGrid,
        k_scanner: ArrayLike,
        times_s: ArrayLike,
        motion: MotionTrajectory | None = None,
        coils=None,
        coil_model: str = "exact",
        eps: float = 1e-6,
        dtype: type = np.complex128,
        cluster_tol_mm: float = 0.1,
        rank_tol: float = 1e-5,
        coarse_spacing_mm: float = COARSE_SPACING_MM,
        coarse_axes: list[np.ndarray] | None = None,
        chunk: int = 4,
        origin_mm: ArrayLike = (0.0, 0.0, 0.0),
        k_frame: ArrayLike | None = None,
        max_clusters: int | None = None,
        sample_energy: ArrayLike | None = None,
    ) -> None:
        self.max_clusters = MAX_CLUSTERS if max_clusters is None else max_clusters
        if isinstance(self.max_clusters, bool) or not isinstance(self.max_clusters, (int, np.integer)):
            raise MrMotionError(f"max_clusters must be a whole number of coil poses, got {max_clusters!r}")
        if self.max_clusters < 1:
            raise MrMotionError(f"max_clusters must be at least 1, got {max_clusters}")
        if coil_model not in COIL_MODELS:
            raise MrMotionError(f"coil_model must be one of {COIL_MODELS}, got {coil_model!r}")
        frame = np.eye(3) if k_frame is None else np.asarray(k_frame, dtype=np.float64)
        if frame.shape != (3, 3) or not np.all(np.isfinite(frame)):
            raise MrMotionError(f"k_frame: expected a finite (3, 3) matrix, got shape {frame.shape}")
        k = np.asarray(k_scanner, dtype=np.float64)
        times = np.asarray(times_s, dtype=np.float64)
        if k.ndim != 2 or k.shape[1] != 3 or k.shape[0] == 0 or times.shape != (k.shape[0],):
            raise MrMotionError(f"expected k (M, 3) and times (M,), got {k.shape} and {times.shape}")
        self.grid, self.dtype, self.count = grid, np.dtype(dtype), k.shape[0]
        energy = _checked_energy(sample_energy, k.shape[0])
        motion = motion if motion is not None else MotionTrajectory.constant(np.eye(4))
        states = motion.state_index(times)
        counts = np.bincount(states, minlength=len(motion))
        used = np.flatnonzero(counts)
        if len(used) < len(motion):  # states no sample sees are dropped (renumbered)
            renumber = np.zeros(len(motion), dtype=np.int64)
            renumber[used] = np.arange(len(used))
            states = renumber[states]
        transforms, samples_per_state = motion.transforms[used], counts[used]
        self._planned_ahead = self._plan_ahead(grid, len(used), coils, coil_model, max(1, chunk), eps, dtype)
        # how much each state's coil accuracy matters: its samples' signal energy, else their number
        state_weights = samples_per_state if energy is None else np.bincount(states, energy, len(transforms))
        self.cluster_tol_mm = float(cluster_tol_mm)
        if coil_model == "exact" and coils is not None:  # a uniform coil looks the same from every pose
            cluster_of_state, representative = cluster_states(grid, transforms, self.cluster_tol_mm, self.max_clusters)
            if len(representative) > self.max_clusters:  # bound the coil evaluations: coarser clusters for long motion
                greedy = self._fit_clusters(grid, transforms)
                cluster_of_state, poses = fit_clusters(grid, transforms, state_weights, self.max_clusters, [greedy])
            else:
                cluster_of_state, poses = central_poses(grid, transforms, cluster_of_state, samples_per_state)
            distances = pose_distances(grid, transforms, cluster_of_state, poses)
            self.coil_pose_distance_mm = float(distances.max())
            self.coil_pose_rms_mm = float(np.sqrt(np.average(distances**2, weights=state_weights + 1e-300)))
            # Truncating the SVD below the error the clustering already makes buys nothing (coil maps vary on a
            # scale of ≳ 50 mm, so a pose error of δ mm changes them by about δ/50; keep the rank 100× finer).
            rank_tol = max(rank_tol, self.cluster_tol_mm / 5000.0)
        else:
            cluster_of_state, poses = np.zeros(len(transforms), dtype=np.int64), np.eye(4)[None]
            self.coil_pose_distance_mm = self.coil_pose_rms_mm = 0.0
        weights, axes = coarse_weights(coils, grid, poses, coarse_spacing_mm, coarse_axes)
        per_cluster = np.bincount(cluster_of_state, weights=samples_per_state, minlength=len(poses)).astype(np.int64)
        voxels = int(np.prod(grid.shape))
        max_rank = max(weights.shape[1], MAX_WEIGHT_BYTES // (voxels * self.dtype.itemsize))
        self._groups = plan_groups(grid, poses, weights, per_cluster, rank_tol, max_rank)
        # Renumber clusters group by group, then sort the samples by (cluster, state): each group, each cluster in
        # it and each state in that is one contiguous block.
        order = np.concatenate([group.clusters for group in self._groups])
        renumber = np.empty(len(poses), dtype=np.int64)
        renumber[order] = np.arange(len(poses))
        cluster_of_state = renumber[cluster_of_state]
        # Acquisition order usually is this order already (states follow time): then skip the sort and gathers.
        # Checked on the runs of one state (a few per state), not on every sample.
        runs = _runs(states)
        run_states = states[runs[:-1]]
        run_keys = cluster_of_state[run_states] * len(transforms) + run_states
        if np.all(run_keys[1:] >= run_keys[:-1]):
            self.order, run_order = None, np.arange(len(run_states))
        else:  # sort the runs (stable), not the samples: the same order, and often a few blocks to copy
            run_order = np.argsort(run_keys, kind="stable")
            self.order = SampleOrder(runs[:-1][run_order], runs[1:][run_order])
        # the runs in the sorted order: their states, where each starts in the given order, and their bounds
        sorted_runs = np.concatenate([[0], np.cumsum(np.diff(runs)[run_order])])
        runs_in_order = (run_states[run_order], runs[:-1][run_order], sorted_runs)
        # the samples are sorted by renumbered cluster: the counts in that order (a group may join clusters that are
        # not consecutive, e.g. {1, 3} then {2})
        self.bounds = np.concatenate([[0], np.cumsum(per_cluster[order])])
        self.states, self.clusters = len(transforms), len(poses)
        self.coils = weights.shape[1]
        self.rank = sum(group.rank for group in self._groups)
        # group g holds the (renumbered) clusters first[g] … first[g + 1] − 1
        self._first = np.cumsum([0] + [len(group.clusters) for group in self._groups])
        self._largest = max(group.rank for group in self._groups)
        if coils is not None and self._largest * voxels * self.dtype.itemsize > MAX_WEIGHT_BYTES:
            raise MrMotionError(
                f"the coil model needs {self._largest} spatial components in one group of motion states: "
                f"{self._largest * voxels * self.dtype.itemsize / 1e9:.1f} GB on this grid, more than "
                f"{MAX_WEIGHT_BYTES / 1e9:.0f} GB. Use a coarser image or fewer coils"
            )
        self._axes = axes
        self._uniform = coils is None  # one uniform coil: the weighting is the constant U·V (no map to multiply by)
        if self._uniform:
            group = self._groups[0]
            self._groups = [CoilGroup(group.clusters, group.weights_u * group.coarse_v.reshape(-1)[0], group.coarse_v)]
        cache = not self._uniform and self.rank * voxels * self.dtype.itemsize <= CACHE_BYTES
        self._components: dict[int, np.ndarray] | None = {} if cache else None
        self._workspace: np.ndarray | None = None
        self._origin = np.asarray(origin_mm, dtype=np.float64).reshape(3)
        kappa, self._phase = self._augmented(k, transforms, *runs_in_order, frame)
        if self.order is not None:  # the factors in the given order: forward writes its samples straight there
            self._phase = self.order.put(self._phase[None])[0]
        self._kappa, self._eps, self._chunk = kappa, eps, max(1, chunk)
        self._pair: NufftPair | None = None
        self._pair_group = -1
        self._toeplitz = None

    def _plan_ahead(self, grid: ImageGrid, states: int, coils, coil_model: str, chunk: int, eps, dtype) -> bool:
        """Start FFTW's measured planning in the background (:func:`~mrmotion.physics.nufft.plan_ahead`) when the
        NUFFTs will likely be planned that way: at most one coil pose per state (up to ``max_clusters``), each
        costing about ``coils`` images (the exact weighting of a group has a rank of at least the coil count; groups
        merged into a lower total rank would choose ESTIMATE, and then use the plans made here anyway). The set-up
        that follows (clusters, coil fields, k-space coordinates: 2.3 s for one state per line of a 1-mm head) hides
        the ~2 s of planning. True when started."""
        count = 1 if coils is None else int(coils.count)
        poses = min(states, self.max_clusters) if coil_model == "exact" and coils is not None else 1
        per_call = min(chunk, count)
        images = poses * -(-count // per_call) * per_call
        if fft_planning(int(np.prod(grid.shape)), images) != "measure":
            return False
        plan_ahead(grid.shape, per_call, eps, dtype)
        return True

    def _fit_clusters(self, grid: ImageGrid, transforms: FloatArray) -> np.ndarray:
        """Greedy cluster labels (a start of :func:`~mrmotion.physics.coil_weighting.fit_clusters`) with the
        smallest tolerance that gives at most ``max_clusters`` clusters: doubling until they fit, then 6 bisection
        steps (doubling alone overshot: 28 clusters of a cap of 64 in ``benchmarks/coil_cluster_error.py``).
        Tolerances that do not fit stop at the cap's first excess cluster. Sets ``cluster_tol_mm``."""
        low, high = self.cluster_tol_mm, max(2.0 * self.cluster_tol_mm, 0.01)
        labels, representative = cluster_states(grid, transforms, high, self.max_clusters)
        while len(representative) > self.max_clusters:
            low, high = high, 2.0 * high
            labels, representative = cluster_states(grid, transforms, high, self.max_clusters)
        for _ in range(6):
            middle = 0.5 * (low + high)
            trial, representative = cluster_states(grid, transforms, middle, self.max_clusters)
            if len(representative) <= self.max_clusters:
                labels, high = trial, middle
            else:
                low = middle
        self.cluster_tol_mm = high
        return labels

    def _augmented(
        self,
        k: FloatArray,
        transforms: FloatArray,
        run_states: np.ndarray,
        run_sources: np.ndarray,
        runs: np.ndarray,
        frame: FloatArray,
    ):
        """Per sample in the sorted order: NUFFT coordinate κ (rad/voxel) and the factor ``|det L_t| e^{−iφ}``.

        ``k`` in the given order; sorted run r (samples ``runs[r]:runs[r + 1]``) has state ``run_states[r]`` and
        starts at given sample ``run_sources[r]`` (the samples are read where they are: no sorted copy of k).

        For state t and a sample k: the object is sampled at ``q = L_tᵀk``, at voxel frequency ``κ = L_gridᵀ q``
        and with phase ``φ = k·(d_t − origin) + q·r_centre``: a (dims + 1, 3) matrix per state applied to k
        (:func:`_fill_augmented`). Arrays are laid out (axis, sample), as finufft takes them.
        """
        linear = self.grid.scanner_from_voxel[:3, :3]
        centre = self.grid.positions(self.grid.centre_index)
        dims = len(self.grid.shape)
        real = np.float32 if self.dtype == np.complex64 else np.float64
        rotations = transforms[:, :3, :3]
        mappings = np.empty((len(transforms), dims + 1, 3))
        mappings[:, :dims] = np.swapaxes(rotations @ linear, 1, 2)[:, :dims]
        mappings[:, dims] = transforms[:, :3, 3] + rotations @ centre - self._origin
        mappings = mappings @ frame  # each row: r·k_scanner = r·(K k) = (r K)·k
        amplitudes = np.abs(np.linalg.det(rotations))
        kappa = np.empty((dims, len(k)), dtype=real)
        factor = np.empty(len(k), dtype=self.dtype)

        # Chunk by chunk on THREADS threads (numpy releases the GIL in its loops): each chunk's temporaries stay in
        # cache and no array of M values is made and freed, whose page faults cost as much as the arithmetic
        # (1 mm, 8.7 M samples: 0.5 s in one pass over whole arrays, 0.15 s this way; the same values).
        def fill(start: int) -> None:
            _fill_augmented(mappings, k, run_states, run_sources, runs, start, AUGMENTED_CHUNK, kappa, factor)

        starts = range(0, len(k), AUGMENTED_CHUNK)
        if len(starts) == 1:  # one chunk (a slice, a small volume): no threads to start
            fill(0)
        else:
            with ThreadPoolExecutor(max_workers=THREADS) as pool:
                list(pool.map(fill, starts))
        if not np.allclose(amplitudes, 1.0, rtol=0.0, atol=1e-12):  # affine motion: |det L_t| ≠ 1
            factor *= np.repeat(amplitudes[run_states], np.diff(runs)).astype(real)
        return kappa.T, factor

    def _group_samples(self, index: int) -> slice:
        """Where group ``index``'s samples are, in the sorted order."""
        return slice(int(self.bounds[self._first[index]]), int(self.bounds[self._first[index + 1]]))

    def _spatial(self, index: int) -> np.ndarray | None:
        """Group ``index``'s full-size components ``(R_g, *grid.shape)`` (None for one uniform coil)."""
        if self._uniform:
            return None
        if self._components is not None and index in self._components:
            return self._components[index]
        coarse = self._groups[index].coarse_v.reshape(-1, *(len(axis) for axis in self._axes))
        if self._components is not None:
            self._components[index] = upsample(coarse, self.grid, self._axes, self.dtype)
            return self._components[index]
        if self._workspace is None:  # not cached: one buffer for every group, reused at every application
            self._workspace = np.empty((self._largest, *self.grid.shape), dtype=self.dtype)
        return upsample(coarse, self.grid, self._axes, self.dtype, out=self._workspace)

    def _nufft(self, index: int) -> NufftPair:
        """The NUFFT on group ``index``'s samples: one pair of plans for all groups, moved to the group's points
        when it changes (each plan holds an oversampled grid per transform: one per group would not fit)."""
        rows = self._group_samples(index)
        if self._pair is None:
            transforms = min(self._chunk, self._largest)
            # images through the NUFFT per application of E or Eᴴ (each group's last call padded to a full batch)
            images = sum(-(-group.rank // transforms) * transforms for group in self._groups)
            # planned ahead: FFTW has (or is making) the measured plans, which then cost nothing here
            planning = "measure" if self._planned_ahead else fft_planning(int(np.prod(self.grid.shape)), images)
            self._pair = NufftPair(self.grid.shape, self._kappa[rows], transforms, self._eps, self.dtype, planning)
        elif self._pair_group != index:
            self._pair.set_points(self._kappa[rows])
        self._pair_group = index
        return self._pair

    def _cluster_blocks(self, index: int):
        """(local cluster number, slice of its samples within the group's samples) for group ``index``."""
        first = self._first[index]
        start = self.bounds[first]
        for local in range(self._first[index + 1] - first):
            yield local, slice(int(self.bounds[first + local] - start), int(self.bounds[first + local + 1] - start))

    def forward(self, image: ArrayLike) -> np.ndarray:
        """``E x``: image ``grid.shape`` → samples ``(coils, M)`` in the order given at construction."""
        x = np.asarray(image)
        if x.shape != self.grid.shape:
            raise MrMotionError(f"image shape {x.shape} does not match the grid {self.grid.shape}")
        x = np.ascontiguousarray(x, dtype=self.dtype)  # products with the (C-ordered) components stay streaming
        if self._uniform:  # one uniform coil (one group, rank 1): the samples times a constant and the phases
            y = self._nufft(0).forward(x)
            y = y if self.order is None else self.order.put(y)
            y *= self._phase
            constant = complex(self._groups[0].weights_u.reshape(-1)[0])
            if constant != 1.0:
                y *= constant
            return y
        # in the given order: each cluster's samples are added where they belong (no second array of all samples to
        # reorder into: on this machine, a fresh array of 8 coils × 8.7 M samples costs a second of page faults)
        y = np.zeros((self.coils, self.count), dtype=self.dtype)
        buffer = None if self._uniform else np.empty((min(self._chunk, self.rank), *self.grid.shape), self.dtype)
        for index, group in enumerate(self._groups):
            rows, spatial, pair = self._group_samples(index), self._spatial(index), self._nufft(index)
            for start in range(0, group.rank, pair.n_trans):
                stop = min(start + pair.n_trans, group.rank)
                if spatial is None:  # one uniform coil (rank 1): the image itself
                    batch = x
                else:
                    batch = buffer[: pair.n_trans]
                    np.multiply(spatial[start:stop], x, out=batch[: stop - start])
                    batch[stop - start :] = 0
                samples = pair.forward(batch)[: stop - start]
                for local, block in self._cluster_blocks(index):
                    weights = group.weights_u[local, :, start:stop].astype(self.dtype)
                    if stop - start == 1:  # (C, 1) @ (1, m) is not a BLAS product: a broadcast is several times faster
                        values = weights * samples[0, block]
                    else:
                        values = weights @ samples[:, block]
                    self._add_in_given_order(y, rows.start + block.start, values)
        y *= self._phase
        return y

    def _add_in_given_order(self, y: np.ndarray, first: int, values: np.ndarray) -> None:
        """``y (coils, M)`` (given order) += ``values (coils, n)``, the sorted samples ``first`` … ``first + n − 1``."""
        if self.order is None:
            y[:, first : first + values.shape[1]] += values
        else:
            self.order.add_to(y, first, values)

    def adjoint(self, data: ArrayLike) -> np.ndarray:
        """``Eᴴ y``: samples ``(coils, M)`` → image ``grid.shape``."""
        y = np.asarray(data)
        if y.shape != (self.coils, self.count):
            raise MrMotionError(f"k-space data shape {y.shape} does not match ({self.coils}, {self.count})")
        y = y * np.conj(self._phase)
        y = y if self.order is None else self.order.take(y)
        image = np.zeros(self.grid.shape, dtype=self.dtype)
        for index, group in enumerate(self._groups):
            rows, spatial, pair = self._group_samples(index), self._spatial(index), self._nufft(index)
            part = y[:, rows]
            for start in range(0, group.rank, pair.n_trans):
                stop = min(start + pair.n_trans, group.rank)
                batch = np.zeros((pair.n_trans, rows.stop - rows.start), dtype=self.dtype)
                for local, block in self._cluster_blocks(index):
                    weights = group.weights_u[local, :, start:stop].astype(self.dtype)
                    batch[: stop - start, block] = weights.conj().T @ part[:, block]
                images = pair.adjoint(batch)[: stop - start]
                if spatial is None:
                    image += images[0]
                else:
                    image += np.einsum("r...,r...->...", np.conj(spatial[start:stop]), images)
        return image

    @property
    def uses_toeplitz(self) -> bool:
        """Whether :meth:`normal` is a convolution: every sample sees the same coil weighting (one cluster)."""
        return self.clusters == 1

    def normal(self, image: ArrayLike) -> np.ndarray:
        """``Eᴴ E x``.

        With one coil weighting for all samples (``coil_model="moving"``, one uniform coil, or motion within one
        cluster), ``EᴴE = Σ_j λ_j B_jᴴ T B_j``: T the NUFFT's normal operator with weights |a_m|² (the phases
        cancel), a convolution (:class:`~mrmotion.physics.toeplitz.ToeplitzNormal`), and ``B_j`` the eigenmaps of
        the coil weighting's Gram matrix ``UᴴU``: one zero-padded FFT pair per coil instead of two NUFFTs (2.5×
        faster at 1 mm). Otherwise ``Eᴴ(E x)``.
        """
        if not self.uses_toeplitz:
            return self.adjoint(self.forward(image))
        x = np.asarray(image)
        if x.shape != self.grid.shape:
            raise MrMotionError(f"image shape {x.shape} does not match the grid {self.grid.shape}")
        if self._toeplitz is None:
            self._toeplitz = self._make_toeplitz()
        convolution, strengths, maps = self._toeplitz
        if maps is None:  # one uniform coil
            return (strengths[0] * convolution.apply(x)).astype(self.dtype, copy=False)
        # Σ_j conj(√λ_j B_j) ⊙ T(√λ_j B_j ⊙ x), through one work image (no fresh temporaries per map)
        result = np.zeros(self.grid.shape, dtype=self.dtype)
        work = np.empty(self.grid.shape, dtype=self.dtype)
        for coil_map in maps:
            np.multiply(coil_map, x, out=work)
            convolved = convolution.apply(work)
            np.conjugate(coil_map, out=work)
            work *= convolved
            result += work
        return result

    def _make_toeplitz(self):
        """(convolution, λ_j, B_j or None) for :meth:`normal` (made on first use: a simulation never needs it)."""
        weights = np.abs(self._phase.astype(np.complex128)) ** 2
        weights = weights if self.order is None else self.order.take(weights)  # aligned with the sorted points
        convolution = ToeplitzNormal(self.grid.shape, self._kappa, weights, self._eps, self.dtype)
        u = self._groups[0].weights_u[0].astype(np.complex128)  # (coils, R): one cluster
        strengths, vectors = np.linalg.eigh(u.conj().T @ u)
        keep = strengths > 1e-12 * max(float(strengths.max()), 1e-300)
        if self._uniform:
            return convolution, strengths[keep], None
        spatial = self._spatial(0)
        # the eigenmaps scaled by √λ_j: EᴴE = Σ_j (√λ_j B_j)ᴴ T (√λ_j B_j)
        maps = [
            (np.sqrt(strengths[j]) * np.tensordot(vectors[:, j].conj(), spatial, axes=1)).astype(self.dtype)
            for j in np.flatnonzero(keep)
        ]
        return convolution, strengths[keep], maps


#: A sample reordering made of at most this many contiguous blocks is applied by copying the blocks (a few cluster
#: runs of continuous motion: memory-speed copies); more (e.g. a random acquisition order) use an index array.
MAX_ORDER_BLOCKS = 4096


class SampleOrder:
    """A reordering of M samples: sorted position p holds given sample ``index[p]``, stored as the contiguous blocks
    ``[starts[b], stops[b])`` of the given order that follow each other in the sorted order.

    Continuous motion sorted by pose cluster is a few dozen blocks, which are copied with slices instead of sorting
    every sample and gathering through an index array; :meth:`add_to` lets the forward operator write each cluster's
    samples straight into the given order. (One state per line of the 1-mm benchmark with 8 coil poses, profiled by
    ``python benchmarks/simulate_vs_torchio.py --profile '{"job": "ours", "states": "line", "coils": 8,
    "resolution": 1, "max_clusters": 8}'``: the simulation's k-space 14.4 s before, 13.0–13.5 s after, mostly the
    page faults of a second array of all samples no longer made.)"""

    def __init__(self, starts: np.ndarray, stops: np.ndarray) -> None:
        starts, stops = np.asarray(starts, dtype=np.int64), np.asarray(stops, dtype=np.int64)
        joined = np.flatnonzero(starts[1:] != stops[:-1]) + 1  # merge blocks that continue one another
        self.starts, self.stops = starts[np.r_[0, joined]], stops[np.r_[joined - 1, len(stops) - 1]]
        lengths = self.stops - self.starts
        self.count = int(lengths.sum())
        self._sorted_starts = np.cumsum(lengths) - lengths
        self._index = None
        if len(self.starts) > MAX_ORDER_BLOCKS:  # given position of each sorted sample, without a per-block loop
            self._index = np.repeat(self.starts - self._sorted_starts, lengths) + np.arange(self.count)

    def _pairs(self):
        for start, stop, at in zip(
            self.starts.tolist(), self.stops.tolist(), self._sorted_starts.tolist(), strict=True
        ):
            yield slice(start, stop), slice(at, at + stop - start)

    def take(self, array: np.ndarray) -> np.ndarray:
        """``array (..., M)`` with its samples in the given order → in the sorted order."""
        if self._index is not None:
            return np.take(array, self._index, axis=-1)
        result = np.empty_like(array)
        for given, sorted_ in self._pairs():
            result[..., sorted_] = array[..., given]
        return result

    def add_to(self, given: np.ndarray, first: int, values: np.ndarray) -> None:
        """``given (..., M)`` += ``values (..., n)`` of the sorted samples ``first`` … ``first + n − 1``."""
        last = first + values.shape[-1]
        if self._index is not None:
            given[..., self._index[first:last]] += values  # the positions are distinct: no lost additions
            return
        block = max(0, int(np.searchsorted(self._sorted_starts, first, side="right")) - 1)
        while block < len(self.starts) and self._sorted_starts[block] < last:
            begin = max(first, int(self._sorted_starts[block]))
            end = min(last, int(self._sorted_starts[block] + self.stops[block] - self.starts[block]))
            if end > begin:
                at = int(self.starts[block]) + begin - int(self._sorted_starts[block])
                given[..., at : at + end - begin] += values[..., begin - first : end - first]
            block += 1

    def put(self, array: np.ndarray) -> np.ndarray:
        """``array (..., M)`` with its samples in the sorted order → in the given order."""
        result = np.empty_like(array)
        if self._index is not None:
            result[..., self._index] = array
            return result
        for given, sorted_ in self._pairs():
            result[..., given] = array[..., sorted_]
        return result


def _runs(states: np.ndarray) -> np.ndarray:
    """Boundaries of the runs of equal state: run r is ``states[runs[r]:runs[r + 1]]``."""
    return np.concatenate([[0], np.flatnonzero(states[1:] != states[:-1]) + 1, [len(states)]])


def _fill_augmented(
    mappings: FloatArray,
    k: FloatArray,
    run_states: np.ndarray,
    run_sources: np.ndarray,
    runs: np.ndarray,
    start: int,
    length: int,
    kappa: np.ndarray,
    factor: np.ndarray,
) -> None:
    """Samples ``start:start + length`` of :meth:`MotionEncoding._augmented`: ``kappa[:, start:stop]`` (rad/voxel) and
    ``factor[start:stop] = e^{−iφ}`` from each state's (dims + 1, 3) mapping applied to k (rad/mm, given order; see
    :meth:`MotionEncoding._augmented` for the runs)."""
    dims, stop = kappa.shape[0], min(start + length, kappa.shape[1])
    first = int(np.searchsorted(runs, start, side="right")) - 1
    last = int(np.searchsorted(runs, stop, side="left"))
    bounds = np.clip(runs[first : last + 1], start, stop).tolist()
    phase = np.empty(stop - start)
    # The loop over the runs of one state does only the matrix products (one pass over the run's k); everything
    # per sample is vectorised after it (done per run, it cost 1 s of Python for 44,000 states).
    for run, (begin, end) in enumerate(zip(bounds[:-1], bounds[1:], strict=True), start=first):
        source = int(run_sources[run]) + begin - int(runs[run])
        product = mappings[run_states[run]] @ k[source : source + end - begin].T
        kappa[:, begin:end] = product[:dims]
        phase[begin - start : end - start] = product[dims]
    # Phases reach ~10³ rad: reduce them in double precision (φ − 2π·rint(φ/2π), into [−π, π]: three times faster
    # than np.remainder), then take cos/sin in the working precision (single-precision cos/sin is 10× faster; the
    # reduced phase then keeps ~1e-7 rad). Written straight into the parts of the complex array.
    turns = np.multiply(phase, 1.0 / (2.0 * np.pi))
    np.rint(turns, out=turns)
    turns *= 2.0 * np.pi
    reduced = np.subtract(phase, turns, out=phase).astype(kappa.dtype)
    part = factor[start:stop]
    np.cos(reduced, out=part.real)
    np.sin(reduced, out=part.imag)
    np.negative(part.imag, out=part.imag)
