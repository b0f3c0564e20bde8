"""Correction commands: learned motion correction of NIfTI images, and training of its networks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mrmotion.errors import InputFileError, MrMotionError, OutputFileError
from mrmotion.io.files import check_output
from mrmotion.io.nifti import read_image, write_image


def correct_file(
    source: Path,
    output: Path,
    prior_strength: float | None = None,
    weights: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    symmetries: int | None = None,
) -> Path:
    """Correct a 2-D or 3-D NIfTI magnitude image and write it with the input's affine and header.
    ``prior_strength`` and ``symmetries``: None takes :mod:`mrmotion.learn.correct`'s defaults."""
    from mrmotion.learn.correct import DEFAULT_PRIOR_STRENGTH, DEFAULT_SYMMETRIES, correct_image
    from mrmotion.learn.model import CorrectionModel

    check_output(output, [source])
    if not output.name.endswith((".nii", ".nii.gz")):
        raise OutputFileError(f"output {output}: expected a file name ending in .nii or .nii.gz")
    image = read_image(source)
    model = CorrectionModel.load(weights) if weights is not None else None
    try:
        corrected = correct_image(
            image.data,
            DEFAULT_PRIOR_STRENGTH if prior_strength is None else prior_strength,
            model,
            progress=progress,
            symmetries=DEFAULT_SYMMETRIES if symmetries is None else symmetries,
        )
    except MrMotionError as error:
        raise InputFileError(source, str(error)) from None
    stored = tuple(image.header.get_data_shape()[:3]) if image.header is not None else corrected.shape
    if len(stored) == 3 and stored[2] == 1 and corrected.ndim == 2:  # one slice stored as (X, Y, 1): keep it so
        corrected = corrected.reshape(stored)
    return write_image(output, corrected, image.scanner_from_voxel, image.header, inputs=[source])
