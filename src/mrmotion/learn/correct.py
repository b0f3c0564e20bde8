"""Learned motion correction of 2-D and 3-D magnitude images, slice by slice.

A 3-D image is corrected slice-wise along its last (slice) axis. Each slice is divided by its own 99.5th
percentile (the training normalisation), padded to a square and resampled to the model's working grid
(``learn.data.WORKING_SIZE`` pixels), corrected there by guided inference (:mod:`mrmotion.learn.guided`), resampled
back, cropped, and multiplied by its scale again: the output has the input's shape and intensity scale. A slice
finer than the working grid would lose its fine detail, anatomy included, in that round trip; so inside the object
(:func:`object_mask` of the corrected slice) the slice's own detail, what its round trip through the working grid
removes, is added back (:func:`with_input_detail`). Outside the object the model's output is kept, where that detail
is noise and ghosts. On slices at their own resolution (``benchmarks/learned_correction_native.py``: the real
256 × 216 slice and 1 mm MNI152 slices) PSNR was up to 4 dB below the corrupted input's before (the round trip's
blur) and is above it now, and SSIM rose too. The correction is averaged over :data:`DEFAULT_SYMMETRIES` flips of
the slice (:mod:`mrmotion.learn.symmetry`; the networks were trained on all eight flips and quarter turns).

Refused with a reason: 1-D or 4-D arrays, empty or all-zero images, NaN or infinite voxels, and images with many
negative values (the model expects magnitudes: more than 1% of voxels below −5% of the maximum). Complex images
are taken as their magnitude.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from mrmotion.errors import MrMotionError
from mrmotion.learn.data import normalise, to_working_grid
from mrmotion.learn.guided import correct_batch
from mrmotion.learn.model import CorrectionModel, default_model
from mrmotion.learn.symmetry import check_symmetries, symmetrised

#: prior strength used when none is given: the best on training-family validation pairs
#: (``python benchmarks/learned_correction.py --sweep``), or 0 when the best gains less than
#: :data:`MEASURABLE_SSIM` over 0 (guidance costs about 4× the time). With the shipped weights the best was 0.25,
#: +0.00001 SSIM and 0.00 dB over 0 (``benchmarks/results/learned_correction.txt``): so 0, no guidance.
DEFAULT_PRIOR_STRENGTH = 0.0
#: the smallest SSIM difference the sweep's 40 validation pairs are taken to resolve.
MEASURABLE_SSIM = 0.001
#: symmetries of the square the correction is averaged over (1: none; 4: the flips). Chosen before the benchmark,
#: in a scratch run on training-atlas slices; on the held-out test pairs (``benchmarks/learned_correction.py``,
#: "4 flips" rows) the four flips gave the VQ-VAE +0.23 dB PSNR on the unseen families and the U-Net +0.09 dB.
DEFAULT_SYMMETRIES = 4


#: smallest slice side (pixels) :func:`correct_image` accepts: the model learned 128 × 128 brain slices, and a
#: slice a few pixels wide holds no anatomy it could recognise (a 1 × 1 "image" was corrected without complaint)
MIN_SLICE_PIXELS = 16


def check_magnitude_image(data: np.ndarray) -> np.ndarray:
    """The image as float64 magnitudes (2-D or 3-D), or a clear :class:`MrMotionError`."""
    array = np.asarray(data)
    if array.ndim not in (2, 3):
        raise MrMotionError(f"expected a 2-D image or a 3-D volume, got {array.ndim}-D with shape {array.shape}")
    if array.size == 0:
        raise MrMotionError(f"the image is empty (shape {array.shape})")
    if min(array.shape[:2]) < MIN_SLICE_PIXELS:
        raise MrMotionError(
            f"slices of {array.shape[0]} × {array.shape[1]} pixels are too small to correct: the model needs at "
            f"least {MIN_SLICE_PIXELS} × {MIN_SLICE_PIXELS} (slices lie along the third axis)"
        )
    array = np.abs(array) if np.iscomplexobj(array) else array.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise MrMotionError(f"the image has {bad} NaN or infinite voxel(s)")
    peak = float(np.max(np.abs(array)))
    if peak == 0:
        raise MrMotionError("the image is all zeros: nothing to correct")
    negative = float(np.mean(array < -0.05 * peak))
    if negative > 0.01:
        raise MrMotionError(
            f"{100 * negative:.1f}% of the voxels are clearly negative: expected a magnitude image (|complex|)"
        )
    return np.clip(array, 0.0, None)


def from_working_grid(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The inverse of :func:`~mrmotion.learn.data.to_working_grid`: resample to the padded square, then crop."""
    side = max(shape)
    square = ndimage.zoom(pixels, side / pixels.shape[0], order=1, grid_mode=True, mode="nearest")
    x0, y0 = (side - shape[0]) // 2, (side - shape[1]) // 2
    return square[x0 : x0 + shape[0], y0 : y0 + shape[1]]


