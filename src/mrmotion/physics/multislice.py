"""2-D multi-slice acquisition of a moving 3-D volume: volume × motion × 2-D sampling × coils → k-space.

Through-plane model (DESIGN.md §2, "Physics notes"). Each slice is excited at a position **fixed in the scanner**:
the prescription does not follow the head. The slice is infinitely thin: its profile is the plane through the voxel
centres of that slice at the reference pose (or, with ``profile_points = P > 1``, a boxcar: the mean over P
equally spaced sub-planes across the slice thickness, at offsets ``(p + ½)/P − ½`` slice spacings). On that plane
the moved object ``ρ_A(r) = ρ(A⁻¹ r)`` is evaluated by cubic-spline interpolation of the volume
(``scipy.ndimage.affine_transform`` on prefiltered coefficients, order 3, mode ``"constant"``: spins moved out of
the field of view give no signal, as do plane points beyond the outermost voxel centres). The coils, fixed in the
scanner, are evaluated on the scanner-fixed plane itself. In-plane encoding is then exact: the samples of slice s
taken in state t are

    s_c(k) = Σ_{r in plane s} C_c(r) ρ(A_t⁻¹ r) e^{−i k·(r − origin)},

k in scanner coordinates (``k_scanner = R_acq k_logical``, through-plane component 0) and ``origin`` the
acquisition frame's origin (the grid centre, as in :func:`~mrmotion.physics.simulate.acquisition_frame`). Cartesian
samples are exact centred DFTs of the plane (FFT, or a dense product for the few phase lines of one motion state),
others come from a 2-D NUFFT (accuracy ``eps``) on the slice's voxel grid.

No spin history: every excitation sees fully relaxed magnetisation, so spins moved into a slice from a recently
excited neighbour are not darker (no saturation bands, no T1 effects). Motion states are grouped per slice with
:func:`~mrmotion.physics.coil_weighting.cluster_states`: states whose slice-plane corners move by less than
``cluster_tol_mm`` share one plane resampling, at the cluster's representative (first) pose, an approximation of at
most that displacement. ``coil_model="moving"`` (the approximation that coils move with the head) evaluates the coils
at ``A⁻¹ r`` instead. With no motion the result equals the per-slice centred 2-D FFT of coil maps × image slice to
rounding (prefiltered cubic splines interpolate exactly at voxel centres).

In: a volume on an :class:`~mrmotion.physics.encoding.ImageGrid`, a ``mode="2d"`` :class:`Sampling` whose matrix and
voxel size are the grid's, a :class:`MotionTrajectory`. Out: ``(coils, M)`` samples in the order of the sampling.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import make_transform
from mrmotion.physics.coil_weighting import cluster_states, coil_maps_on_grid
from mrmotion.physics.encoding import COIL_MODELS, ImageGrid
from mrmotion.physics.nufft import NufftPair
from mrmotion.physics.sampling import Sampling
from mrmotion.physics.trajectory import MotionTrajectory

#: Resampling-matrix entries closer than this to an integer are snapped to it (see :func:`_snap`).
SNAP = 1e-9
#: Cubic splines on prefiltered coefficients; no signal from outside the volume.
SPLINE = {"order": 3, "mode": "constant", "prefilter": False}


def multislice_kspace(
    image: ArrayLike,
    grid: ImageGrid,
    sampling: Sampling,
    motion: MotionTrajectory | None = None,
    coils=None,
    coil_model: str = "exact",
    profile_points: int = 1,
    cluster_tol_mm: float = 0.05,
    eps: float = 1e-6,
    dtype: type = np.complex128,
) -> np.ndarray:
    """k-space ``(coils, M)`` of the 3-D ``image`` (on ``grid``) moving by ``motion`` during multi-slice ``sampling``.

    Parameters
    ----------
    image : (n_read, n_phase, n_slice) real or complex volume; voxel axes 0/1/2 are read/phase/slice.
    grid : its grid (orthogonal, right-handed voxel axes); slice s is the plane of voxel index 2 = s.
    sampling : ``mode="2d"``, ``matrix == image.shape``, ``voxel_size_mm`` = the grid's voxel sizes.
    motion : scanner LPS about the isocentre (rigid or affine); None for a still object.
    coils : ``count`` and ``sensitivities(points)`` (scanner frame), or None for one uniform coil.
    coil_model : ``"exact"`` (coils fixed in the scanner) or ``"moving"`` (coils move with the head).
    profile_points : sub-planes averaged across the slice thickness (1: an infinitely thin slice).
    cluster_tol_mm : states closer than this (largest slice-corner displacement) share one resampling.
    eps : NUFFT accuracy for non-Cartesian sampling (Cartesian sampling uses exact FFTs).
    dtype : complex dtype of the output.
    """
    from mrmotion.physics.simulate import acquisition_frame, check_image  # simulate imports this module

    volume = check_image(image)
    if volume.ndim != 3 or volume.shape != grid.shape:
        raise MrMotionError(f"multi-slice: expected a 3-D image matching its grid {grid.shape}, got {volume.shape}")
    if sampling.mode != "2d":
        raise MrMotionError(f"multi-slice: expected a 2-D multi-slice sampling (mode '2d'), got {sampling.mode!r}")
    if tuple(sampling.matrix) != volume.shape:
        raise MrMotionError(f"sampling is for a matrix {tuple(sampling.matrix)}, the image has shape {volume.shape}")
    voxel = np.linalg.norm(grid.scanner_from_voxel[:3, :3], axis=0)
    if not np.allclose(sampling.voxel_size_mm, voxel, rtol=1e-6, atol=0):
        raise MrMotionError(
            f"sampling voxel size {tuple(sampling.voxel_size_mm)} mm differs from the image's {tuple(voxel)} mm"
        )
    if np.any(sampling.k_logical[:, 2] != 0):
        raise MrMotionError("multi-slice: samples must have no through-plane k (k_logical[:, 2] = 0)")
    if sampling.slice_index.min() < 0 or sampling.slice_index.max() >= volume.shape[2]:
        raise MrMotionError(f"multi-slice: slice indices must lie in 0 … {volume.shape[2] - 1}")
    if sampling.grid_index is not None:
        index = sampling.grid_index
        if np.any(index < 0) or np.any(index >= sampling.matrix) or np.any(index[:, 2] != sampling.slice_index):
            raise MrMotionError("multi-slice: grid_index must lie in the matrix and its third index be the slice")
    if coil_model not in COIL_MODELS:
        raise MrMotionError(f"coil_model must be one of {COIL_MODELS}, got {coil_model!r}")
    if isinstance(profile_points, bool) or int(profile_points) != profile_points or profile_points < 1:
        raise MrMotionError(f"profile_points must be an integer >= 1, got {profile_points!r}")
    if not (np.isfinite(cluster_tol_mm) and cluster_tol_mm >= 0):
        raise MrMotionError(f"cluster_tol_mm must be a finite distance >= 0 mm, got {cluster_tol_mm!r}")
    if coils is not None and int(getattr(coils, "count", 0)) < 1:
        raise MrMotionError("coils: need at least one coil")
    acquisition_frame(grid)  # orthogonal, right-handed voxel axes, or a clear error
    motion = motion if motion is not None else MotionTrajectory.constant(np.eye(4))
    states = motion.state_index(sampling.time_s)
    points = int(profile_points)

    # Cubic B-spline coefficients, once (real and imaginary parts separately; ndimage filters real arrays).
    parts = [np.real(volume)] + ([np.imag(volume)] if np.iscomplexobj(volume) and np.any(np.imag(volume)) else [])
    spline = [ndimage.spline_filter(np.asarray(p, np.float64), 3, mode="constant") for p in parts]
    # Sub-plane p of slice s sits at voxel index 2 = s + offsets[p] (boxcar profile across the slice).
    offsets = (np.arange(points) + 0.5) / points - 0.5
    sub_from_voxel = np.eye(4)
    sub_from_voxel[2, 2], sub_from_voxel[2, 3] = 1.0 / points, offsets[0]
    fine = ImageGrid((*volume.shape[:2], volume.shape[2] * points), grid.scanner_from_voxel @ sub_from_voxel)
    # Scanner-fixed coils on every (sub-)plane: at P = 1 exactly simulate()'s coil maps (same grid, same splines).
    maps = _maps(coils, fine) if coil_model == "exact" else None
    count = 1 if coils is None else int(coils.count)

    n_read, n_phase = volume.shape[:2]
    voxel_from_scanner = np.linalg.inv(grid.scanner_from_voxel)
    out = np.zeros((count, len(sampling)), dtype=dtype)
    for s in np.unique(sampling.slice_index):
        rows = np.flatnonzero(sampling.slice_index == s)
        used, local = np.unique(states[rows], return_inverse=True)
        # voxel (i, j, p) of the slice's sub-planes → its scanner position (fixed: the prescription stays put)
        scanner_from_sub = fine.scanner_from_voxel @ make_transform(np.eye(3), (0.0, 0.0, float(s * points)))
        plane = ImageGrid((n_read, n_phase), scanner_from_sub)
        labels, representative = cluster_states(plane, motion.transforms[used], cluster_tol_mm)
        slice_maps = None if maps is None else np.ascontiguousarray(maps[..., s * points : (s + 1) * points])
        for cluster, pose_index in enumerate(representative):
            object_from_scanner = np.linalg.inv(motion.transforms[used[pose_index]])
            # ρ(A⁻¹ r) on the sub-planes: volume voxel coordinates V⁻¹ A⁻¹ r of every plane point
            pull = _snap(voxel_from_scanner @ object_from_scanner @ scanner_from_sub)
            moved = [
                ndimage.affine_transform(c, pull, output_shape=(n_read, n_phase, points), **SPLINE) for c in spline
            ]
            moved = moved[0] if len(moved) == 1 else moved[0] + 1j * moved[1]
            if slice_maps is not None:
                weighted = np.einsum("cijp,ijp->cij", slice_maps, moved)
            else:  # coils moving with the head: C_c(A⁻¹ r) on each sub-plane
                weighted = sum(
                    _maps(coils, ImageGrid((n_read, n_phase), object_from_scanner @ scanner_from_sub @ _lift(q)))
                    * moved[..., q]
                    for q in range(points)
                )
            weighted /= points
            group = rows[labels[local] == cluster]
            out[:, group] = _encode(weighted, sampling, group, voxel, eps)
    return out


def _lift(q: int) -> np.ndarray:
    return make_transform(np.eye(3), (0.0, 0.0, float(q)))


def _snap(matrix: np.ndarray) -> np.ndarray:
    """Entries within :data:`SNAP` of an integer become that integer: rounding must not move a voxel centre out of
    the interpolation domain (mode "constant" gives 0 below index 0) nor off the exact spline nodes."""
    nearest = np.round(matrix)
    return np.where(np.abs(matrix - nearest) < SNAP, nearest, matrix)


def _maps(coils, plane: ImageGrid) -> np.ndarray:
    """``(coils, *plane.shape)`` sensitivities on a grid (one uniform coil when ``coils`` is None)."""
    if coils is None:
        return np.ones((1, *plane.shape))
    return coil_maps_on_grid(coils, plane)


def _encode(weighted: np.ndarray, sampling: Sampling, group: np.ndarray, voxel: np.ndarray, eps: float) -> np.ndarray:
    """Samples ``group`` of per-coil plane images ``(coils, n_read, n_phase)``: ``Σ_u x(u) e^{−i κ·(u − n//2)}``."""
    if sampling.grid_index is None:  # non-Cartesian: 2-D NUFFT on the slice's voxel grid
        kappa = sampling.k_logical[group, :2] * voxel[:2]  # rad/voxel along the slice's read and phase axes
        return NufftPair(weighted.shape[1:], kappa, len(weighted), eps).forward(weighted)
    # Cartesian: the centred DFT (index n//2 is k = 0 in both domains), along phase only for the lines acquired
    # in this group (a dense product when they are few, else an FFT), then along read by FFT.
    index = sampling.grid_index[group]
    lines, line_of = np.unique(index[:, 1], return_inverse=True)
    n_phase = weighted.shape[2]
    if 8 * len(lines) < n_phase:
        centred = ((lines[:, None] - n_phase // 2) * (np.arange(n_phase) - n_phase // 2)) % n_phase
        partial = weighted @ np.exp(-2j * np.pi * centred.T / n_phase)
    else:
        partial = _centred_fft(weighted, 2)[:, :, lines]
    return _centred_fft(partial, 1)[:, index[:, 0], line_of]


def _centred_fft(x: np.ndarray, axis: int) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft(np.fft.ifftshift(x, axes=axis), axis=axis), axes=axis)
