"""The motion-aware multi-coil encoding operator: image → k-space samples of a moving object, and its adjoint.

Physics (DESIGN.md §2). A sample at scanner k-space position k (rad/mm), taken while the object is moved by
``A_t = [L_t d_t]`` (scanner LPS mm, about the isocentre), with receive coil c fixed in the scanner, is

    y_c(k) = Σ_r C_c(r) ρ(A_t⁻¹ r) e^{−i k·r}
           = |det L_t| e^{−i k·d_t} Σ_u C_c(A_t r(u)) ρ(u) e^{−i (L_tᵀk)·r(u)}         (r = A_t r(u))

where u runs over the voxels of the (unmoved) image and r(u) = L u + o their scanner positions. The augmented
k-space vector ``A_tᵀ[k; 0] = [L_tᵀk; d_t·k]`` gives every sample its own coordinate and phase, so a single NUFFT
over all samples handles any number of motion states.

The coils, fixed in the scanner, appear in the object frame as ``C_c(A_t r(u))``: different for every state.
They are smooth, which this operator uses twice (both errors are measured in the tests):

1. states whose poses differ by less than ``cluster_tol_mm`` (largest displacement of a corner of the field of
   view) share one coil weighting, evaluated at the cluster's first pose;
2. the weightings ``W[(cluster, coil), u]`` are evaluated on a coarse grid (``coarse_spacing_mm``), compressed by
   an SVD into R spatial components ``V_r(u)`` (relative singular value ≥ ``rank_tol``) and interpolated to the
   image grid with cubic splines: ``C_c(A_t r(u)) ≈ Σ_r U[cluster(t), c, r] V_r(u)``.

Then ``y_c(k_m) = a_m e^{−iφ_m} Σ_r U[κ(m), c, r] NUFFT[V_r ρ](κ_m)``: R NUFFTs, whatever the number of states.
``coil_model="moving"`` is the common approximation that coils move with the head (``C_c(r(u))`` for every state):
one cluster, R ≤ number of coils.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.interpolate import CubicSpline

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import FloatArray, apply, as_transform
from mrmotion.physics.nufft import NufftPair
from mrmotion.physics.trajectory import MotionTrajectory

COIL_MODELS = ("exact", "moving")
#: At most this many coil weightings are evaluated (the tolerance is doubled until the states fit): the SVD of
#: (clusters × coils) × coarse-grid points stays a few seconds. The tolerance used is ``MotionEncoding.cluster_tol_mm``.
MAX_CLUSTERS = 64
#: Memory allowed for the full-size coil weighting components (R × voxels); beyond it the operator refuses with a
#: clear message instead of exhausting the machine (the exact model's cost grows with the motion's diversity).
MAX_WEIGHT_BYTES = 3_000_000_000


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

    def corners(self) -> FloatArray:
        """Scanner positions of the corners of the grid, (4 or 8, 3)."""
        extents = [(0, n - 1) for n in self.shape]
        corners = np.stack(np.meshgrid(*extents, indexing="ij"), axis=-1).reshape(-1, len(self.shape))
        return self.positions(corners)


def cluster_states(grid: ImageGrid, transforms: FloatArray, tol_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Group motion states whose FOV corners move by less than ``tol_mm`` from a cluster's first state.

    Returns ``(cluster of each state (T,), index of each cluster's representative state (K,))``. Greedy in time
    order, checking the previous state's cluster first (consecutive states are usually close).
    """
    corners = grid.corners()
    moved = np.einsum("tij,pj->tpi", transforms[:, :3, :3], corners) + transforms[:, None, :3, 3]  # (T, P, 3)
    labels = np.empty(len(transforms), dtype=np.int64)
    representatives: list[int] = []
    last = -1
    for state in range(len(transforms)):
        if last >= 0 and np.max(np.linalg.norm(moved[state] - moved[representatives[last]], axis=-1)) <= tol_mm:
            labels[state] = last
            continue
        if representatives:
            distance = np.max(np.linalg.norm(moved[representatives] - moved[state], axis=-1), axis=-1)
            best = int(np.argmin(distance))
            if distance[best] <= tol_mm:
                labels[state] = last = best
                continue
        representatives.append(state)
        labels[state] = last = len(representatives) - 1
    return labels, np.asarray(representatives)


