"""Geometry commands: tracker calibration, per-slice prospective updates, motion reports.

Each function checks every input before writing anything, writes outputs atomically, never over an input, and
returns what it computed so the CLI (and the demo) can print it. The CLI itself only parses and prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrmotion.errors import MrMotionError
from mrmotion.geometry.calibration import CalibrationResult, calibrate
from mrmotion.geometry.motion import (
    ScannerUpdate,
    camera_motion,
    logical_cross_calibration,
    logical_motion,
    scanner_update,
    updated_slices,
)
from mrmotion.geometry.prescription import stack_scanner_from_logical
from mrmotion.geometry.transforms import FloatArray, invert_rigid
from mrmotion.io.files import check_output
from mrmotion.io.prescription_json import read_prescription
from mrmotion.io.tracking import read_tracking_log
from mrmotion.io.transform_json import read_transform, write_transform
from mrmotion.io.updates_csv import write_updates_csv
from mrmotion.physics.trajectory import MotionTrajectory
from mrmotion.report.motion_plot import MotionSummary, plot_motion, summarize_motion

#: Times of paired tracker and scanner poses must agree to this tolerance (s).
TIME_TOLERANCE_S = 1e-6


def calibrate_files(tracker: Path, scanner: Path, output: Path, method: str = "park") -> CalibrationResult:
    """Cross-calibrate a tracker from paired pose logs and write ``scanner_from_camera`` as transform JSON.

    ``tracker``: marker poses in the camera frame; ``scanner``: the object's poses in the scanner frame (LPS mm)
    at the same times, same CSV columns. The JSON also records the method, the marker offset and the residuals.
    """
    check_output(output, [tracker, scanner])
    camera_log, scanner_log = read_tracking_log(tracker), read_tracking_log(scanner)
    if len(camera_log) != len(scanner_log):
        raise MrMotionError(f"{tracker} has {len(camera_log)} poses but {scanner} has {len(scanner_log)}; pair them")
    mismatch = np.abs(camera_log.times_s - scanner_log.times_s)
    if np.any(mismatch > TIME_TOLERANCE_S):
        index = int(np.argmax(mismatch))
        raise MrMotionError(
            f"pose {index}: tracker time {camera_log.times_s[index]} s differs from scanner time "
            f"{scanner_log.times_s[index]} s; the two files must hold poses at the same times"
        )
    usable = camera_log.valid & scanner_log.valid
    result = calibrate(camera_log.camera_from_marker[usable], scanner_log.camera_from_marker[usable], method)
    write_transform(
        output,
        result.scanner_from_camera,
        source="camera",
        target="scanner",
        method=result.method,
        marker_from_object=result.marker_from_object,
        residual_rotation_deg=result.residual_rotation_deg,
        residual_translation_mm=result.residual_translation_mm,
    )
    return result


@dataclass(frozen=True)
class PrescribeResult:
    """Times ``(T,)``, per-slice logical motion ``B`` ``(T, N, 4, 4)``, updated slices ``S`` and scanner update."""

    times_s: FloatArray
    logical_motion: FloatArray
    updated_slices: FloatArray
    update: ScannerUpdate
    skipped_invalid: int


def prescribe_files(slices: Path, tracker: Path, calibration: Path, output: Path) -> PrescribeResult:
    """Per-slice motion and prospective updates for every (valid) tracker time and every slice, written as CSV.

    The first valid tracker pose is the reference: the prescription in ``slices`` is where the slices are at
    that time.
    """
    check_output(output, [slices, tracker, calibration])
    prescription = read_prescription(slices)
    log = read_tracking_log(tracker)
    scanner_from_camera = read_transform(calibration, require_rigid=True).to_lps()
    valid = log.valid
    if not np.any(valid):
        raise MrMotionError(f"{tracker}: no valid tracker samples")
    reference = stack_scanner_from_logical(prescription)
    motion = camera_motion(log.camera_from_marker[valid])
    moves = logical_motion(logical_cross_calibration(reference, scanner_from_camera), motion, check=False)
    updated = updated_slices(reference, moves)
    update = scanner_update(updated, moves, np.stack([item.fov_mm for item in prescription]))
    write_updates_csv(output, log.times_s[valid], moves, update)
    return PrescribeResult(log.times_s[valid], moves, updated, update, int(np.sum(~valid)))


def motion_report_file(
    tracker: Path, output: Path, calibration: Path | None = None, radius_mm: float = 50.0
) -> MotionSummary:
    """Plot translations, rotations and framewise displacement of a tracking log.

    Without ``calibration`` the motion is in the camera frame about the marker's first position; with it, in
    the scanner frame (LPS) about the same point.
    """
    check_output(output, [tracker] + ([calibration] if calibration else []))
    if output.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise MrMotionError(f"output {output}: expected a .png, .pdf or .svg file name")
    log = read_tracking_log(tracker)
    poses = log.camera_from_marker[log.valid]
    if len(poses) == 0:
        raise MrMotionError(f"{tracker}: no valid tracker samples")
    motion = camera_motion(poses)
    centre = poses[0, :3, 3]
    frame = "camera frame"
    if calibration is not None:
        scanner_from_camera = read_transform(calibration, require_rigid=True).to_lps()
        motion = scanner_from_camera @ motion @ invert_rigid(scanner_from_camera)
        centre = (scanner_from_camera @ poses[0])[:3, 3]
        frame = "scanner frame (LPS)"
    summary = summarize_motion(log.times_s[log.valid], motion, centre, radius_mm)
    plot_motion(summary, output, title=f"{tracker.name}, {frame}, about the marker")
    return summary


def tracker_motion_file(
    tracker: Path,
    calibration: Path,
    output: Path,
    time_offset_s: float = 0.0,
    reference_time_s: float | None = None,
) -> MotionTrajectory:
    """The head motion a tracker recorded, as a motion CSV for ``mrmotion simulate`` / ``mrmotion recon --motion``.

    Each row is ``X P(t) P(t0)⁻¹ X⁻¹``: how the object moved since the reference time t0, in scanner LPS mm about
    the isocentre (``X``: ``scanner_from_camera`` from ``calibration``; ``P``: the log's valid marker poses). Row
    times are scan times: the tracker's times minus ``time_offset_s`` (the tracker clock at the scan start). The
    image the motion refers to shows the object as at the valid sample nearest ``reference_time_s`` (scan time;
    None: the first valid sample).
    """
    from mrmotion.io.motion_csv import write_motion_csv
    from mrmotion.physics.motion_models import from_tracking

    check_output(output, [tracker, calibration])
    if output.suffix.lower() != ".csv":
        raise MrMotionError(f"output {output}: expected a .csv file name")
    for name, value in (("--time-offset", time_offset_s), ("--reference-time", reference_time_s)):
        if value is not None and not np.isfinite(value):
            raise MrMotionError(f"{name} must be a finite number of seconds, got {value}")
    log = read_tracking_log(tracker)
    scanner_from_camera = read_transform(calibration, require_rigid=True).to_lps()
    times = log.times_s[log.valid] - time_offset_s
    if len(times) == 0:
        raise MrMotionError(f"{tracker}: no valid tracker samples")
    reference = 0
    if reference_time_s is not None:
        if not times[0] <= reference_time_s <= times[-1]:
            raise MrMotionError(
                f"--reference-time {reference_time_s} s is outside the tracked span {times[0]:g}–{times[-1]:g} s "
                "(scan time)"
            )
        reference = int(np.argmin(np.abs(times - reference_time_s)))
    motion = from_tracking(log, scanner_from_camera, reference_index=reference, time_offset_s=time_offset_s)
    write_motion_csv(output, motion, inputs=[tracker, calibration])
    return motion
