"""From multi-coil k-space to one image without iterations: per-coil inverse FFT and SENSE-1 combination."""

from __future__ import annotations

import numpy as np
import scipy.fft

from mrmotion.errors import MrMotionError
from mrmotion.physics.nufft import THREADS
from mrmotion.physics.sampling import Sampling


def coil_images(data: np.ndarray, sampling: Sampling) -> np.ndarray:
    """Per-coil images of fully sampled Cartesian data by inverse FFT (coils, n_read, n_phase[, n_slice]).

    Single-precision data give single-precision images."""
    if sampling.grid_index is None:
        raise MrMotionError("coil images by FFT need Cartesian sampling")
    shape = tuple(int(n) for n in sampling.matrix)
    dtype = np.complex64 if data.dtype == np.complex64 else np.complex128
    grid = np.zeros((data.shape[0], *shape), dtype=dtype)
    index = sampling.grid_index
    grid[:, index[:, 0], index[:, 1], index[:, 2]] = data
    if sampling.mode == "2d" or shape[2] == 1:
        axes = (1, 2)
    else:
        axes = (1, 2, 3)
    # s(k) = Σ ρ e^{−ik·r} makes ifftn (with its 1/N) the exact inverse; index n//2 is the centre in both domains.
    shifted = scipy.fft.ifftn(np.fft.ifftshift(grid, axes=axes), axes=axes, workers=THREADS, overwrite_x=True)
    images = np.fft.fftshift(shifted, axes=axes)
    return images[..., 0] if shape[2] == 1 else images


def combine(images: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """SENSE-1 coil combination ``Σ conj(S_c) x_c / Σ |S_c|²`` (0 where the maps vanish)."""
    power = np.sum(np.abs(maps) ** 2, axis=0)
    combined = np.sum(np.conj(maps) * images, axis=0)
    return np.where(power > 1e-12, combined / np.maximum(power, 1e-12), 0)
