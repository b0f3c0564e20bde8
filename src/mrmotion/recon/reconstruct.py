"""Reconstruct an image from multi-coil k-space, with or without known motion.

The reconstruction grid is the acquisition's: ``sampling.matrix`` voxels of ``sampling.voxel_size_mm`` in the
logical frame ``scanner_from_logical``, whose origin is the FFT centre, voxel index ``n // 2`` (half a voxel from
the geometric FOV centre when n is even). With motion, the encoding is the exact motion-aware operator and the
image comes back in the reference position (the pose the motion is measured from).
"""

from __future__ import annotations

import numpy as np

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import FloatArray, make_transform
from mrmotion.physics.coil_weighting import coil_maps_on_grid
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
) -> tuple[SenseResult, ImageGrid]:
    """CG-SENSE of ``data`` (coils, M); ``coils`` in the scanner frame (e.g. GridCoilMaps of stored maps).

    ``coil_model="exact"`` (coils fixed in the scanner) costs about coils × pose groups NUFFTs per iteration for
    motion with distinct poses (:mod:`mrmotion.physics.coil_weighting`); ``"moving"`` (coils move with the head)
    costs coils NUFFTs whatever the motion, and is an approximation (``tests/physics/test_encoding.py`` shows it
    differs from the exact model by more than 1% for a few degrees and millimetres of motion).
    """
    if sampling.matrix[2] != 1 and sampling.mode != "3d":
        raise MrMotionError("reconstruction of 2-D multi-slice data is not supported yet; use 3-D or single-slice data")
    grid = acquisition_grid(sampling, scanner_from_logical)
    k_scanner = (np.asarray(scanner_from_logical)[:3, :3] @ sampling.k_logical.T).T
    operator = MotionEncoding(
        grid,
        k_scanner,
        sampling.time_s,
        motion,
        coils,
        coil_model,
        eps=eps,
        dtype=dtype,
        origin_mm=np.asarray(scanner_from_logical)[:3, 3],
    )
    if operator.coils != data.shape[0]:
        raise MrMotionError(f"the data have {data.shape[0]} coils but the coil maps {operator.coils}")
    # Jacobi-like preconditioner: for full sampling EᴴE ≈ (samples per voxel) · Σ_c |S_c|² on the diagonal.
    power = np.sum(np.abs(coil_maps_on_grid(coils, grid)) ** 2, axis=0)
    weight = 1.0 / np.maximum(power, 0.05 * power.max())  # clipped: no amplification where coils are blind
    return cg_sense(operator, data, iterations, regularization, progress=progress, preconditioner=weight), grid
