"""Non-uniform FFT between an image grid and arbitrary k-space points (finufft), with the project's conventions.

Grid convention: an image ``f`` of shape ``n`` (2-D or 3-D) has its centre at voxel index ``c = n // 2``. For
k-space points given in radians per *voxel*, ``κ`` (M, ndim),

    forward (type 2):  y_m = Σ_u f(u) exp(−i κ_m · (u − c))
    adjoint (type 1):  f(u) = Σ_m y_m exp(+i κ_m · (u − c))

which is finufft's mode ordering (modes −n/2 … with ``modeord=0``) and the project's signal convention
``s(k) = Σ ρ(r) exp(−i k·r)``. Points are wrapped into [−π, π) (the sums are 2π-periodic in κ).
Physical k (rad/mm) enters through :mod:`mrmotion.physics.encoding`.

One :class:`NufftPair` holds a type-2 and a type-1 plan for the same points, so iterative reconstruction pays
the point sorting once. ``n_trans`` images are transformed per call (e.g. all coils at once).
"""

from __future__ import annotations

import os

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


class NufftPair:
    """Forward (type 2) and adjoint (type 1) NUFFT on a fixed set of points.

    Parameters
    ----------
    shape : image grid shape, 2 or 3 sizes.
    kappa : (M, ndim) k-space points in radians per voxel.
    n_trans : how many images each call transforms.
    eps : requested relative accuracy (finufft tolerance).
    dtype : ``complex128`` (double precision) or ``complex64`` (single; eps ≥ 1e-6, half the memory).
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        kappa: ArrayLike,
        n_trans: int = 1,
        eps: float = 1e-6,
        dtype: type = np.complex128,
    ) -> None:
        self.shape = tuple(int(n) for n in shape)
        if len(self.shape) not in (2, 3) or min(self.shape) < 1:
            raise MrMotionError(f"NUFFT grid must be 2-D or 3-D with positive sizes, got {shape}")
        points = np.asarray(kappa, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != len(self.shape) or points.shape[0] == 0:
            raise MrMotionError(f"NUFFT points: expected shape (M, {len(self.shape)}), got {points.shape}")
        if not np.all(np.isfinite(points)):
            raise MrMotionError("NUFFT points contain NaN or infinite values")
        self.dtype = np.dtype(dtype)
        real = np.float32 if self.dtype == np.complex64 else np.float64
        wrapped = (np.mod(points + np.pi, 2.0 * np.pi) - np.pi).astype(real)
        self.count = points.shape[0]
        self.n_trans = int(n_trans)
        # upsampfac 1.25 halves the time of a 1-mm 3-D transform here (smaller FFTs); it supports eps ≥ ~1e-8.
        options = {"nthreads": THREADS, "modeord": 0, "upsampfac": 1.25 if eps >= 1e-8 else 2.0}
        self._forward = finufft.Plan(2, self.shape, self.n_trans, eps, isign=-1, dtype=self.dtype.name, **options)
        self._adjoint = finufft.Plan(1, self.shape, self.n_trans, eps, isign=+1, dtype=self.dtype.name, **options)
        columns = [np.ascontiguousarray(wrapped[:, axis]) for axis in range(len(self.shape))]
        self._forward.setpts(*columns)
        self._adjoint.setpts(*columns)

    def forward(self, images: np.ndarray) -> np.ndarray:
        """``(n_trans, *shape)`` images → ``(n_trans, M)`` samples."""
        data = np.ascontiguousarray(images, dtype=self.dtype).reshape(self.n_trans, *self.shape)
        return self._forward.execute(data).reshape(self.n_trans, self.count)

    def adjoint(self, samples: np.ndarray) -> np.ndarray:
        """``(n_trans, M)`` samples → ``(n_trans, *shape)`` images (the exact adjoint of :meth:`forward`)."""
        data = np.ascontiguousarray(samples, dtype=self.dtype).reshape(self.n_trans, self.count)
        return self._adjoint.execute(data).reshape(self.n_trans, *self.shape)
