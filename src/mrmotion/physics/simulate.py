"""Simulate a motion-corrupted multi-coil scan: image × motion × sampling × coils × noise → k-space.

The acquisition frame is the image grid: logical read/phase/slice run along voxel axes 0/1/2, centred on the
grid centre (index n//2), so ``k_scanner = R_acq k_logical`` with ``R_acq`` the normalised voxel axes. The
encoding itself (exact rigid/affine motion through augmented k-space, coils fixed in the scanner) is
:class:`~mrmotion.physics.encoding.MotionEncoding`.

Noise: complex white Gaussian, the same standard deviation σ on the real and imaginary part of every sample,
``σ = rms(noiseless samples) · 10^(−snr_db / 20)`` (SNR of the k-space data as a whole, all coils).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mrmotion.errors import MrMotionError
from mrmotion.geometry.parameters import rotvec_from_transform, transform_from_rotvec
from mrmotion.geometry.transforms import FloatArray, make_transform
from mrmotion.physics.coil_weighting import COARSE_SPACING_MM, coarse_axes, coil_maps_on_grid, expected_energy
from mrmotion.physics.encoding import MAX_CLUSTERS, ImageGrid, MotionEncoding
from mrmotion.physics.multislice import multislice_kspace
from mrmotion.physics.sampling import Sampling
from mrmotion.physics.trajectory import MotionTrajectory

#: Coil weighting components per NUFFT call when simulating (a reconstruction keeps the operator's default, 4, as it
#: holds a forward and an adjoint plan): 8, one call per pose group of 8 coils, made the 1-mm 8-coil simulation
#: 1.09–1.13× faster than 4 for 0.1–0.3 GB more (``python benchmarks/fft_planning.py --compare chunk``).
SIMULATION_CHUNK = 8


@dataclass(frozen=True, eq=False)
class SimulatedScan:
    """The output of :func:`simulate`.

    data : (coils, M) complex k-space samples in the order of ``sampling``.
    sampling, grid : how and where they were acquired; ``scanner_from_logical`` the acquisition frame.
    coil_maps : (coils, *grid.shape) complex, the coils' sensitivities on the grid at the reference pose (for one
        uniform coil, a read-only view of ones).
    noise_std : σ of the added noise per real/imaginary part (0 without noise).
    motion : the motion used (scanner LPS about the isocentre).
    coil_clusters, coil_cluster_tol_mm, coil_pose_rms_mm : how the exact coil model evaluated the scanner-fixed
        coils (3-D and single-slice scans): at ``coil_clusters`` poses, each shared by the states whose field-of-view
        corners lie within ``coil_cluster_tol_mm`` of it, at ``coil_pose_rms_mm`` root mean square, each state
        weighted by the expected energy of its samples when the cap on poses bound, else by their number (1, 0 and
        0 mm for one pose, coils moving with the head or one uniform coil; None for multi-slice scans). The
        distances grow when the motion needs more than ``max_coil_clusters`` clusters; the poses then sit where the
        signal is, so states sampled far from the k-space centre may lie far from theirs
        (``benchmarks/coil_cluster_error.py`` gives the k-space error).
    """

    data: np.ndarray
    sampling: Sampling
    grid: ImageGrid
    scanner_from_logical: FloatArray
    coil_maps: np.ndarray
    noise_std: float
    motion: MotionTrajectory
    coil_clusters: int | None = None
    coil_cluster_tol_mm: float | None = None
    coil_pose_rms_mm: float | None = None


def acquisition_frame(grid: ImageGrid) -> FloatArray:
    """scanner_from_logical of an acquisition aligned with the grid: unit voxel axes, origin at the grid centre."""
    linear = grid.scanner_from_voxel[:3, :3]
    axes = linear / np.linalg.norm(linear, axis=0)
    if len(grid.shape) == 2:
        axes[:, 2] = np.cross(axes[:, 0], axes[:, 1])
    if np.abs(axes.T @ axes - np.eye(3)).max() > 1e-6:
        raise MrMotionError("the image's voxel axes are not orthogonal (sheared affine): cannot acquire on its grid")
    if np.linalg.det(axes) < 0:
        raise MrMotionError("the image's voxel axes are left-handed (det < 0); flip the last axis first (right_handed)")
    return make_transform(axes, grid.positions(grid.centre_index))


def in_plane(motion: MotionTrajectory, grid: ImageGrid) -> MotionTrajectory:
    """Keep only the in-plane part of rigid motion for a 2-D grid: rotation about the slice normal through the
    grid centre and translation within the slice plane (a 2-D image cannot move through its own plane)."""
    frame = acquisition_frame(grid)
    normal, centre = frame[:3, 2], frame[:3, 3]
    rotvec, translation = rotvec_from_transform(motion.transforms)
    about_centre = translation + np.einsum("tij,j->ti", motion.transforms[:, :3, :3], centre) - centre
    angle = rotvec @ normal
    shift = about_centre - np.outer(about_centre @ normal, normal)
    rotation = transform_from_rotvec(np.outer(angle, normal))
    moves = make_transform(np.eye(3), centre + shift) @ rotation @ make_transform(np.eye(3), -centre)
    return MotionTrajectory(motion.times_s, moves, motion.end_s, rigid=True)


def right_handed(data: np.ndarray, scanner_from_voxel: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Flip the last voxel axis of a left-handed grid (det < 0), adjusting the affine: the same image in a voxel
    order that a right-handed logical frame can acquire. Returns the flag so outputs can be flipped back."""
    if data.ndim == 3 and np.linalg.det(scanner_from_voxel[:3, :3]) < 0:
        flip = np.eye(4)
        flip[2, 2], flip[2, 3] = -1.0, data.shape[2] - 1
        return data[:, :, ::-1], scanner_from_voxel @ flip, True
    return data, scanner_from_voxel, False


