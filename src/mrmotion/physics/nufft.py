"""Non-uniform FFT between an image grid and arbitrary k-space points (finufft), with the project's conventions.

Grid convention: an image ``f`` of shape ``n`` (2-D or 3-D) has its centre at voxel index ``c = n // 2``. For
k-space points given in radians per *voxel*, ``κ`` (M, ndim),

    forward (type 2):  y_m = Σ_u f(u) exp(−i κ_m · (u − c))
    adjoint (type 1):  f(u) = Σ_m y_m exp(+i κ_m · (u − c))

which is finufft's mode ordering (modes −n/2 … with ``modeord=0``) and the project's signal convention
``s(k) = Σ ρ(r) exp(−i k·r)``. Points outside [−3π, 3π] (finufft's range) are wrapped into [−π, π) (the sums
are 2π-periodic in κ).
Physical k (rad/mm) enters through :mod:`mrmotion.physics.encoding`.

One :class:`NufftPair` holds a type-2 and a type-1 plan for the same points, so iterative reconstruction pays
the point sorting once. ``n_trans`` images are transformed per call (e.g. all coils at once).
"""

from __future__ import annotations

import os
import threading

import finufft
import numpy as np
from numpy.typing import ArrayLike

from mrmotion.errors import MrMotionError

#: Threads finufft may use (this machine has 2 cores); override with MRMOTION_THREADS.
THREADS = int(os.environ.get("MRMOTION_THREADS", os.cpu_count() or 1))


#: Above this many voxels, simulation and reconstruction run in single precision (complex64, NUFFT tolerance
#: 1e-4): three times faster and half the memory; below, double precision at 1e-6.
SINGLE_PRECISION_VOXELS = 200_000


def precision(voxels: int) -> tuple[float, type]:
    """``(eps, dtype)`` for an image of ``voxels`` voxels (see :data:`SINGLE_PRECISION_VOXELS`)."""
    return (1e-4, np.complex64) if voxels > SINGLE_PRECISION_VOXELS else (1e-6, np.complex128)


#: FFTW planning flags (finufft's ``fftw`` option): ESTIMATE plans in no time from heuristics; MEASURE times
#: candidate algorithms first (seconds for a 1-mm head's oversampled grid, once per process: FFTW keeps the plans
#: it found) and then runs each FFT faster (``benchmarks/fft_planning.py``, planning included: 1.06–1.46× on 1-mm
#: 8-coil runs).
FFTW_FLAGS = {"estimate": 64, "measure": 0}
#: :func:`fft_planning` measures only grids above this many voxels (a 1-mm head: 8.7 M; 2 mm: 1.1 M) …
MEASURE_VOXELS = 2_000_000
#: … of which a caller transforms at least this many images (e.g. 8 coils × 8 groups of motion states).
MEASURE_IMAGES = 64


def fft_planning(voxels: int, images: int) -> str:
    """``"measure"`` when at least :data:`MEASURE_IMAGES` images of ``voxels`` voxels (calls × images per call) go
    through the NUFFT and the grid is larger than :data:`MEASURE_VOXELS`, so that the faster FFTs repay FFTW's
    planning; else ``"estimate"``. Measured plans depend on timings, so two processes may round differently (to the
    precision's last digits)."""
    return "measure" if voxels > MEASURE_VOXELS and images >= MEASURE_IMAGES else "estimate"


