"""Reconstruct an image from multi-coil k-space, with or without known motion.

The reconstruction grid is the acquisition's: ``sampling.matrix`` voxels of ``sampling.voxel_size_mm`` in the
logical frame ``scanner_from_logical``, whose origin is the FFT centre, voxel index ``n // 2`` (half a voxel from
the geometric FOV centre when n is even). With motion, the encoding is the exact motion-aware operator and the
image comes back in the reference position (the pose the motion is measured from).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import FloatArray, apply, invert, make_transform
from mrmotion.physics.coil_weighting import COARSE_SPACING_MM, coarse_axes, coil_maps_on_grid
from mrmotion.physics.combine import coil_images, coil_power
from mrmotion.physics.encoding import ImageGrid, MotionEncoding
from mrmotion.physics.sampling import Sampling
from mrmotion.physics.trajectory import MotionTrajectory
from mrmotion.recon.sense import Progress, SenseResult, cg_sense


def acquisition_grid(sampling: Sampling, scanner_from_logical: FloatArray) -> ImageGrid:
    """The image grid a sampling was designed for: 3-D, or 2-D (one slice) when ``matrix[2] == 1``."""
    matrix, voxel = sampling.matrix, sampling.voxel_size_mm
    dims = 2 if matrix[2] == 1 else 3
    voxel_to_logical = make_transform(np.diag(voxel), -(matrix // 2) * voxel)
    return ImageGrid(tuple(int(n) for n in matrix[:dims]), scanner_from_logical @ voxel_to_logical)


def object_box(
    data: np.ndarray,
    sampling: Sampling,
    grid: ImageGrid,
    motion: MotionTrajectory | None = None,
    threshold: float = 0.05,
    margin_mm: float = 8.0,
) -> tuple[slice, ...]:
    """The box of ``grid`` voxels where the object is, in the reference pose, from Cartesian ``data`` (coils, M).

    The root-sum-of-squares of the coil images (inverse FFT), smoothed over 2 voxels, above ``threshold`` of its
    largest value, gives the box where the object was seen. The image is dominated by the pose that acquired the
    centre of k-space, so the box's corners are brought back by that pose's inverse (the reconstruction is in the
    reference pose), and the box grows by ``margin_mm`` on every side (edges darker than the threshold). Other
    poses' copies of the object blur or ghost into the seen box too. The whole grid when nothing stands out."""
    smooth = ndimage.gaussian_filter(np.sqrt(coil_power(coil_images(data, sampling))), 2.0)
    seen = smooth > threshold * smooth.max()
    if not np.any(seen):
        return tuple(slice(0, n) for n in grid.shape)
    index = np.argwhere(seen)
    seen_box = tuple(slice(int(a), int(b) + 1) for a, b in zip(index.min(0), index.max(0), strict=True))
    corners = grid.cropped(seen_box).corners()
    if motion is not None:
        centre = int(np.argmin(np.sum(sampling.k_logical**2, axis=1)))
        corners = apply(invert(motion.at(sampling.time_s[centre]), "motion state"), corners)
    voxels = apply(invert(grid.scanner_from_voxel), corners)[:, : len(grid.shape)]
    spacing = np.linalg.norm(grid.scanner_from_voxel[:3, : len(grid.shape)], axis=0)
    low = np.floor(voxels.min(0) - margin_mm / spacing).astype(int)
    high = np.ceil(voxels.max(0) + margin_mm / spacing).astype(int)
    return tuple(slice(max(0, int(lo)), min(n, int(hi) + 1)) for lo, hi, n in zip(low, high, grid.shape, strict=True))


#: Up to this many voxels the exact coil model's iterations cost seconds: after the moving model's warm start it
#: runs as many iterations as the moving model did; above, one (a 1-mm head: about a minute per iteration).
SMALL_GRID_VOXELS = 1_000_000


def default_exact_iterations(grid: ImageGrid, iterations: int) -> int:
    """Exact-model iterations after the warm start when none are given: ``iterations`` on grids of at most
    :data:`SMALL_GRID_VOXELS` voxels, 1 above."""
    return iterations if int(np.prod(grid.shape)) <= SMALL_GRID_VOXELS else 1


