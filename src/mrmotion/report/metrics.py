"""Image quality against a reference: NRMSE, PSNR and SSIM of magnitude images (scikit-image for SSIM).

Images are compared as magnitudes, each scaled to the reference's intensity range: the reference's 99.9th
percentile inside the mask maps to 1. ``mask`` (default: voxels above 5% of the reference maximum) restricts
NRMSE to the object; PSNR and SSIM use the whole field of view with ``data_range = 1``.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from mrmotion.errors import MrMotionError


def image_quality(image: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """``{"nrmse", "psnr_db", "ssim"}`` of ``|image|`` against ``|reference|`` (same shape, 2-D or 3-D)."""
    test, ref = np.abs(np.asarray(image, dtype=complex)), np.abs(np.asarray(reference, dtype=complex))
    if test.shape != ref.shape or ref.ndim not in (2, 3):
        raise MrMotionError(f"image quality: shapes {test.shape} and {ref.shape} must match and be 2-D or 3-D")
    mask = ref > 0.05 * ref.max() if mask is None else mask
    if not np.any(mask):
        raise MrMotionError("image quality: the reference is empty (nothing above 5% of its maximum)")
    scale = float(np.percentile(ref[mask], 99.9)) or 1.0
    test, ref = test / scale, ref / scale
    nrmse = float(np.linalg.norm((test - ref)[mask]) / np.linalg.norm(ref[mask]))
    mse = float(np.mean((test - ref) ** 2))
    psnr = float(10 * np.log10(1.0 / mse)) if mse > 0 else float("inf")
    ssim = float(structural_similarity(ref, test, data_range=1.0))
    return {"nrmse": nrmse, "psnr_db": psnr, "ssim": ssim}