def in_plane_like(motion: MotionTrajectory, grid: ImageGrid) -> MotionTrajectory:
    """Random motion for a 2-D image: each state's rotation turned to the slice normal and its translation laid
    into the slice plane, keeping the rotation angle and translation length (so the severity is kept)."""
    normal = acquisition_frame(grid)[:3, 2]
    centre = grid.positions(grid.centre_index)
    rotvec, translation = rotvec_from_transform(motion.transforms)
    about = translation + np.einsum("tij,j->ti", motion.transforms[:, :3, :3], centre) - centre
    angle = np.linalg.norm(rotvec, axis=1) * np.where(rotvec @ normal < 0, -1.0, 1.0)
    planar = about - np.outer(about @ normal, normal)
    length = np.linalg.norm(planar, axis=1, keepdims=True)
    planar = np.where(
        length > 1e-9, planar / np.maximum(length, 1e-12) * np.linalg.norm(about, axis=1, keepdims=True), 0
    )
    turn = transform_from_rotvec(np.outer(angle, normal))
    moves = make_transform(np.eye(3), centre + planar) @ turn @ make_transform(np.eye(3), -centre)
    return MotionTrajectory(motion.times_s, moves, motion.end_s)


def check_image(image: ArrayLike, name: str = "image") -> np.ndarray:
    """A finite 2-D or 3-D array, or a clear error."""
    array = np.asarray(image)
    if array.ndim not in (2, 3):
        raise MrMotionError(f"{name}: expected a 2-D or 3-D image, got {array.ndim}-D with shape {array.shape}")
    if array.size == 0:
        raise MrMotionError(f"{name}: the image is empty (shape {array.shape})")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise MrMotionError(f"{name}: {bad} voxels are NaN or infinite")
    return array


def object_support(array: np.ndarray, grid: ImageGrid) -> tuple[tuple[slice, ...], ImageGrid]:
    """The smallest box of voxels holding every non-zero voxel of ``array``, and its grid (same voxels, the affine
    shifted to the box's first voxel). Zero voxels add nothing to k-space, so encoding the box is exact; on the
    MNI152 template (a zero background, 47% of the volume in the box) the NUFFTs' FFTs and the coil weightings
    shrink by half. An all-zero image keeps its full grid."""
    occupied = array != 0
    nonzero = [
        np.flatnonzero(np.any(occupied, axis=tuple(a for a in range(array.ndim) if a != axis)))
        for axis in range(array.ndim)
    ]
    if any(len(index) == 0 for index in nonzero):
        return tuple(slice(0, n) for n in array.shape), grid
    box = tuple(slice(int(index[0]), int(index[-1]) + 1) for index in nonzero)
    return box, grid.cropped(box)


def check_snr(snr_db: float | None) -> None:
    """Refuse an SNR (dB) that is not a finite number; None (no noise) is fine."""
    if snr_db is not None and not np.isfinite(float(snr_db)):
        raise MrMotionError(f"snr_db must be a finite number of decibels, got {snr_db!r}")


