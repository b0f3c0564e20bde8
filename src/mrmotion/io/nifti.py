"""NIfTI images in and out, with their geometry converted to scanner LPS at the boundary.

NIfTI affines map voxel indices to RAS mm; inside mrmotion everything is LPS (DESIGN.md §2), so

    scanner_from_voxel = LPS_FROM_RAS @ nifti_affine        (and back on write; the matrix is its own inverse).

:func:`read_image` returns an :class:`Image`: the voxel array in stored order, its ``scanner_from_voxel`` and the
original header (kept so that a processed image can be written back with the same description, codes and units).
Accepted: 2-D images (``(X, Y)``; a 3-D file with one slice counts as 2-D and keeps the affine of slice 0) and 3-D
images, real or complex; trailing singleton axes beyond the third (a 4-D file with one volume) are dropped.
Scaling (``scl_slope``, ``scl_inter``) is applied on read. Time series, 1-D images, empty images and images with
NaN or infinite voxels are refused with an error naming the file.

:func:`write_image` writes ``.nii`` or ``.nii.gz`` atomically (a temporary file renamed into place), real data as
float32 and complex data as complex64 (NIfTI supports both), never over one of its inputs. NIfTI-1 stores the
affine in float32: a round trip keeps ``scanner_from_voxel`` to about 1e-7 relative (NIfTI-2 headers keep float64).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nibabel
import numpy as np
from numpy.typing import ArrayLike

from mrmotion.errors import InputFileError, MrMotionError, OutputFileError
from mrmotion.geometry.prescription import LPS_FROM_RAS
from mrmotion.geometry.transforms import as_transform
from mrmotion.io.files import check_output, require_file, write_atomic

_SUFFIXES = (".nii", ".nii.gz")
#: gzip level of ``.nii.gz`` outputs: nibabel's default (fast; brain volumes compress little better at 9).
_GZIP_LEVEL = 1


@dataclass(frozen=True, eq=False)
class Image:
    """A 2-D or 3-D image and where its voxels are.

    Attributes
    ----------
    data : (X, Y) or (X, Y, Z) float64 (real images) or complex (complex images), voxel order as stored.
    scanner_from_voxel : (4, 4) float64, voxel indices (i, j, k) → scanner LPS mm (``LPS_FROM_RAS @ affine``);
        for a 2-D image it maps (i, j, 0).
    header : the original NIfTI header (``Nifti1Header``, or ``Nifti2Header`` which subclasses it), or ``None``.
    """

    data: np.ndarray
    scanner_from_voxel: np.ndarray
    header: nibabel.Nifti1Header | None = None


def _spatial_shape(shape: tuple[int, ...], allow_2d: bool) -> tuple[int, ...]:
    """The image shape with trailing singleton axes beyond the third dropped, or an error message."""
    shape = tuple(int(size) for size in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) == 3 and shape[2] == 1 and allow_2d:
        shape = shape[:2]
    if len(shape) not in (2, 3):
        raise MrMotionError(f"expected a 2-D or 3-D image, got shape {shape}")
    if not allow_2d and (len(shape) == 2 or shape[2] == 1):
        raise MrMotionError(f"expected a 3-D image with more than one slice, got shape {shape}")
    if 0 in shape:
        raise MrMotionError(f"the image is empty (shape {shape})")
    return shape


def _check_finite(data: np.ndarray) -> None:
    bad = data.size - int(np.count_nonzero(np.isfinite(data)))
    if bad:
        raise MrMotionError(f"the image has {bad} NaN or infinite voxel(s) out of {data.size}")


def _check_voxel_axes(scanner_from_voxel: np.ndarray) -> None:
    """Refuse an affine whose voxel axes have zero length or are not independent: such an image has no geometry
    (and nibabel cannot write its header)."""
    axes = scanner_from_voxel[:3, :3]
    lengths = np.linalg.norm(axes, axis=0)
    if np.any(lengths == 0) or abs(np.linalg.det(axes)) <= 1e-6 * float(np.prod(lengths)):
        shown = ", ".join(f"{length:g}" for length in lengths)
        raise MrMotionError(
            f"the affine is singular: its voxel axes ({shown} mm long) have a zero length or are not independent, "
            "so the voxels have no position in space"
        )


def read_image(path: str | Path, allow_2d: bool = True) -> Image:
    """Read a NIfTI-1 or NIfTI-2 image (``.nii``, ``.nii.gz``; a ``.hdr``/``.img`` pair also works).

    Parameters
    ----------
    path : the file.
    allow_2d : accept 2-D images (and 3-D images with a single slice), returned as ``(X, Y)``. When False, only
        3-D images with more than one slice are accepted.

    Raises
    ------
    InputFileError : the file is missing, not NIfTI or corrupt, or holds a 1-D, 4-D (time series), empty or
        non-finite image, or an unusable affine.
    """
    path = require_file(path, "NIfTI image")
    try:
        image = nibabel.load(path)
    except Exception as error:  # nibabel raises many types (ImageFileError, OSError, EOFError, ValueError...)
        raise InputFileError(path, f"not a readable NIfTI image ({type(error).__name__}: {error})") from None
    if not isinstance(image, nibabel.Nifti1Pair):  # Nifti1Image, Nifti2Image and the pairs all derive from it
        raise InputFileError(path, f"not a NIfTI image (nibabel reads it as {type(image).__name__})")
    try:
        shape = _spatial_shape(image.shape, allow_2d)
        dtype = image.get_data_dtype()
        if dtype.fields is not None:
            raise MrMotionError(f"unsupported voxel type {dtype} (RGB or structured); expected real or complex")
        try:
            if np.issubdtype(dtype, np.complexfloating):
                data = np.asarray(image.dataobj)  # the array proxy applies scl_slope / scl_inter
            else:
                data = image.get_fdata(dtype=np.float64)
        except Exception as error:  # truncated or corrupt data block
            raise MrMotionError(f"cannot read the voxel data ({type(error).__name__}: {error})") from None
        data = data.reshape(shape)
        _check_finite(data)
        scanner_from_voxel = LPS_FROM_RAS @ as_transform(image.affine, "NIfTI affine")
        _check_voxel_axes(scanner_from_voxel)
    except MrMotionError as error:
        raise InputFileError(path, str(error)) from None
    return Image(data=data, scanner_from_voxel=scanner_from_voxel, header=image.header.copy())


def _as_voxels(data: ArrayLike) -> np.ndarray:
    array = np.asarray(data)
    if array.dtype.kind in "biuf":
        array = array.astype(np.float32)
    elif array.dtype.kind == "c":
        array = array.astype(np.complex64)
    else:
        raise MrMotionError(f"image data must be real or complex numbers, got dtype {array.dtype}")
    if array.ndim not in (2, 3):
        raise MrMotionError(f"expected a 2-D or 3-D image, got shape {array.shape}")
    if array.size == 0:
        raise MrMotionError(f"the image is empty (shape {array.shape})")
    _check_finite(array)
    return array


def write_image(
    path: str | Path,
    data: ArrayLike,
    scanner_from_voxel: ArrayLike,
    header: nibabel.Nifti1Header | None = None,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """Write a 2-D or 3-D image as NIfTI (``.nii`` or ``.nii.gz``, chosen by the name), atomically.

    Parameters
    ----------
    path : output file name, ending in ``.nii`` or ``.nii.gz``.
    data : (X, Y) or (X, Y, Z) real (written as float32) or complex (written as complex64), all finite.
    scanner_from_voxel : (4, 4) voxel indices → scanner LPS mm; written as the RAS affine
        ``LPS_FROM_RAS @ scanner_from_voxel`` into both sform and qform.
    header : a NIfTI header to keep (description, intent, units, sform/qform codes...); the shape, data type,
        scaling and affine are set from ``data`` and ``scanner_from_voxel``. A ``Nifti2Header`` writes NIfTI-2.
        An uncoded sform (code 0) becomes "aligned". Without a header, a fresh NIfTI-1 header: units mm and s,
        sform code "aligned", qform code "unknown".
    inputs : files the output must not overwrite.

    Returns the path written. Raises :class:`OutputFileError` (output is an input, folder missing, wrong suffix)
    or :class:`MrMotionError` (bad data or transform); nothing is written then.
    """
    path = check_output(path, inputs)
    if not path.name.endswith(_SUFFIXES) or path.name in _SUFFIXES:
        raise OutputFileError(f"output {path}: expected a file name ending in .nii or .nii.gz")
    voxels = _as_voxels(data)
    affine = LPS_FROM_RAS @ as_transform(scanner_from_voxel, "scanner_from_voxel")
    _check_voxel_axes(affine)
    if header is not None and not isinstance(header, nibabel.Nifti1Header):
        raise MrMotionError(f"header must be a nibabel Nifti1Header or Nifti2Header, got {type(header).__name__}")
    image_class = nibabel.Nifti2Image if isinstance(header, nibabel.Nifti2Header) else nibabel.Nifti1Image
    image = image_class(voxels, affine, header=header)
    image.set_data_dtype(voxels.dtype)
    if header is None:
        image.header.set_xyzt_units("mm", "sec")
    else:
        # nibabel resets the codes when the affine differs from the header's: keep the original ones, with a
        # coded sform in any case so that readers take the exact (unsheared) affine from it.
        image.set_sform(affine, code=int(header["sform_code"]) or "aligned")
        image.set_qform(affine, code=int(header["qform_code"]))
    payload = image.to_bytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=_GZIP_LEVEL, mtime=0)
    return write_atomic(path, lambda temporary: temporary.write_bytes(payload))