def plan_ahead(
    shape: tuple[int, ...], n_trans: int, eps: float, dtype: type, kinds: tuple[int, ...] = (2,)
) -> threading.Thread:
    """Start making FFTW's measured plans for :class:`NufftPair` transforms of these sizes in a background thread.

    FFTW_MEASURE planning of a 1-mm head's oversampled grid takes ~2 s; FFTW keeps what it found for the rest of
    the process, so a :class:`NufftPair` created later with ``fft_planning="measure"`` and the same shape, precision,
    kinds and batch plans in no time. Started before an operator's set-up (clustering, coil fields, k-space
    coordinates: mostly one core), the planning runs on the other. finufft serialises its own FFTW planning with
    a lock, so a pair planned while this runs waits for it and then finds its plans. Returns the (started)
    thread; its ``error`` is the exception planning raised, if any (not raised: the pair that needs the plan makes
    it, and raises there)."""
    options, sizes, real = _options(eps, "measure"), tuple(int(n) for n in shape), np.dtype(dtype).name

    def make() -> None:
        try:
            for kind in kinds:
                finufft.Plan(kind, sizes, int(n_trans), eps, isign=_ISIGN[kind], dtype=real, **options)
        except Exception as error:  # kept, not raised in a thread nobody joins
            thread.error = error

    thread = threading.Thread(target=make, name="mrmotion-fft-planning", daemon=True)
    thread.error = None
    thread.start()
    return thread


#: finufft's exponent sign for each NUFFT type, in the project's convention (module docstring)
_ISIGN = {2: -1, 1: +1}


def _options(eps: float, fft_planning: str) -> dict:
    """finufft's options for a :class:`NufftPair` (threads, mode order, oversampling, FFTW planning)."""
    return {"nthreads": THREADS, "modeord": 0, "upsampfac": upsampling(eps), "fftw": FFTW_FLAGS[fft_planning]}


def upsampling(eps: float) -> float:
    """finufft's oversampling factor for tolerance ``eps``: 1.25 halves the time of a 1-mm 3-D transform here
    (smaller FFTs) and supports eps ≥ ~1e-8; 2 below that."""
    return 1.25 if eps >= 1e-8 else 2.0