#: the object, for :func:`object_mask`: where the corrected slice is above this share of its normalised intensity
#: (1 = its 99.5th percentile), holes filled
OBJECT_THRESHOLD = 0.05
#: width (pixels, Gaussian σ) of the mask's soft edge
OBJECT_EDGE_PX = 2.0


def object_mask(image: np.ndarray) -> np.ndarray:
    """Soft mask (0–1) of the object in a normalised slice: above :data:`OBJECT_THRESHOLD`, holes filled, edges
    smoothed over :data:`OBJECT_EDGE_PX` pixels."""
    mask = ndimage.binary_fill_holes(image > OBJECT_THRESHOLD)
    return ndimage.gaussian_filter(mask.astype(np.float64), OBJECT_EDGE_PX)


def with_input_detail(corrected: np.ndarray, working: np.ndarray, normalised: np.ndarray) -> np.ndarray:
    """The corrected working-grid slice back on the slice's own grid, with the slice's own fine detail inside the
    object: ``up(corrected) + mask · (slice − up(working))``, ``working`` being the slice on the working grid (the
    model's input) and ``up`` :func:`from_working_grid`. Where the mask is 1 this is the slice plus the model's
    change, ``slice + up(corrected − working)``."""
    back = from_working_grid(corrected, normalised.shape)
    detail = normalised - from_working_grid(working, normalised.shape)
    return np.clip(back + object_mask(back) * detail, 0, None)


#: in-plane pixel sizes closer than this ratio count as square (no resampling)
SQUARE_PIXEL_TOLERANCE = 1.02


def _square_pixel_zoom(pixel_mm: tuple[float, float] | None) -> tuple[float, float] | None:
    """Zoom factors (X, Y) that make rectangular pixels square at the finer size, or None for square ones."""
    if pixel_mm is None:
        return None
    sizes = np.asarray(pixel_mm, dtype=np.float64)
    if sizes.shape != (2,) or not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise MrMotionError(f"pixel_mm must be two pixel sizes > 0 mm, got {pixel_mm!r}")
    if sizes.max() / sizes.min() < SQUARE_PIXEL_TOLERANCE:
        return None
    return tuple(float(value) for value in sizes / sizes.min())


def correct_image(
    data: np.ndarray,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    model: CorrectionModel | None = None,
    batch: int = 8,
    progress: Callable[[int, int], None] | None = None,
    symmetries: int = DEFAULT_SYMMETRIES,
    pixel_mm: tuple[float, float] | None = None,
) -> np.ndarray:
    """The motion-corrected image, float32, with the shape of ``data`` ((X, Y) or (X, Y, Z), slices along Z).

    ``prior_strength`` weighs the prior of motion-free anatomy against the encoder (0: no guidance).
    ``symmetries`` (1, 2, 4 or 8): how many flips/quarter turns of each slice the correction is averaged over
    (1: none; the time grows in proportion). ``progress(done, total)`` is called once the input is checked
    (done = 0) and after each batch of slices. ``pixel_mm``: the in-plane pixel sizes (X, Y), mm; rectangular
    pixels are resampled to square ones for the model (which learned square pixels) and back (None: square).
    """
    strength = float(prior_strength)
    if not np.isfinite(strength) or strength < 0:
        raise MrMotionError(f"prior strength must be a finite number ≥ 0, got {prior_strength!r}")
    check_symmetries(symmetries)  # before any slice is read
    image = check_magnitude_image(data)
    stretch = _square_pixel_zoom(pixel_mm)
    if stretch is not None:  # the model sees square pixels: resample, correct, resample back to the input's grid
        square = ndimage.zoom(image, (*stretch, 1)[: image.ndim], order=1, grid_mode=True, mode="nearest")
        corrected = correct_image(square, prior_strength, model, batch, progress, symmetries)
        back = (*(n / m for n, m in zip(image.shape, square.shape, strict=False)), 1)[: image.ndim]
        return ndimage.zoom(corrected, back, order=1, grid_mode=True, mode="nearest").astype(np.float32)
    model = model or default_model()
    volume = image[..., None] if image.ndim == 2 else image
    out = np.zeros(volume.shape, dtype=np.float32)
    slices = volume.shape[2]
    if progress:  # the input is valid: the work starts
        progress(0, slices)
    for start in range(0, slices, batch):
        indices = range(start, min(start + batch, slices))
        slices_in, scales = [], []
        for index in indices:
            normalised, scale = normalise(volume[:, :, index])
            slices_in.append(normalised)
            scales.append(scale)
        inputs = np.stack([to_working_grid(normalised, 1.0)[0] for normalised in slices_in]).astype(np.float32)
        corrected = symmetrised(
            lambda images: correct_batch(model.vqvae, model.prior, images, strength),
            torch.from_numpy(inputs[:, None]),
            symmetries,
        )[:, 0].numpy()
        for index, normalised, pixels, working, scale in zip(
            indices, slices_in, corrected, inputs, scales, strict=True
        ):
            if np.any(volume[:, :, index] > 0):
                out[:, :, index] = with_input_detail(pixels, working, normalised) * scale
        if progress:
            progress(indices[-1] + 1, slices)
    return out[..., 0] if image.ndim == 2 else out