def coarse_axes(grid: ImageGrid, spacing_mm: float) -> list[np.ndarray]:
    """Voxel positions of a coarse sub-grid, about ``spacing_mm`` apart (all voxels of short axes)."""
    voxel = np.linalg.norm(grid.scanner_from_voxel[:3, : len(grid.shape)], axis=0)
    axes = []
    for size, step in zip(grid.shape, voxel, strict=True):
        points = int(np.ceil((size - 1) * step / spacing_mm)) + 1
        dense = size <= max(points, 4)
        axes.append(np.arange(size, dtype=np.float64) if dense else np.linspace(0, size - 1, points))
    return axes


def upsample(coarse: np.ndarray, grid: ImageGrid, axes: list[np.ndarray]) -> np.ndarray:
    """Cubic-spline interpolation of ``(R, *coarse shape)`` values on :func:`coarse_axes` to ``(R, *grid.shape)``.

    Separable: one small dense (size × coarse size) matrix per axis, applied with tensordot."""
    out = coarse
    for axis, (size, positions) in enumerate(zip(grid.shape, axes, strict=True)):
        if len(positions) == size:
            continue
        matrix = CubicSpline(positions, np.eye(len(positions)), axis=0)(np.arange(size))
        out = np.moveaxis(np.tensordot(matrix, out, axes=([1], [axis + 1])), 0, axis + 1)
    return out


def coil_maps_on_grid(coils, grid: ImageGrid, spacing_mm: float = 8.0) -> np.ndarray:
    """``(count, *grid.shape)`` sensitivities of scanner-fixed coils on the grid (coarse grid + cubic splines)."""
    axes = coarse_axes(grid, spacing_mm)
    positions = grid.positions(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1))
    return upsample(np.asarray(coils.sensitivities(positions), dtype=np.complex128), grid, axes)