def simulate(
    image: ArrayLike,
    grid: ImageGrid,
    sampling: Sampling,
    motion: MotionTrajectory | None = None,
    coils=None,
    snr_db: float | None = None,
    coil_model: str = "exact",
    seed: int = 0,
    eps: float = 1e-6,
    dtype: type = np.complex128,
    max_coil_clusters: int | None = None,
) -> SimulatedScan:
    """Multi-coil k-space of ``image`` (on ``grid``) moving by ``motion`` while ``sampling`` is acquired.

    ``sampling.matrix`` must equal the grid's shape (n_slice = 1 for a 2-D image); 2-D images take in-plane
    motion only (see :func:`in_plane`). A 3-D image with 2-D multi-slice sampling is acquired slice by slice at
    scanner-fixed positions (:func:`~mrmotion.physics.multislice.multislice_kspace`: thin slices, no spin
    history). ``coils`` is any object with ``count`` and ``sensitivities(points)`` (scanner frame), or None for
    one uniform coil. ``max_coil_clusters``: for the exact coil model of a 3-D or single-slice scan, at most this
    many poses at which the coils are evaluated (:class:`~mrmotion.physics.encoding.MotionEncoding`'s
    ``max_clusters``; default 16); multi-slice scans cluster slice planes instead and ignore it.
    """
    array = check_image(image)
    if array.shape != grid.shape:
        raise MrMotionError(f"image shape {array.shape} does not match its grid {grid.shape}")
    expected = tuple(sampling.matrix[: array.ndim]) if array.ndim == 3 else (*sampling.matrix[:2],)
    if array.shape != expected or (array.ndim == 2 and sampling.matrix[2] != 1):
        raise MrMotionError(f"sampling is for a matrix {tuple(sampling.matrix)}, the image has shape {array.shape}")
    if coils is not None and int(getattr(coils, "count", 0)) < 1:
        raise MrMotionError("coils: need at least one coil")
    check_snr(snr_db)
    motion = motion if motion is not None else MotionTrajectory.constant(np.eye(4))
    if array.ndim == 2:
        motion = in_plane(motion, grid)
    frame = acquisition_frame(grid)
    clusters, tolerance, rms = None, None, None
    if array.ndim == 3 and sampling.mode == "2d":  # multi-slice: scanner-fixed thin slices (physics.multislice)
        data = multislice_kspace(array, grid, sampling, motion, coils, coil_model, eps=eps, dtype=dtype)
    else:
        support, support_grid = object_support(array, grid)
        # the whole grid's coarse coil nodes that the box depends on, in the box's voxel units: the box's coil
        # weighting is the whole grid's (restricted), so a reconstruction on the whole grid, or on another box,
        # models the coils exactly as the simulation did
        nodes = coarse_axes(grid, COARSE_SPACING_MM, support)
        cap = MAX_CLUSTERS if max_coil_clusters is None else max_coil_clusters
        energy = None  # where the signal is, for placing capped coil poses (one FFT: only when the cap can bind)
        if coil_model == "exact" and coils is not None and len(motion) > cap:
            energy = expected_energy(array[support], support_grid, sampling.k_logical)
        operator = MotionEncoding(
            support_grid,
            sampling.k_logical,  # rotated to the scanner by k_frame, state by state: no rotated copy of every k
            sampling.time_s,
            motion,
            coils,
            coil_model,
            eps=eps,
            dtype=dtype,
            coarse_axes=nodes,
            origin_mm=frame[:3, 3],
            k_frame=frame[:3, :3],
            chunk=SIMULATION_CHUNK,
            max_clusters=max_coil_clusters,
            sample_energy=energy,
        )
        data = operator.forward(array[support].astype(dtype))
        clusters = int(operator.clusters)
        tolerance = float(operator.coil_pose_distance_mm) if operator.clusters > 1 else 0.0
        rms = float(operator.coil_pose_rms_mm) if operator.clusters > 1 else 0.0
    noise_std = 0.0
    if snr_db is not None:
        rng = np.random.default_rng(seed)
        noise_std = float(np.sqrt(np.mean(np.abs(data) ** 2) / 2.0) * 10.0 ** (-float(snr_db) / 20.0))
        data += (noise_std * (rng.standard_normal(data.shape) + 1j * rng.standard_normal(data.shape))).astype(dtype)
    maps = _maps_on_grid(coils, grid)
    return SimulatedScan(data, sampling, grid, frame, maps, noise_std, motion, clusters, tolerance, rms)


def _maps_on_grid(coils, grid: ImageGrid) -> np.ndarray:
    if coils is None:  # one uniform coil: a read-only view of a single 1 (a 1-mm volume of ones is 69 MB)
        return np.broadcast_to(np.ones((1,) * (len(grid.shape) + 1), dtype=np.complex64), (1, *grid.shape))
    return coil_maps_on_grid(coils, grid, dtype=np.complex64)