def point_columns(kappa: ArrayLike, ndim: int, dtype: type, what: str) -> list[np.ndarray]:
    """``(M, ndim)`` points (rad/voxel) as finufft takes them: one contiguous array per axis in the real type of
    ``dtype``, wrapped into [−π, π) when some lie outside finufft's [−3π, 3π] (the sums are 2π-periodic). The
    caller's array is never changed. Bad shapes or non-finite points: a clear error naming ``what``."""
    points = np.asarray(kappa)
    if points.ndim != 2 or points.shape[1] != ndim or points.shape[0] == 0:
        raise MrMotionError(f"{what} points: expected shape (M, {ndim}), got {points.shape}")
    real = np.float32 if np.dtype(dtype) == np.complex64 else np.float64
    # a transposed (ndim, M) array costs no reordering
    columns = [np.ascontiguousarray(points[:, axis], dtype=real) for axis in range(ndim)]
    for axis, column in enumerate(columns):
        # min and max make no temporary of M values, and NaN propagates into both
        low, high = float(column.min()), float(column.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            raise MrMotionError(f"{what} points contain NaN or infinite values")
        if max(-low, high) > 3.0 * np.pi:  # into a new array: the column may be a view of the caller's points
            columns[axis] = (np.mod(column + np.pi, 2.0 * np.pi) - np.pi).astype(real)
    return columns


class NufftPair:
    """Forward (type 2) and adjoint (type 1) NUFFT on a fixed set of points.

    Parameters
    ----------
    shape : image grid shape, 2 or 3 sizes.
    kappa : (M, ndim) k-space points in radians per voxel.
    n_trans : how many images each call transforms.
    eps : requested relative accuracy (finufft tolerance).
    dtype : ``complex128`` (double precision) or ``complex64`` (single; eps ≥ 1e-6, half the memory).
    fft_planning : ``"estimate"`` or ``"measure"`` (:data:`FFTW_FLAGS`, :func:`fft_planning`).
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        kappa: ArrayLike,
        n_trans: int = 1,
        eps: float = 1e-6,
        dtype: type = np.complex128,
        fft_planning: str = "estimate",
    ) -> None:
        if fft_planning not in FFTW_FLAGS:
            raise MrMotionError(f"fft_planning must be one of {tuple(FFTW_FLAGS)}, got {fft_planning!r}")
        self.shape = tuple(int(n) for n in shape)
        if len(self.shape) not in (2, 3) or min(self.shape) < 1:
            raise MrMotionError(f"NUFFT grid must be 2-D or 3-D with positive sizes, got {shape}")
        self.dtype = np.dtype(dtype)
        self.n_trans = int(n_trans)
        self._options = _options(eps, fft_planning)
        self._eps = eps
        self._plans: dict[int, finufft.Plan] = {}
        self._plans_in_order = False  # whether the type-2 plan was made without sorting (see _plan)
        self.set_points(kappa)

    def set_points(self, kappa: ArrayLike) -> None:
        """Move the transforms to new points ``(M, ndim)``, keeping the plans (and their oversampled grids, whose
        first use costs as much as an FFT): how an operator visits groups of samples one after the other."""
        columns = point_columns(kappa, len(self.shape), self.dtype, "NUFFT")
        self._columns, self.count = columns, len(columns[0])
        self._in_order = _in_order(columns, self.shape)
        for kind, plan in list(self._plans.items()):
            if kind == 2 and self._plans_in_order != self._in_order:  # the sorting choice is made at planning
                del self._plans[kind]
            else:
                plan.setpts(*self._columns)

    def _plan(self, kind: int) -> finufft.Plan:
        """The type-2 (forward) or type-1 (adjoint) plan, made on first use: a simulation needs only the forward
        one, and each plan sorts the points (a fifth of a 1-mm transform's time)."""
        if kind not in self._plans:
            options = dict(self._options)
            if kind == 2:
                # Interpolating at points that arrive in k-space order (Cartesian lines, spokes) needs no sort:
                # setpts 0.05 s instead of 0.2 s and an equal or faster transform on a 1-mm volume. Spreading
                # (type 1) stays sorted: unsorted it was 1.5× slower even in that order.
                self._plans_in_order = self._in_order
                if self._in_order:
                    options["spread_sort"] = 0
            plan = finufft.Plan(
                kind, self.shape, self.n_trans, self._eps, isign=_ISIGN[kind], dtype=self.dtype.name, **options
            )
            plan.setpts(*self._columns)
            self._plans[kind] = plan
        return self._plans[kind]

    def forward(self, images: np.ndarray) -> np.ndarray:
        """``(n_trans, *shape)`` images → ``(n_trans, M)`` samples."""
        data = np.ascontiguousarray(images, dtype=self.dtype).reshape(self.n_trans, *self.shape)
        return self._plan(2).execute(data).reshape(self.n_trans, self.count)

    def adjoint(self, samples: np.ndarray) -> np.ndarray:
        """``(n_trans, M)`` samples → ``(n_trans, *shape)`` images (the exact adjoint of :meth:`forward`)."""
        data = np.ascontiguousarray(samples, dtype=self.dtype).reshape(self.n_trans, self.count)
        return self._plan(1).execute(data).reshape(self.n_trans, *self.shape)


def _in_order(columns: list[np.ndarray], shape: tuple[int, ...], pairs: int = 20_000) -> bool:
    """Whether consecutive points are mostly neighbours in k-space: the mean step, in grid cells (2π/n per axis,
    the largest axis, capped at 8 cells), under 2 cells on ``pairs`` evenly spread consecutive pairs. Cartesian
    lines and spokes are in order, random orders are not."""
    count = len(columns[0])
    if count < 2:
        return True
    first = np.unique(np.linspace(0, count - 2, min(pairs, count - 1)).astype(np.int64))
    cells = [
        np.abs(column[first + 1] - column[first]) * (n / (2 * np.pi)) for column, n in zip(columns, shape, strict=True)
    ]
    return float(np.mean(np.minimum(np.max(cells, axis=0), 8.0))) < 2.0