class MotionEncoding:
    """``E``: image (grid) → multi-coil samples ``(coils, M)`` of the moving object, and ``Eᴴ``.

    Parameters
    ----------
    grid : the image grid (object frame at the reference pose).
    k_scanner : (M, 3) sample positions in scanner k-space, rad/mm (logical k rotated by the acquisition frame).
    times_s : (M,) sample times, s (to look up the motion state).
    motion : piecewise-constant motion (scanner LPS, about the isocentre), or None for a still object.
    coils : an object with ``count`` and ``sensitivities(points_mm) -> (count, ...)`` (scanner frame), or None
        for one uniform coil.
    coil_model : ``"exact"`` (coils fixed in the scanner) or ``"moving"`` (approximation: coils move with the head).
    eps, dtype : NUFFT accuracy and precision (``complex64`` halves memory; eps ≥ 1e-6 then).
    cluster_tol_mm, rank_tol, coarse_spacing_mm : accuracy of the coil weighting (module docstring); the
        cluster tolerance grows (doubling) when more than :data:`MAX_CLUSTERS` clusters would be needed.
    chunk : rank components per NUFFT call (memory vs speed).
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
        coarse_spacing_mm: float = 8.0,
        chunk: int = 4,
        origin_mm: ArrayLike = (0.0, 0.0, 0.0),
    ) -> None:
        if coil_model not in COIL_MODELS:
            raise MrMotionError(f"coil_model must be one of {COIL_MODELS}, got {coil_model!r}")
        k = np.asarray(k_scanner, dtype=np.float64)
        times = np.asarray(times_s, dtype=np.float64)
        if k.ndim != 2 or k.shape[1] != 3 or k.shape[0] == 0 or times.shape != (k.shape[0],):
            raise MrMotionError(f"expected k (M, 3) and times (M,), got {k.shape} and {times.shape}")
        self.grid, self.dtype, self.count = grid, np.dtype(dtype), k.shape[0]
        motion = motion if motion is not None else MotionTrajectory.constant(np.eye(4))
        states = motion.state_index(times)
        used = np.flatnonzero(np.bincount(states, minlength=len(motion)))
        renumber = np.zeros(len(motion), dtype=np.int64)
        renumber[used] = np.arange(len(used))
        states = renumber[states]
        transforms = motion.transforms[used]
        self.cluster_tol_mm = float(cluster_tol_mm)
        if coil_model == "exact" and coils is not None:  # a uniform coil looks the same from every pose
            cluster_of_state, representative = cluster_states(grid, transforms, self.cluster_tol_mm)
            while len(representative) > MAX_CLUSTERS:  # bound the SVD: coarser clusters for long, smooth motion
                self.cluster_tol_mm = max(2.0 * self.cluster_tol_mm, 0.01)
                cluster_of_state, representative = cluster_states(grid, transforms, self.cluster_tol_mm)
            poses = transforms[representative]
            # Truncating the SVD below the error the clustering already makes buys nothing (coil maps vary on a
            # scale of ≳ 50 mm, so a pose error of δ mm changes them by about δ/50; keep the rank 100× finer).
            rank_tol = max(rank_tol, self.cluster_tol_mm / 5000.0)
        else:
            cluster_of_state, poses = np.zeros(len(transforms), dtype=np.int64), np.eye(4)[None]
        # Samples sorted by (cluster, state): each cluster, and each state within it, is one contiguous block.
        key = cluster_of_state[states] * len(transforms) + states
        # Acquisition order usually is this order already (states follow time): then skip the sort and gathers.
        self.order = None if np.all(key[1:] >= key[:-1]) else np.argsort(key, kind="stable")
        sorted_states = states if self.order is None else states[self.order]
        self.bounds = np.searchsorted(cluster_of_state[sorted_states], np.arange(len(poses) + 1))
        self.states, self.clusters = len(transforms), len(poses)

        self._origin = np.asarray(origin_mm, dtype=np.float64).reshape(3)
        kappa, self._phase = self._augmented(k if self.order is None else k[self.order], transforms, sorted_states)
        self._weights_u, coarse_v, axes = self._coil_weights(coils, poses, coarse_spacing_mm, rank_tol)
        self.coils, self.rank = self._weights_u.shape[1], self._weights_u.shape[2]
        needed = self.rank * int(np.prod(grid.shape)) * self.dtype.itemsize
        if coils is not None and needed > MAX_WEIGHT_BYTES:
            raise MrMotionError(
                f"the exact coil model needs {self.rank} spatial components for this motion "
                f"({self.clusters} pose clusters × {self.coils} coils): {needed / 1e9:.1f} GB on this grid, more "
                f"than {MAX_WEIGHT_BYTES / 1e9:.0f} GB. Use coil_model='moving' (coils move with the head), fewer "
                "distinct motion states, or a coarser image"
            )
        # One uniform coil: the weighting is the constant U·V, folded into U (no full-size map to multiply by).
        self._v = None if coils is None else upsample(coarse_v.astype(self.dtype), grid, axes)
        if coils is None:
            self._weights_u = self._weights_u * coarse_v.reshape(-1)[0]
        self._chunk = max(1, min(chunk, self.rank))
        self._nufft = NufftPair(grid.shape, kappa, self._chunk, eps, self.dtype)

    def _augmented(self, k: FloatArray, transforms: FloatArray, states: np.ndarray):
        """Per sample (sorted by state): NUFFT coordinate κ (rad/voxel) and the factor ``|det L_t| e^{−iφ}``.

        For state t and a sample k: the object is sampled at ``q = L_tᵀk``, at voxel frequency ``κ = L_gridᵀ q``
        and with phase ``φ = k·(d_t − origin) + q·r_centre``; one (4, 3) @ (3, n) product per state. Arrays are laid out
        (axis, sample) because that is 3× faster here and is what finufft takes.
        """
        linear = self.grid.scanner_from_voxel[:3, :3]
        centre = self.grid.positions(self.grid.centre_index)
        dims = len(self.grid.shape)
        columns = np.ascontiguousarray(k.T)  # (3, M)
        kappa = np.empty((dims, len(k)))
        factor = np.empty(len(k), dtype=self.dtype)
        bounds = np.searchsorted(states, np.arange(len(transforms) + 1))
        for state, transform in enumerate(transforms):
            block = slice(bounds[state], bounds[state + 1])
            if block.start == block.stop:
                continue
            rotation = transform[:3, :3]
            mapping = np.empty((dims + 1, 3))
            mapping[:dims] = (rotation @ linear)[:, :dims].T
            mapping[dims] = transform[:3, 3] + rotation @ centre - self._origin
            mapped = mapping @ columns[:, block]
            kappa[:, block] = mapped[:dims]
            amplitude = abs(np.linalg.det(rotation))
            factor[block].real = amplitude * np.cos(mapped[dims])
            factor[block].imag = -amplitude * np.sin(mapped[dims])
        return kappa.T, factor

    def _coil_weights(self, coils, poses: FloatArray, spacing_mm: float, rank_tol: float):
        """Low-rank coil weighting on a coarse grid: U (K, coils, R), V (R, *coarse shape), coarse voxel axes."""
        axes = coarse_axes(self.grid, spacing_mm)
        coarse = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        positions = self.grid.positions(coarse).reshape(-1, 3)  # (G, 3) scanner mm at the reference pose
        if coils is None:
            weights = np.ones((len(poses), 1, len(positions)), dtype=np.complex128)
        else:
            moved = apply(poses[:, None], positions[None])  # (K, G, 3)
            weights = np.moveaxis(np.asarray(coils.sensitivities(moved), dtype=np.complex128), 0, 1)  # (K, C, G)
        clusters, count, size = weights.shape
        # SVD of the wide matrix through a QR of its transpose (Wᴴ = Q R, then the SVD of the small R): as accurate
        # as LAPACK's SVD of W, and far faster here under load (BLAS-3 QR instead of the wide bidiagonalisation).
        matrix = weights.reshape(clusters * count, size)
        q, r = np.linalg.qr(matrix.conj().T)
        u, singular, vh = np.linalg.svd(r.conj().T)
        rank = max(1, int(np.sum(singular > rank_tol * singular[0])))
        right = vh[:rank] @ q.conj().T
        left = (u[:, :rank] * singular[:rank]).reshape(clusters, count, rank)
        return left, right.reshape(rank, *coarse.shape[:-1]), axes

    def forward(self, image: ArrayLike) -> np.ndarray:
        """``E x``: image ``grid.shape`` → samples ``(coils, M)`` in the order given at construction."""
        x = np.asarray(image)
        if x.shape != self.grid.shape:
            raise MrMotionError(f"image shape {x.shape} does not match the grid {self.grid.shape}")
        y = np.zeros((self.coils, self.count), dtype=self.dtype)
        for start in range(0, self.rank, self._chunk):
            stop = min(start + self._chunk, self.rank)
            batch = np.zeros((self._chunk, *self.grid.shape), dtype=self.dtype)
            batch[: stop - start] = x if self._v is None else self._v[start:stop] * x
            samples = self._nufft.forward(batch)[: stop - start]
            for cluster in range(self.clusters):
                block = slice(self.bounds[cluster], self.bounds[cluster + 1])
                y[:, block] += self._weights_u[cluster, :, start:stop].astype(self.dtype) @ samples[:, block]
        y *= self._phase
        if self.order is None:
            return y
        out = np.empty_like(y)
        out[:, self.order] = y
        return out

    def adjoint(self, data: ArrayLike) -> np.ndarray:
        """``Eᴴ y``: samples ``(coils, M)`` → image ``grid.shape``."""
        y = np.asarray(data)
        if y.shape != (self.coils, self.count):
            raise MrMotionError(f"k-space data shape {y.shape} does not match ({self.coils}, {self.count})")
        y = (y if self.order is None else y[:, self.order]) * np.conj(self._phase)
        image = np.zeros(self.grid.shape, dtype=self.dtype)
        for start in range(0, self.rank, self._chunk):
            stop = min(start + self._chunk, self.rank)
            batch = np.zeros((self._chunk, self.count), dtype=self.dtype)
            for cluster in range(self.clusters):
                block = slice(self.bounds[cluster], self.bounds[cluster + 1])
                weights = self._weights_u[cluster, :, start:stop].astype(self.dtype)
                batch[: stop - start, block] = weights.conj().T @ y[:, block]
            images = self._nufft.adjoint(batch)[: stop - start]
            if self._v is None:
                image += images[0]
            else:
                image += np.einsum("r...,r...->...", np.conj(self._v[start:stop]), images)
        return image

    def normal(self, image: ArrayLike) -> np.ndarray:
        """``Eᴴ E x``."""
        return self.adjoint(self.forward(image))
