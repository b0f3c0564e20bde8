"""Correction commands: learned motion correction of NIfTI images, and training of its networks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mrmotion.errors import InputFileError, MrMotionError, OutputFileError
from mrmotion.io.files import check_output
from mrmotion.io.nifti import Image, read_image, write_image

#: what ``--slice-axis`` accepts
SLICE_AXES = ("auto", "0", "1", "2")
#: a voxel axis counts as the slice axis when its spacing is at least this many times the other two (thick slices)
THICK_SLICE_RATIO = 1.25


def check_slice_axis(requested: str) -> None:
    """Refuse a ``--slice-axis`` other than :data:`SLICE_AXES` (before any file is read)."""
    if requested not in SLICE_AXES:
        raise MrMotionError(f"--slice-axis must be one of {', '.join(SLICE_AXES)}, got {requested!r}")


def slice_axis(image: Image, requested: str = "auto") -> int:
    """The voxel axis (0, 1 or 2) a 3-D image is corrected along: ``requested`` "0", "1" or "2", or "auto": the
    slice dimension the NIfTI header records (``dim_info``), else the axis whose voxels are at least
    :data:`THICK_SLICE_RATIO` times thicker than the others' (a multi-slice acquisition), else the third. Motion
    corrupts a multi-slice scan within its slices, so they are what the model must see."""
    check_slice_axis(requested)
    if requested != "auto":
        return int(requested)
    if image.header is not None:
        recorded = image.header.get_dim_info()[2]
        if recorded is not None and 0 <= recorded < 3:
            return int(recorded)
    spacing = np.linalg.norm(np.asarray(image.scanner_from_voxel)[:3, :3], axis=0)
    thickest = int(np.argmax(spacing))
    others = np.delete(spacing, thickest)
    return thickest if spacing[thickest] >= THICK_SLICE_RATIO * others.max() else 2


def correct_file(
    source: Path,
    output: Path,
    prior_strength: float | None = None,
    weights: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    symmetries: int | None = None,
    axis: str = "auto",
) -> int | None:
    """Correct a 2-D or 3-D NIfTI magnitude image and write it with the input's affine and header; a volume slice
    by slice along ``axis`` (:func:`slice_axis`). Returns the axis used (None for a 2-D image).
    ``prior_strength`` and ``symmetries``: None takes :mod:`mrmotion.learn.correct`'s defaults."""
    from mrmotion.learn.correct import DEFAULT_PRIOR_STRENGTH, DEFAULT_SYMMETRIES, correct_image
    from mrmotion.learn.model import CorrectionModel

    check_output(output, [source])
    if not output.name.endswith((".nii", ".nii.gz")):
        raise OutputFileError(f"output {output}: expected a file name ending in .nii or .nii.gz")
    check_slice_axis(axis)
    image = read_image(source)
    along = slice_axis(image, axis) if image.data.ndim == 3 else None
    spacing = np.linalg.norm(np.asarray(image.scanner_from_voxel)[:3, :3], axis=0)
    in_plane = tuple(float(value) for value in np.delete(spacing, 2 if along is None else along)[:2])
    model = CorrectionModel.load(weights) if weights is not None else None
    try:
        corrected = correct_image(
            image.data if along is None else np.moveaxis(image.data, along, 2),
            DEFAULT_PRIOR_STRENGTH if prior_strength is None else prior_strength,
            model,
            progress=progress,
            symmetries=DEFAULT_SYMMETRIES if symmetries is None else symmetries,
            pixel_mm=in_plane,
        )
    except MrMotionError as error:
        raise InputFileError(source, str(error)) from None
    if along is not None:
        corrected = np.ascontiguousarray(np.moveaxis(corrected, 2, along))
    stored = tuple(image.header.get_data_shape()[:3]) if image.header is not None else corrected.shape
    if len(stored) == 3 and stored[2] == 1 and corrected.ndim == 2:  # one slice stored as (X, Y, 1): keep it so
        corrected = corrected.reshape(stored)
    write_image(output, corrected, image.scanner_from_voxel, image.header, inputs=[source])
    return along