def sense_reconstruction(
    data: np.ndarray,
    sampling: Sampling,
    scanner_from_logical: FloatArray,
    coils,
    motion: MotionTrajectory | None = None,
    iterations: int = 15,
    regularization: float = 1e-4,
    coil_model: str = "exact",
    eps: float = 1e-6,
    dtype: type = np.complex128,
    progress: Progress | None = None,
    exact_iterations: int | None = None,
    crop: bool = True,
) -> tuple[SenseResult, ImageGrid]:
    """CG-SENSE of ``data`` (coils, M); ``coils`` in the scanner frame (e.g. GridCoilMaps of stored maps).

    ``coil_model="moving"`` (coils move with the head, an approximation: ``tests/physics/test_encoding.py`` shows
    it differs from the exact model by more than 1% for a few degrees and millimetres of motion) runs
    ``iterations`` CG iterations; its EᴴE is a convolution, whatever the motion. ``coil_model="exact"`` (coils
    fixed in the scanner) costs about coils × pose groups NUFFTs per application
    (:mod:`mrmotion.physics.coil_weighting`): when the motion needs more than one coil weighting, the moving
    model's ``iterations`` come first and ``exact_iterations`` of the exact model continue from its image (a warm
    start: ``benchmarks/recon_warm_start.py`` measured 3 exact iterations from the moving solution better than 10
    from zero, at a third of the time). The returned result's residuals are the exact stage's. ``None``:
    :func:`default_exact_iterations`.

    Measured (scratch runs; ``benchmarks/simulate_vs_torchio.py`` reports the totals): the 1-mm benchmark head
    (8 coils, 8 poses, 10 + 1 iterations, cropped): NRMSE 0.019 → 0.012 for 116 s of 276 s; the real 7-coil slice
    (8 shots, 15 + k iterations): NRMSE 0.027 / 0.011 / 0.004 for k = 1 / 5 / 15 (0.006 from zero).

    ``crop``: for Cartesian data, reconstruct only the box where the object is (:func:`object_box`; zero outside),
    which shrinks the FFTs and the coil weightings; the image still covers the whole grid.
    """
    if sampling.matrix[2] != 1 and sampling.mode != "3d":
        raise MrMotionError("reconstruction of 2-D multi-slice data is not supported yet; use 3-D or single-slice data")
    samples = len(sampling.k_logical)
    if np.ndim(data) != 2 or np.shape(data)[1] != samples:
        raise MrMotionError(f"k-space data: expected (coils, {samples}) samples, got shape {np.shape(data)}")
    if not np.all(np.isfinite(data)):  # before the operators are built (cg_sense would say so after)
        raise MrMotionError("k-space data contain NaN or infinite values")
    grid = acquisition_grid(sampling, scanner_from_logical)
    if exact_iterations is None:
        exact_iterations = default_exact_iterations(grid, iterations)
    if exact_iterations < 0:
        raise MrMotionError(f"exact_iterations must be ≥ 0, got {exact_iterations}")
    full = tuple(slice(0, n) for n in grid.shape)
    box = object_box(data, sampling, grid, motion) if crop and sampling.grid_index is not None else full
    region = grid.cropped(box)
    k_logical = sampling.k_logical  # rotated to the scanner inside the operator (k_frame)
    settings = {
        "eps": eps,
        "dtype": dtype,
        "origin_mm": np.asarray(scanner_from_logical)[:3, 3],
        "k_frame": np.asarray(scanner_from_logical)[:3, :3],
        "coarse_axes": coarse_axes(grid, COARSE_SPACING_MM, box),
    }
    # the measured energy of each sample places capped coil poses where the signal is
    energy = np.sum(np.abs(data) ** 2, axis=0)
    operator = MotionEncoding(
        region, k_logical, sampling.time_s, motion, coils, coil_model, sample_energy=energy, **settings
    )
    if operator.coils != data.shape[0]:
        raise MrMotionError(f"the data have {data.shape[0]} coils but the coil maps {operator.coils}")
    # Jacobi-like preconditioner: for full sampling EᴴE ≈ (samples per voxel) · Σ_c |S_c|² on the diagonal.
    power = coil_power(coil_maps_on_grid(coils, region, dtype=dtype))
    weight = 1.0 / np.maximum(power, 0.05 * power.max())  # clipped: no amplification where coils are blind
    if operator.clusters > 1 and iterations > 0:  # warm start from the moving model (one coil weighting)
        moving = MotionEncoding(region, k_logical, sampling.time_s, motion, coils, "moving", **settings)
        first = cg_sense(moving, data, iterations, regularization, progress=progress, preconditioner=weight)
        del moving
        result = first
        if exact_iterations > 0:
            result = cg_sense(
                operator,
                data,
                exact_iterations,
                regularization,
                progress=None if progress is None else lambda i, r: progress(iterations + i, r),
                preconditioner=weight,
                initial=first.image,
                lam=first.regularization_abs,
            )
    else:
        result = cg_sense(operator, data, iterations, regularization, progress=progress, preconditioner=weight)
    if box != full:
        image = np.zeros(grid.shape, dtype=result.image.dtype)
        image[box] = result.image
        result = replace(result, image=image)
    return result, grid
