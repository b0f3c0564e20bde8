"""Pose commands: head pose of volumes, pose-driven prescriptions, and training of the pose networks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mrmotion.errors import InputFileError, MrMotionError, OutputFileError
from mrmotion.io.files import check_output
from mrmotion.io.nifti import read_image
from mrmotion.io.prescription_json import read_prescription, write_prescription
from mrmotion.io.transform_json import read_transform, write_transform

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES[::-1]:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


@dataclass(frozen=True)
class PoseResult:
    """One volume's outcome: the written file and the estimate, or the reason it has none."""

    volume: Path
    output: Path | None
    estimate: object | None = None
    error: str | None = None


def pose_file(volume: Path, output: Path, model=None) -> PoseResult:
    """Estimate the head pose of one NIfTI volume and write it as transform JSON (head → scanner, LPS mm)."""
    from mrmotion.pose.estimate import estimate_pose

    check_output(output, [volume])
    if output.suffix.lower() != ".json":
        raise OutputFileError(f"output {output}: expected a .json file name")
    image = read_image(volume, allow_2d=False)
    try:
        estimate = estimate_pose(image.data, image.scanner_from_voxel, model)
    except MrMotionError as error:
        raise InputFileError(volume, str(error)) from None
    write_transform(
        output,
        estimate.scanner_from_head,
        source="head",
        target="scanner",
        inputs=[volume],
        confidence=round(estimate.confidence, 4),
        brain_size_mm=round(estimate.brain_size_mm, 2),
        brain_volume_ml=round(estimate.brain_volume_ml, 2),
        orientation_validated=bool(estimate.details.get("orientation_validated", True)),
        precision=estimate.details.get("precision"),
    )
    return PoseResult(volume, output, estimate)


def pose_folder(
    folder: Path, output_folder: Path, model=None, progress: Callable[[int, int, PoseResult], None] | None = None
) -> list[PoseResult]:
    """Pose of every NIfTI volume in ``folder``, written to ``output_folder/<name>.json``.

    A volume that cannot be read or holds no brain is reported in its result (``error``) and the others go on.
    """
    if not folder.is_dir():
        raise InputFileError(folder, "not a folder")
    volumes = sorted(p for p in folder.iterdir() if p.is_file() and _is_nifti(p))
    if not volumes:
        raise InputFileError(folder, "no NIfTI volume (.nii or .nii.gz) in this folder")
    if output_folder.exists() and not output_folder.is_dir():
        raise OutputFileError(f"output {output_folder} exists and is not a folder")
    if output_folder.resolve() == folder.resolve():
        raise OutputFileError(f"output folder {output_folder} is the input folder; choose another")
    output_folder.mkdir(parents=True, exist_ok=True)
    if model is None:
        from mrmotion.pose.estimate import default_model

        model = default_model()
    results = []
    for index, volume in enumerate(volumes):
        output = output_folder / f"{_stem(volume)}.json"
        try:
            result = pose_file(volume, output, model)
        except MrMotionError as error:
            result = PoseResult(volume, None, None, str(error))
        results.append(result)
        if progress:
            progress(index + 1, len(volumes), result)
    return results


def prescribe_with_poses(slices: Path, pose_reference: Path, pose: Path, output: Path) -> list:
    """Move a prescription with the head from the reference pose to the new one; write the new prescription."""
    from mrmotion.pose.prospective import follow_head

    check_output(output, [slices, pose_reference, pose])
    prescription = read_prescription(slices)
    reference = _read_head_pose(pose_reference)
    now = _read_head_pose(pose)
    moved = follow_head(prescription, reference, now)
    write_prescription(output, moved)
    return moved


def prescribe_anatomical(slices: Path, pose: Path, plane: str, output: Path) -> list:
    """Slices in a standard plane of the head at ``pose``, with the count, spacing, FOV, thickness and matrix of
    the template prescription ``slices`` (spacing: distance between its first two centres, or its thickness)."""
    import numpy as np

    from mrmotion.pose.prospective import anatomical_slices

    check_output(output, [slices, pose])
    template = read_prescription(slices)
    first = template[0]
    spacing = (
        float(np.linalg.norm(template[1].position_mm - first.position_mm)) if len(template) > 1 else first.thickness_mm
    )
    if spacing <= 0:
        raise InputFileError(slices, "its first two slices are at the same position; cannot take a spacing from it")
    new = anatomical_slices(
        _read_head_pose(pose), plane, len(template), spacing, first.fov_mm, first.thickness_mm, first.matrix
    )
    write_prescription(output, new)
    return new


def _read_head_pose(path: Path):
    record = read_transform(path, require_rigid=True)
    if record.source.lower() != "head" or record.target.lower() not in ("scanner", "scanner_ras"):
        raise InputFileError(
            path, f"expected a head pose (source 'head', target 'scanner'), got {record.source} → {record.target}"
        )
    return record.to_lps()
