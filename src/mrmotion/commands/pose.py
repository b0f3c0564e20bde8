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
from mrmotion.pose.prospective import RELIABLE_CONFIDENCE

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


def _model(model=None, precision: str = "auto", passes: int = 1):
    """``model``, or the shipped one in ``precision`` with ``passes`` (loaded once per process; about 0.5 s the
    first time)."""
    from dataclasses import replace

    from mrmotion.pose.estimate import default_model

    return model if model is not None else replace(default_model(), precision=precision, passes=passes)


def pose_file(volume: Path, output: Path, model=None, precision: str = "auto", passes: int = 1) -> PoseResult:
    """Estimate the head pose of one NIfTI volume and write it as transform JSON (head → scanner, LPS mm).

    ``model``: a :class:`~mrmotion.pose.estimate.PoseModel`; None: the shipped one in ``precision`` averaging
    ``passes`` region cubes (:attr:`~mrmotion.pose.estimate.PoseModel.passes`), loaded only after the output, the
    file and its voxels have passed their checks (a bad input fails at once)."""
    from mrmotion.pose.estimate import check_passes, check_volume, estimate_pose
    from mrmotion.pose.networks import resolved_precision

    resolved_precision(precision)
    check_passes(passes)
    check_output(output, [volume])
    if output.suffix.lower() != ".json":
        raise OutputFileError(f"output {output}: expected a .json file name")
    image = read_image(volume, allow_2d=False)
    try:
        check_volume(image.data, image.scanner_from_voxel)
        estimate = estimate_pose(image.data, image.scanner_from_voxel, _model(model, precision, passes))
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
        field_of_view_extended=bool(estimate.details.get("field_of_view_extended", False)),
        passes=int(estimate.details.get("passes", 1)),
    )
    return PoseResult(volume, output, estimate)


def pose_folder(
    folder: Path,
    output_folder: Path,
    model=None,
    progress: Callable[[int, int, PoseResult | None], None] | None = None,
    precision: str = "auto",
    passes: int = 1,
) -> list[PoseResult]:
    """Pose of every NIfTI volume in ``folder``, written to ``output_folder/<name>.json`` (``model``,
    ``precision`` and ``passes`` as in :func:`pose_file`).

    A volume that cannot be read or holds no brain is reported in its result (``error``) and the others go on.
    ``progress(done, total, result)`` is called once the folder is checked (0 volumes done, result None) and after
    each volume with its result.
    """
    from mrmotion.pose.estimate import check_passes
    from mrmotion.pose.networks import resolved_precision

    resolved_precision(precision)
    check_passes(passes)
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
    if progress:
        progress(0, len(volumes), None)
    results = []
    for index, volume in enumerate(volumes):
        output = output_folder / f"{_stem(volume)}.json"
        try:
            result = pose_file(volume, output, model, precision, passes)
        except MrMotionError as error:
            result = PoseResult(volume, None, None, str(error))
        results.append(result)
        if progress:
            progress(index + 1, len(volumes), result)
    return results


def prescribe_with_poses(
    slices: Path, pose_reference: Path, pose: Path, output: Path, min_confidence: float = RELIABLE_CONFIDENCE
) -> list:
    """Move a prescription with the head from the reference pose to the new one; write the new prescription.
    Poses whose ``confidence`` is below ``min_confidence`` are refused (:func:`_read_head_pose`)."""
    from mrmotion.pose.prospective import follow_head

    check_output(output, [slices, pose_reference, pose])
    prescription = read_prescription(slices)
    reference = _read_head_pose(pose_reference, min_confidence)
    now = _read_head_pose(pose, min_confidence)
    moved = follow_head(prescription, reference, now)
    write_prescription(output, moved)
    return moved


def prescribe_anatomical(
    slices: Path, pose: Path, plane: str, output: Path, min_confidence: float = RELIABLE_CONFIDENCE
) -> list:
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
        _read_head_pose(pose, min_confidence),
        plane,
        len(template),
        spacing,
        first.fov_mm,
        first.thickness_mm,
        first.matrix,
    )
    write_prescription(output, new)
    return new


def check_min_confidence(min_confidence: float) -> float:
    """``min_confidence`` as a float in [0, 1], or a clear error."""
    try:
        value = float(min_confidence)
    except (TypeError, ValueError):
        raise MrMotionError(f"--min-confidence: expected a number in [0, 1], got {min_confidence!r}") from None
    if not 0 <= value <= 1:  # NaN fails too
        raise MrMotionError(f"--min-confidence: expected a number in [0, 1], got {min_confidence!r}")
    return value


def _read_head_pose(path: Path, min_confidence: float = RELIABLE_CONFIDENCE):
    """A head pose (scanner LPS) from transform JSON. A ``confidence`` field below ``min_confidence`` (as
    `mrmotion pose` writes: below 0.5 the pose should not drive a scanner) is refused, so a doubtful estimate does not
    move slices; poses without the field (from elsewhere) are taken as they are."""
    min_confidence = check_min_confidence(min_confidence)
    record = read_transform(path, require_rigid=True)
    if record.source.lower() != "head" or record.target.lower() not in ("scanner", "scanner_ras"):
        raise InputFileError(
            path, f"expected a head pose (source 'head', target 'scanner'), got {record.source} → {record.target}"
        )
    confidence = record.extra.get("confidence")
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1:
            raise InputFileError(path, f"its confidence must be a number in [0, 1], got {confidence!r}")
        if confidence < min_confidence:
            raise InputFileError(
                path,
                f"its pose has confidence {confidence:.2f}, below {min_confidence:g}: not reliable enough to move "
                "slices (keep the previous prescription, or pass --min-confidence 0 to use it anyway)",
            )
    return record.to_lps()
