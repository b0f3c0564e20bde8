"""``mrmotion demo``: run the chain on the built-in synthetic session and write its outputs to a folder.

Steps: write the session's files (calibration pose pairs, tracker log, slice prescription) → cross-calibrate the
tracker → per-slice motion and prospective updates → motion report → a figure of the slices following the head,
and ``summary.json`` with the errors against ground truth.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mrmotion.commands import calibrate_files, motion_report_file, prescribe_files  # noqa: E402
from mrmotion.demo.estimated import run_estimation_demo  # noqa: E402
from mrmotion.demo.navigators import run_navigator_demo  # noqa: E402
from mrmotion.demo.scan import run_scan_demo  # noqa: E402
from mrmotion.demo.session import SyntheticSession, synthetic_session  # noqa: E402
from mrmotion.errors import OutputFileError  # noqa: E402
from mrmotion.geometry.parameters import rotation_distance, translation_distance  # noqa: E402
from mrmotion.geometry.transforms import apply, invert_rigid  # noqa: E402
from mrmotion.io.files import write_text_atomic  # noqa: E402
from mrmotion.io.prescription_json import write_prescription  # noqa: E402
from mrmotion.io.tracking import TrackingLog, write_tracking_csv  # noqa: E402
from mrmotion.report.html import Report  # noqa: E402
from mrmotion.report.motion_plot import save_figure  # noqa: E402

Step = Callable[[str], None]
#: Long enough to cover the 3-D scan of the 2-mm MNI template (117 × 95 lines at TR 10 ms = 111 s).
SESSION_S = 120.0


def _slice_tracking_error(session: SyntheticSession, updated: np.ndarray) -> np.ndarray:
    """How far (mm) the head moved in each updated slice frame: ~0 means the slices followed the head exactly.

    Points of the head that sat at the slice centres at t0 are followed through the true head motion and
    expressed in the updated logical frames: their drift from the origin is the residual error (T, N).
    """
    reference = np.stack([item.scanner_from_logical() for item in session.slices])
    head_motion = session.scanner_from_head @ invert_rigid(session.scanner_from_head[0])  # (T, 4, 4)
    true_points = apply(head_motion[:, None], reference[None, :, :3, 3])  # (T, N, 3)
    logical = apply(invert_rigid(updated, check=False), true_points)
    return np.linalg.norm(logical, axis=-1)


def plot_slices_following(session: SyntheticSession, updated: np.ndarray, times: np.ndarray, path: Path) -> Path:
    """Sagittal view (A–P vs S–I) of the slice stack at t0 and at the largest motion, with the head's trajectory."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
    displacement = np.linalg.norm(updated[:, :, :3, 3] - updated[:1, :, :3, 3], axis=-1).mean(axis=1)
    worst = int(np.argmax(displacement))
    for index, colour, label in (
        (0, "tab:blue", f"t = {times[0]:.1f} s"),
        (worst, "tab:red", f"t = {times[worst]:.1f} s"),
    ):
        for slice_index in range(updated.shape[1]):
            frame = updated[index, slice_index]
            ends = frame[:3, 3] + np.outer([-110, 110], frame[:3, 1])  # along the phase direction
            left.plot(ends[:, 1], ends[:, 2], color=colour, lw=0.8, label=label if slice_index == 0 else None)
    left.set_xlabel("y (mm, LPS: + is posterior)")
    left.set_ylabel("z (mm, LPS: + is superior)")
    left.set_aspect("equal")
    left.legend(loc="upper right")
    left.set_title("updated slices follow the head (sagittal view)")
    centre_offset = updated[:, :, :3, 3] - updated[:1, :, :3, 3]
    for slice_index in (0, updated.shape[1] // 2, updated.shape[1] - 1):
        right.plot(times, np.linalg.norm(centre_offset[:, slice_index], axis=-1), label=f"slice {slice_index}")
    right.set_xlabel("time (s)")
    right.set_ylabel("slice centre moved (mm)")
    right.legend()
    right.grid(alpha=0.3)
    right.set_title("how far each slice was re-positioned")
    return save_figure(figure, path)


def run_demo(output_dir: Path, step: Step = lambda message: None, seed: int = 0, scan: bool = True) -> dict:
    """Run the demo into ``output_dir`` (created if missing); returns the summary it also writes as JSON.

    ``scan=False`` runs only the geometry half (tracker calibration and prospective updates, a few seconds).
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputFileError(f"{output_dir} exists and is not a folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    session = synthetic_session(seed, duration_s=SESSION_S)

    step("writing the synthetic session (tracker log, calibration pose pairs, slice prescription)")
    files = {
        name: output_dir / name
        for name in (
            "calibration_tracker.csv",
            "calibration_scanner.csv",
            "tracker.csv",
            "slices.json",
            "scanner_from_camera.json",
            "updates.csv",
            "motion.png",
            "slices.png",
            "summary.json",
        )
    }
    valid = np.ones(len(session.calibration_times_s), dtype=bool)
    write_tracking_csv(
        files["calibration_tracker.csv"],
        TrackingLog(session.calibration_times_s, session.calibration_camera_from_marker, valid),
    )
    write_tracking_csv(
        files["calibration_scanner.csv"],
        TrackingLog(session.calibration_times_s, session.calibration_scanner_from_head, valid),
    )
    write_tracking_csv(
        files["tracker.csv"],
        TrackingLog(session.times_s, session.camera_from_marker, np.ones(len(session.times_s), bool)),
    )
    write_prescription(files["slices.json"], session.slices)

    step("cross-calibrating the tracker (Park–Martin hand–eye)")
    calibration = calibrate_files(
        files["calibration_tracker.csv"], files["calibration_scanner.csv"], files["scanner_from_camera.json"]
    )
    step("computing per-slice motion B_i(t) and prospective updates")
    prescribed = prescribe_files(
        files["slices.json"], files["tracker.csv"], files["scanner_from_camera.json"], files["updates.csv"]
    )
    step("plotting the motion report and the updated slices")
    motion = motion_report_file(files["tracker.csv"], files["motion.png"], files["scanner_from_camera.json"])
    plot_slices_following(session, prescribed.updated_slices, prescribed.times_s, files["slices.png"])

    residual = _slice_tracking_error(session, prescribed.updated_slices)
    summary = {
        "calibration": {
            "method": calibration.method,
            "rotation_error_deg": float(
                np.degrees(rotation_distance(calibration.scanner_from_camera, session.scanner_from_camera))
            ),
            "translation_error_mm": float(
                translation_distance(calibration.scanner_from_camera, session.scanner_from_camera)
            ),
            "median_residual_rotation_deg": float(np.median(calibration.residual_rotation_deg)),
            "median_residual_translation_mm": float(np.median(calibration.residual_translation_mm)),
        },
        "motion": {
            "samples": len(prescribed.times_s),
            "max_translation_mm": motion.max_translation_mm,
            "max_rotation_deg": motion.max_rotation_deg,
            "mean_framewise_displacement_mm": motion.mean_framewise_mm,
        },
        "prospective": {
            "slices": len(session.slices),
            "updates": int(prescribed.logical_motion.shape[0] * prescribed.logical_motion.shape[1]),
            "max_slice_shift_mm": float(np.max(np.linalg.norm(prescribed.update.shift_mm, axis=-1))),
            "median_tracking_error_mm": float(np.median(residual)),
            "max_tracking_error_mm": float(np.max(residual)),
        },
        "files": sorted(path.name for path in files.values()),
    }
    if scan:
        summary["scan"] = run_scan_demo(output_dir, session, step)
        summary["pose"] = run_navigator_demo(output_dir, session, step, seed)
        summary["estimated"] = run_estimation_demo(output_dir, step, seed)
        made = summary["scan"].pop("files") + summary["pose"].pop("files") + summary["estimated"].pop("files")
        summary["files"] = sorted(summary["files"] + made + ["report.html"])
        write_report(output_dir / "report.html", summary)
    write_text_atomic(files["summary.json"], json.dumps(summary, indent=2) + "\n")
    return summary


def write_report(path: Path, summary: dict) -> Path:
    """The demo's report.html: what was done, the numbers against ground truth, and the figures."""
    report = Report(
        "mrmotion demo: a tracked head, prospective updates, a motion-corrupted scan corrected, and navigator poses"
    )
    calibration, motion, prospective = summary["calibration"], summary["motion"], summary["prospective"]
    report.heading("1. Tracker cross-calibration")
    report.paragraph(
        "A 12-pose calibration scan (phantom poses from image registration with 0.05°/0.1 mm noise, tracker noise "
        "0.01°/0.02 mm) gives scanner_from_camera by Park–Martin hand–eye calibration."
    )
    report.table(
        ["error against the true calibration", "rotation (deg)", "translation (mm)"],
        [
            ["scanner_from_camera", calibration["rotation_error_deg"], calibration["translation_error_mm"]],
            [
                "median residual per pose pair",
                calibration["median_residual_rotation_deg"],
                calibration["median_residual_translation_mm"],
            ],
        ],
    )
    report.heading("2. Head motion and prospective slice updates")
    report.paragraph(
        f"{motion['samples']} tracker samples: max translation {motion['max_translation_mm']:.2f} mm, max rotation "
        f"{motion['max_rotation_deg']:.2f}°. {prospective['updates']} slice updates B_i(t) for {prospective['slices']} "
        f"slices; the updated slices followed the head to {prospective['median_tracking_error_mm']:.3f} mm (median, "
        f"max {prospective['max_tracking_error_mm']:.3f} mm)."
    )
    report.figure("motion.png", "Head motion seen by the tracker (scanner frame, about the marker).")
    report.figure("slices.png", "The slice stack at the start and at the largest motion: the slices follow the head.")
    if "scan" in summary:
        scan, scores = summary["scan"], summary["scan"]["scores"]
        report.heading("3. A motion-corrupted scan, reconstructed with the tracked motion")
        report.paragraph(
            f"The MNI152 T1 template at 2 mm (the 1 mm volume would take several minutes on two cores) moves with the "
            f"session's true head motion ({scan['motion_states']} states) during a 3-D Cartesian scan of "
            f"{scan['samples']:,} samples × {scan['coils']} coils fixed in the scanner (exact augmented k-space, 40 dB "
            "SNR). CG-SENSE then uses the motion as the tracker measured it, through the calibration above, with the "
            "coils approximated as moving with the head (the exact model is `mrmotion recon --coil-model exact`; "
            "it is several times slower for motion this long and continuous)."
        )
        report.table(
            ["image vs motion-free template", "SSIM", "PSNR (dB)", "NRMSE"],
            [[name, value["ssim"], value["psnr_db"], value["nrmse"]] for name, value in scores.items()],
        )
        report.paragraph(
            "The row 'learned' is the learned correction (`mrmotion correct`: a hierarchical VQ-VAE mapping the "
            "corrupted slice onto codes of motion-free anatomy; prior guidance off, its default, as it did not help "
            "in the benchmark) applied to the corrupted magnitude image slice by slice, with no knowledge of the "
            "motion. It works on a 128 × 128 grid (the output is smoother than the input) and was trained on 2-D "
            "slices with in-plane motion (sudden jumps only), so this 3-D motion is outside its training; see "
            "src/mrmotion/weights/correct_card.md for its measured quality."
        )
        report.figure(
            "comparison.png",
            "Motion-free template, corrupted scan, reconstruction with tracked motion, and the learned correction.",
        )
        report.figure("scan/simulation.png", "The simulation: images, sample-time map and the motion trace.")
    if "pose" in summary:
        _pose_section(report, summary["pose"], motion["max_rotation_deg"])
    if "estimated" in summary:
        _estimation_section(report, summary["estimated"])
    return report.write(path)


def _estimation_section(report: Report, estimated: dict) -> None:
    report.heading("5. No tracker: motion estimated from the k-space data")
    report.paragraph(
        f"An axial slice of the same template is scanned in {estimated['shots']} interleaved shots by 8 coils fixed "
        f"in the scanner, while the head turns (up to {estimated['max_rotation_deg']:.1f}°) and shifts in-plane "
        "between shots. `mrmotion recon slice_scan/kspace.h5 --estimate-motion` finds every shot's pose from the "
        "data alone (aligned SENSE: the image and the poses in turn, coarse to fine) and reconstructs with it. "
        f"Its poses are within {estimated['max_rotation_error_deg']:.2f}° and "
        f"{estimated['max_shift_error_mm']:.2f} mm of the truth (largest over the shots), and the image is as good "
        "as the reconstruction with the true motion."
    )
    report.table(
        ["slice vs motion-free", "SSIM", "PSNR (dB)", "NRMSE"],
        [[name, value["ssim"], value["psnr_db"], value["nrmse"]] for name, value in estimated["scores"].items()],
    )
    report.figure(
        "slice_estimation.png",
        "Motion-free slice; reconstructions without motion, with the motion estimated from the data, and with the "
        "true motion; the rotation of each shot, true and estimated.",
    )


def _or_dash(value: float | None) -> object:
    """A table cell: the number, or a dash where a navigator had no pose."""
    return "—" if value is None else value


def _pose_section(report: Report, pose: dict, max_rotation_deg: float) -> None:
    rows = pose["navigators"]
    errors = [row["rotation_error_deg"] for row in rows if row["rotation_error_deg"] is not None]
    fixed = float(np.median([row["no_loop_deg_mm"][0] for row in rows]))
    loop = float(np.median([row["loop_deg_mm"][0] for row in rows]))
    report.heading("4. Head pose from navigators, and slices that follow the anatomy")
    report.paragraph(
        f"{len(rows)} fast 3-D navigators of the MNI152 T1 head (3-mm voxels, slices up to 4.5 mm thick, bias, bands "
        "and noise) at moments of the same true head motion, their poses from `mrmotion pose navigators -o poses` "
        "(one transform JSON each, with a confidence), and an axial stack prescribed in the head's anatomical frame: "
        "once from the first navigator (fixed) and again from every navigator whose pose is reliable (confidence ≥ "
        f"{pose['reliable_confidence']:g}: the prospective loop of `mrmotion prescribe --pose-ref … --pose …`). "
        f"The pose's rotation error was {np.median(errors):.1f}° (median; the networks never saw a T1 image or an "
        f"adult head other than this template's tissue maps), and the head turned by at most {max_rotation_deg:.1f}° "
        f"in this session: the middle slice was {fixed:.1f}° from the anatomical plane when fixed and {loop:.1f}° "
        "when following the poses (median over the navigators). Where the head turns less than the pose's error, "
        "following navigators cannot help, and the tracker of section 2 is what keeps slices on the anatomy; "
        "navigators pay off for larger turns (see docs/measured/pose.md, the prospective loop)."
    )
    report.table(
        [
            "time (s)",
            "head turned (deg)",
            "as the poses say (deg)",
            "confidence",
            "pose error (deg)",
            "centre error (mm)",
            "slices fixed (deg, mm)",
            "slices following (deg, mm)",
        ],
        [
            [
                row["time_s"],
                row["true_rotation_from_start_deg"],
                _or_dash(row["estimated_rotation_from_start_deg"]),
                row["confidence"],
                _or_dash(row["rotation_error_deg"]),
                _or_dash(row["centre_error_mm"]),
                "{:.1f}, {:.1f}".format(*row["no_loop_deg_mm"]),
                "{:.1f}, {:.1f}".format(*row["loop_deg_mm"]),
            ]
            for row in rows
        ],
    )
    report.figure(
        "navigators.png",
        "Head rotation from the start, and the middle axial slice's angle from the true anatomical plane.",
    )
