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
    axes = (1, 2) if sampling.mode == "2d" or shape[2] == 1 else (1, 2, 3)
    # s(k) = Σ ρ e^{−ik·r} makes ifftn (with its 1/N) the exact inverse; index n//2 is the centre in both domains:
    # images = fftshift(ifftn(ifftshift(grid))) over the transformed axes. Both shifts are folded in (they are 3
    # full copies of the coil stack): ifftshift puts sample j at i = (j − n//2) mod n, and fftshift of the result is
    # the factor e^{−2πi i (n//2)/n} on each k-space sample.
    # Separable: the flat index is a sum of one small table per axis, looked up per sample (4× faster on a 1-mm
    # volume than forming the (M, 3) shifted indices), and the factor a product of per-axis factors, applied to the
    # filled grid by broadcasting (cheaper than a per-sample lookup).
    transformed = len(axes)
    strides = np.cumprod((1, *shape[::-1]))[::-1][1:]  # C-order strides, in elements
    index = np.asarray(sampling.grid_index)
    flat = np.zeros(len(index), dtype=np.int64)
    factors = []
    for axis, size in enumerate(shape):
        position = np.arange(size)
        if axis < transformed:
            position = np.mod(position - size // 2, size)
            # the factor of whatever sample is stored at grid position i
            stored = np.arange(size)
            view = [1] * len(shape)
            view[axis] = size
            factors.append(np.exp(-2j * np.pi * ((stored * (size // 2)) % size) / size).astype(dtype).reshape(view))
        flat += (position * strides[axis])[index[:, axis]]
    # the factors of the axes after the first, multiplied into one plane: each first-axis plane of the grid is then
    # multiplied once, while it is in cache (one pass over the grid instead of one per axis)
    rest = np.ones((1, *shape[1:]), dtype=dtype)
    for factor in factors[1:]:
        rest = rest * factor
    grid = np.zeros((data.shape[0], *shape), dtype=dtype)
    for coil in range(data.shape[0]):
        grid[coil].reshape(-1)[flat] = data[coil]
        for plane, first in zip(grid[coil], factors[0].reshape(-1), strict=True):
            plane *= rest[0] * first
    images = scipy.fft.ifftn(grid, axes=axes, workers=THREADS, overwrite_x=True)
    return images[..., 0] if shape[2] == 1 else images


#: width (samples) of the central k-space region coil maps are estimated from when a scan brings none
CALIBRATION_WIDTH = 24


def calibration_images(data: np.ndarray, sampling: Sampling, width: int = CALIBRATION_WIDTH) -> np.ndarray:
    """Low-resolution coil images (as :func:`coil_images`) from the central ``width`` samples of Cartesian k-space
    along the readout and each phase-encode axis (2-D multi-slice: in-plane), Hann-windowed, zero elsewhere.

    What coil maps are estimated from when a scan brings none: the sensitivities are smooth, so the centre of
    k-space carries them, and accelerated scans sample that centre in full (their autocalibration lines), while
    the rest of their k-space, undersampled, would alias into full-resolution coil images and so into the maps.
    An axis shorter than ``width`` is windowed over its whole length."""
    if sampling.grid_index is None:
        raise MrMotionError("calibration images need Cartesian sampling")
    if int(width) != width or width < 2:
        raise MrMotionError(f"calibration width must be an integer ≥ 2, got {width}")
    index = np.asarray(sampling.grid_index)
    weight = np.ones(len(index))
    axes = 2 if sampling.mode == "2d" or sampling.matrix[2] == 1 else 3
    for axis in range(axes):
        size = int(sampling.matrix[axis])
        span = min(float(width), float(size))
        offset = (index[:, axis] - size // 2) / span
        weight *= np.where(np.abs(offset) < 0.5, np.cos(np.pi * offset) ** 2, 0.0)
    return coil_images((data * weight).astype(data.dtype), sampling)


def coil_power(stack: np.ndarray, real: type | None = None) -> np.ndarray:
    """``Σ_c |x_c|²`` over the first axis, coil by coil (no temporary as large as the stack), accumulated in
    ``real`` (default: float32 for complex64 stacks, float64 otherwise)."""
    if real is None:
        real = np.float32 if stack.dtype == np.complex64 else np.float64
    power = np.zeros(stack.shape[1:], dtype=real)
    for part in stack:
        power += part.real**2 + part.imag**2
    return power


def combine(images: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """SENSE-1 coil combination ``Σ conj(S_c) x_c / Σ |S_c|²`` (0 where the maps vanish)."""
    power = coil_power(maps, np.float32 if images.dtype == np.complex64 else np.float64)
    combined = np.zeros(images.shape[1:], dtype=np.result_type(images.dtype, maps.dtype))
    for coil_map, image in zip(maps, images, strict=True):  # coil by coil: no temporary as large as the stack
        combined += np.conj(coil_map) * image
    return np.where(power > 1e-12, combined / np.maximum(power, 1e-12), 0)
