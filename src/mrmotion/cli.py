"""The ``mrmotion`` command line: one typer app, thin — parse, call :mod:`mrmotion.commands`, print."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from mrmotion.errors import MrMotionError
from mrmotion.pose.prospective import RELIABLE_CONFIDENCE

HELP = """Motion in MRI: tracker calibration, per-slice motion and prospective updates, exact motion simulation in
multi-coil k-space, reconstruction with known motion, head pose from 3-D volumes, learned correction of images.

Frames and units used by every command: transforms are 4×4 homogeneous matrices named target_from_source;
scanner coordinates are patient LPS in millimetres (origin at the isocentre); each slice has a logical frame
(read, phase, slice) in mm centred on the slice; tracking logs hold the marker's pose in the camera frame
(translation in mm, quaternion scalar-last); angles are printed in degrees.
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
errors = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., object])


class _ProgressOnFirstUpdate:
    """A rich progress bar (one task) that appears with its first update, not before: an input refused before any
    work then prints its error alone, without an empty bar above it. Use as a context manager; ``update`` takes
    :meth:`rich.progress.Progress.update`'s keywords, ``print`` prints above the bar (or plainly when none)."""

    def __init__(self, description: str, total: float | None = None) -> None:
        self.description, self.total = description, total
        self._bar = None
        self._task = None

    def __enter__(self) -> _ProgressOnFirstUpdate:
        return self

    def update(self, **fields) -> None:
        if self._bar is None:
            from rich.progress import Progress

            self._bar = Progress(console=console)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        self._bar.update(self._task, **fields)

    def print(self, text: str) -> None:
        (console if self._bar is None else self._bar.console).print(text)

    def __exit__(self, *exception) -> None:
        if self._bar is not None:
            self._bar.stop()


def _reports_errors(command: F) -> F:
    """Turn an :class:`MrMotionError` (bad input) into one line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MrMotionError as error:
            errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@_reports_errors
def calibrate(
    tracker: Annotated[Path, typer.Option(help="Tracker log (CSV or XPACE): marker poses in the camera frame.")],
    scanner: Annotated[
        Path, typer.Option(help="Object poses in the scanner frame (LPS mm) at the same times, same CSV columns.")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Transform JSON to write (source camera, target scanner).")
    ],
    method: Annotated[
        str, typer.Option(help="park (Park–Martin), tsai (Tsai–Lenz) or daniilidis (dual quaternions).")
    ] = "park",
) -> None:
    """Cross-calibrate a tracking camera: scanner_from_camera (X) from paired poses (hand–eye, Q = X·P·M).

    Pose i of the tracker (camera_from_marker P) and of the object in the scanner (scanner_from_object Q, e.g.
    from registered images) must be taken at the same time. Needs ≥ 3 pairs with rotations about ≥ 2 axes.
    Prints the residual of each pair: angle (deg) and distance (mm) between Q and X·P·M.
    """
    from mrmotion.commands import calibrate_files

    result = calibrate_files(tracker, scanner, output, method)
    table = Table(title=f"scanner_from_camera by {result.method}: residuals per pose pair")
    table.add_column("pair", justify="right")
    table.add_column("rotation (deg)", justify="right")
    table.add_column("translation (mm)", justify="right")
    for index, (angle, distance) in enumerate(
        zip(result.residual_rotation_deg, result.residual_translation_mm, strict=True)
    ):
        table.add_row(str(index), f"{angle:.4f}", f"{distance:.4f}")
    table.add_row(
        "median", f"{np.median(result.residual_rotation_deg):.4f}", f"{np.median(result.residual_translation_mm):.4f}"
    )
    console.print(table)
    console.print(f"wrote {output}")


@app.command()
@_reports_errors
def prescribe(
    slices: Annotated[Path, typer.Option(help="Prescription JSON: slices at the reference time (LPS mm).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV of updates, or prescription JSON, to write.")],
    tracker: Annotated[
        Path | None, typer.Option(help="Tracker log (CSV or XPACE): marker poses in the camera frame.")
    ] = None,
    calibration: Annotated[
        Path | None, typer.Option(help="Transform JSON scanner_from_camera (from `mrmotion calibrate`).")
    ] = None,
    pose_ref: Annotated[
        Path | None, typer.Option(help="Head pose JSON (from `mrmotion pose`) when the slices were prescribed.")
    ] = None,
    pose: Annotated[Path | None, typer.Option(help="Head pose JSON now (from `mrmotion pose`).")] = None,
    anatomical: Annotated[
        str | None,
        typer.Option(help="sagittal, coronal or axial: new slices in this plane of the head at --pose."),
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            help=f"Head poses whose confidence is below this are refused and nothing is written (0: take any; "
            f"default {RELIABLE_CONFIDENCE:g}). Head poses only: tracker poses carry no confidence."
        ),
    ] = None,
) -> None:
    """Prospective slice updates, from a tracker or from head poses.

    \b
    With --tracker and --calibration: the motion of every slice in its own logical frame and its update, for every
    tracker time (CSV). The first valid tracker pose is the reference. For every time t and slice i it writes
    B_i(t) (rotation vector in degrees and translation in mm, logical read/phase/slice frame), the updated slice
    S_i(t) = S0_i·B_i(t) (centre in LPS mm, read/phase/slice directions = new gradient rotation), its offsets from
    the isocentre along the new axes (mm), and the receiver phase per phase-encode line and per readout sample.
    \b
    With --pose-ref and --pose: the slices moved with the head, S' = P1·P0⁻¹·S (prescription JSON).
    \b
    With --pose and --anatomical: slices in the head's sagittal, coronal or axial plane, centred on the brain, with
    the count, spacing, FOV, thickness and matrix of --slices (prescription JSON).
    \b
    Head poses with a confidence below --min-confidence (default 0.5, below which `mrmotion pose` calls a pose not
    reliable) are refused: keep the previous prescription.
    """
    modes = {
        "tracker": tracker is not None or calibration is not None,
        "poses": pose_ref is not None,
        "anatomical": anatomical is not None,
    }
    if sum(modes.values()) != 1:
        raise MrMotionError(
            "give exactly one of: --tracker with --calibration; --pose-ref with --pose; --anatomical with --pose"
        )
    if modes["tracker"]:
        if tracker is None or calibration is None:
            raise MrMotionError("--tracker and --calibration go together; give both")
        if pose is not None:
            raise MrMotionError("--pose does not go with --tracker; use --pose-ref and --pose instead")
        if min_confidence is not None:
            raise MrMotionError(
                "--min-confidence applies to head poses from `mrmotion pose`; tracker poses carry no confidence"
            )
        from mrmotion.commands import prescribe_files

        result = prescribe_files(slices, tracker, calibration, output)
        count_t, count_n = result.logical_motion.shape[:2]
        shift = np.linalg.norm(result.update.shift_mm, axis=-1)
        console.print(
            f"{count_t} time points × {count_n} slices = {count_t * count_n} updates; "
            f"largest slice shift {shift.max():.2f} mm"
            + (f"; skipped {result.skipped_invalid} invalid tracker samples" if result.skipped_invalid else "")
        )
    else:
        from mrmotion.commands.pose import prescribe_anatomical, prescribe_with_poses

        if pose is None:
            raise MrMotionError("--pose is needed (the head pose now, from `mrmotion pose`)")
        min_confidence = RELIABLE_CONFIDENCE if min_confidence is None else min_confidence
        if modes["poses"]:
            moved = prescribe_with_poses(slices, pose_ref, pose, output, min_confidence)
            console.print(f"{len(moved)} slices moved with the head")
        else:
            placed = prescribe_anatomical(slices, pose, anatomical, output, min_confidence)
            console.print(f"{len(placed)} {anatomical} slices of the head")
    console.print(f"wrote {output}")


@app.command("pose")
@_reports_errors
def pose_command(
    volume: Annotated[Path, typer.Argument(help="3-D NIfTI volume, or a folder of them.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Pose JSON to write; for a folder, the folder for <name>.json.")
    ],
    precision: Annotated[
        str,
        typer.Option(
            help="Arithmetic of the networks: auto (bfloat16 where the CPU has it natively, else float32), "
            "bfloat16 (about 1.3x faster on such CPUs, poses within a few tenths of a degree) or float32 (as trained)."
        ),
    ] = "auto",
    passes: Annotated[
        int,
        typer.Option(
            help="Region cubes averaged for a confident pose, 1-5: the others are shifted by half a voxel, and "
            "their rotations averaged when they agree (more accurate: 3 passes took the held-out median error from "
            "3.5 to 3.3 degrees; each pass costs about as much as the first)."
        ),
    ] = 1,
) -> None:
    """Head pose (6-DoF) from a 3-D volume: scanner_from_head with a confidence.

    Head frame: origin at the brain centre, axes toward the subject's left, posterior and superior; scanner LPS mm.
    The brain is found first (the volume may be a whole uterus or a head with neck), then nine left–right-symmetric
    brain regions are segmented (averaged over the identity and the 3 half-turns of the grid: equivariant to them)
    and the head's rotation is fitted to their centroids and the brain's principal axes, then refined by matching
    the regions to region templates of the training atlases. A confidence below 0.5 means: do not drive the scanner
    with this pose. Input checks run before the networks are loaded.
    """
    from mrmotion.commands.pose import pose_file, pose_folder
    from mrmotion.pose.estimate import LOW_CONFIDENCE

    def describe(result) -> str:
        estimate = result.estimate
        angle = np.degrees(np.arccos(np.clip((np.trace(estimate.scanner_from_head[:3, :3]) - 1) / 2, -1, 1)))
        centre = ", ".join(f"{v:.1f}" for v in estimate.scanner_from_head[:3, 3])
        text = f"{result.volume.name}: brain centre ({centre}) mm, rotation {angle:.1f}°"
        text += f", confidence {estimate.confidence:.2f}"
        if estimate.details.get("field_of_view_extended"):
            text += " (from the volume with the zeros outside its field of view given their nearest values)"
        if not estimate.details.get("orientation_validated", True):
            text += (
                f" [yellow](the region network has not learned orientations: validation error "
                f"{estimate.details['validation_deg']:.0f}°; use the brain centre only)[/]"
            )
        elif estimate.confidence < LOW_CONFIDENCE:
            text += " [yellow](low: not a reliable pose)[/]"
        return text

    if volume.is_dir():
        with _ProgressOnFirstUpdate("pose") as bar:

            def step(done: int, total: int, result) -> None:
                bar.update(completed=done, total=total)
                if result is None:  # the folder is checked: the work starts
                    return
                if result.error is None:
                    bar.print(describe(result))
                else:  # errors about the file name it already
                    named = result.error.startswith(f"{result.volume}: ")
                    bar.print(f"{'' if named else result.volume.name + ': '}[red]{result.error}[/]")

            results = pose_folder(volume, output, progress=step, precision=precision, passes=passes)
        failed = [r for r in results if r.error]
        console.print(f"wrote {len(results) - len(failed)} pose file(s) to {output}")
        if failed:
            errors.print(f"[bold red]error:[/] {len(failed)} volume(s) without a pose (listed above)")
            raise typer.Exit(code=2)
    else:
        result = pose_file(volume, output, precision=precision, passes=passes)
        console.print(describe(result))
        console.print(f"wrote {output}")


@app.command("train-pose")
@_reports_errors
def train_pose(
    atlases: Annotated[Path, typer.Option(help="Folder of fetal atlases (each with parcellation and mask NIfTI).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the weights, logs and card.")],
    stage: Annotated[
        str,
        typer.Option(
            help="all, localiser (brain localiser), regions (brain-region network) or templates (the training "
            "atlases' region templates that rotations are refined against; seconds)."
        ),
    ] = "all",
    steps: Annotated[int | None, typer.Option(help="Steps per stage (default: those of the shipped weights).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoints in --output.")] = False,
    t2_share: Annotated[
        float | None,
        typer.Option(
            help="Share of the fetal samples rendered from the atlases' own T2 images instead of label contrasts "
            "(localiser and regions; default: shipped)."
        ),
    ] = None,
    adult_share: Annotated[
        float | None,
        typer.Option(
            help="Share of the samples made from the adult MNI152 template instead of a fetal atlas (localiser: its "
            "tissue maps; regions: the same labelled like the atlases; default: shipped)."
        ),
    ] = None,
    zero_fill_share: Annotated[
        float | None,
        typer.Option(
            help="Share of the localiser's samples whose field of view is turned against the grid and zero outside "
            "it, as resampled volumes are (default: shipped)."
        ),
    ] = None,
) -> None:
    """Train the pose networks on synthetic volumes made from the atlases (and the adult MNI152 template).

    Reproduces the shipped weights (src/mrmotion/weights/pose_card.md lists steps, time and metrics). Atlases named
    in mrmotion.pose.train.HELD_OUT are kept out for the evaluation. About an hour on 2 CPU cores.
    """
    from dataclasses import replace

    from rich.progress import Progress

    from mrmotion.pose.estimate import TEMPLATES_FILE
    from mrmotion.pose.template import write_templates
    from mrmotion.pose.train import SHIPPED, train

    if stage not in ("all", *SHIPPED, "templates"):
        raise MrMotionError(f"unknown stage {stage!r}: expected all, {', '.join(SHIPPED)}, templates")
    if not output.is_dir():
        raise MrMotionError(f"output folder {output} does not exist")
    for name, share in (
        ("--t2-share", t2_share),
        ("--adult-share", adult_share),
        ("--zero-fill-share", zero_fill_share),
    ):
        if share is not None and not 0 <= share <= 1:
            raise MrMotionError(f"{name} must be in [0, 1], got {share}")
    chosen = [*SHIPPED, "templates"] if stage == "all" else [stage]
    with Progress(console=console) as bar:
        for name in chosen:
            if name == "templates":
                summary = write_templates(atlases, output / TEMPLATES_FILE)
                bar.console.print(f"templates of {len(summary['atlases'])} atlases")
                continue
            config, filename = SHIPPED[name]
            if steps is not None:
                config = replace(config, steps=steps)
            if t2_share is not None:
                config = replace(config, t2_share=t2_share)
            if adult_share is not None:
                config = replace(config, adult_share=adult_share)
            if zero_fill_share is not None:
                config = replace(config, zero_fill_share=zero_fill_share)
            task = bar.add_task(name, total=config.steps)
            summary = train(
                config,
                atlases,
                output / filename,
                resume=resume,
                progress=lambda done, total, row, task=task, name=name: bar.update(
                    task, completed=done, description=f"{name} loss {row['loss']:.3f}"
                ),
            )
            bar.console.print(f"{name}: {summary}")
    from mrmotion.pose.card import write_card

    write_card(output)
    console.print(f"wrote weights and pose_card.md to {output}")


@app.command("correct")
@_reports_errors
def correct_command(
    image: Annotated[Path, typer.Argument(help="Motion-corrupted magnitude image, 2-D or 3-D NIfTI.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Corrected image to write (.nii or .nii.gz).")],
    prior_strength: Annotated[
        float | None,
        typer.Option(
            help="Weight of the prior of motion-free anatomy in choosing codes (0: none; the default, as guidance did "
            "not measurably help in benchmarks/learned_correction.py)."
        ),
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Folder with correct_vqvae/correct_prior weights (default: shipped).")
    ] = None,
    symmetries: Annotated[
        int | None,
        typer.Option(
            help="Average the correction over this many flips/quarter turns of each slice: 1 (none), 2, 4 (the "
            "default: the four flips) or 8; the time grows in proportion."
        ),
    ] = None,
    slice_axis: Annotated[
        str,
        typer.Option(
            help="Voxel axis a 3-D volume is corrected along, slice by slice: 0, 1, 2, or auto (the header's slice "
            "dimension, else the axis of clearly thicker voxels, else 2)."
        ),
    ] = "auto",
) -> None:
    """Correct motion artifacts with the learned model (hierarchical VQ-VAE guided by an autoregressive prior).

    A 3-D volume is corrected slice by slice along its slice axis (--slice-axis); each slice is resampled to the
    model's 128 × 128 grid and back, so the output keeps the input's shape, affine, header and intensity scale.
    """
    from mrmotion.commands.correct import correct_file

    with _ProgressOnFirstUpdate("correcting slices") as bar:
        along = correct_file(
            image, output, prior_strength, weights,
            progress=lambda done, total: bar.update(completed=done, total=total), symmetries=symmetries,
            axis=slice_axis,
        )  # fmt: skip
    console.print(f"wrote {output}" + ("" if along is None else f" (slices along voxel axis {along})"))


def _training_status(row: dict) -> str:
    """Loss, and at validation steps the validation number and the VQ-VAE's code usage (perplexity, dead share)."""
    text = f"loss {row['loss']:.4f}"
    if "validation" in row:
        text += f", validation {row['validation']:.3f}"
    if "top_perplexity" in row:
        text += (
            f", codes used: top {row['top_perplexity']:.0f} ({100 * row['top_dead']:.0f}% dead), "
            f"bottom {row['bottom_perplexity']:.0f} ({100 * row['bottom_dead']:.0f}% dead)"
        )
    return text


@app.command("train-correct")
@_reports_errors
def train_correct(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the weights, logs, pairs and card.")],
    atlases: Annotated[
        Path | None, typer.Option(help="Folder of fetal atlases (srr.nii.gz each); without: adult MNI152 only.")
    ] = None,
    stage: Annotated[str, typer.Option(help="all, vqvae, prior (needs vqvae) or unet (the baseline).")] = "all",
    steps: Annotated[int | None, typer.Option(help="Steps per stage (default: those of the shipped weights).")] = None,
    finetune_steps: Annotated[
        int | None,
        typer.Option(
            help="The last steps of the VQ-VAE and the U-Net that fine-tune (the VQ-VAE's decoder side only; "
            "default: the shipped weights', 3000; 0: none)."
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoints in --output.")] = False,
) -> None:
    """Train the learned-correction networks on slices corrupted by our own k-space simulator.

    Reproduces the shipped weights (src/mrmotion/weights/correct_card.md lists steps, time and metrics). Training
    motion: sudden jumps, light and moderate; drift, periodic and severe motion are kept for the evaluation.
    """
    from dataclasses import replace

    from rich.progress import Progress

    from mrmotion.learn.card import write_card
    from mrmotion.learn.train import SHIPPED, finetune_problem, train

    if stage not in ("all", *SHIPPED):
        raise MrMotionError(f"unknown stage {stage!r}: expected all, {', '.join(SHIPPED)}")
    if not output.is_dir():
        raise MrMotionError(f"output folder {output} does not exist")
    if steps is not None and steps < 1:
        raise MrMotionError(f"--steps must be at least 1, got {steps}")
    chosen = list(SHIPPED) if stage == "all" else [stage]
    configs = {}
    for name in chosen:
        config, _ = SHIPPED[name]
        config = replace(config, steps=steps) if steps is not None else config
        if finetune_steps is not None and name != "prior":
            config = replace(config, finetune_steps=finetune_steps)
        if problem := finetune_problem(config):  # checked for every stage before any trains
            raise MrMotionError(f"{name}: {problem}; give more --steps or fewer --finetune-steps (0: none)")
        configs[name] = config
    with Progress(console=console) as bar:
        for name, config in configs.items():
            filename = SHIPPED[name][1]
            pairs_task = bar.add_task("simulating training pairs", total=config.pairs)
            task = bar.add_task(name, total=config.steps)
            summary = train(
                config, atlases, output / filename, vqvae_weights=output / SHIPPED["vqvae"][1], resume=resume,
                progress=lambda done, total, row, task=task, name=name: bar.update(
                    task, completed=done, description=f"{name} {_training_status(row)}"
                ),
                pairs_progress=lambda n, t=pairs_task: bar.update(t, advance=n),
            )  # fmt: skip
            bar.update(pairs_task, visible=False)
            bar.console.print(f"{name}: {summary}")
    write_card(output)
    console.print(f"wrote weights and correct_card.md to {output}")


@app.command("motion-report")
@_reports_errors
def motion_report(
    tracker: Annotated[Path, typer.Argument(help="Tracker log (CSV or XPACE): marker poses in the camera frame.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Figure to write (.png, .pdf or .svg).")],
    calibration: Annotated[
        Path | None, typer.Option(help="Optional scanner_from_camera JSON: report in scanner LPS instead of camera.")
    ] = None,
    radius: Annotated[float, typer.Option(help="Sphere radius (mm) for framewise displacement.")] = 50.0,
) -> None:
    """Plot translations (mm), rotations (deg) and framewise displacement (mm) over time.

    Motion is relative to the first valid pose and taken about the marker's position then, so translations are
    how far the marker moved. Framewise displacement is the RMS displacement of a sphere of --radius mm between
    consecutive samples.
    """
    from mrmotion.commands import motion_report_file

    summary = motion_report_file(tracker, output, calibration, radius)
    console.print(
        f"{len(summary.times_s)} samples over {summary.times_s[-1] - summary.times_s[0]:.1f} s: "
        f"max translation {summary.max_translation_mm:.2f} mm, max rotation {summary.max_rotation_deg:.2f} deg, "
        f"mean framewise displacement {summary.mean_framewise_mm:.3f} mm"
    )
    console.print(f"wrote {output}")


@app.command("tracker-motion")
@_reports_errors
def tracker_motion(
    tracker: Annotated[Path, typer.Argument(help="Tracker log (CSV or XPACE): marker poses in the camera frame.")],
    calibration: Annotated[Path, typer.Option(help="scanner_from_camera JSON (from `mrmotion calibrate`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Motion CSV to write.")],
    time_offset: Annotated[
        float, typer.Option(help="Tracker clock time (s) at the scan start: row times are tracker times minus it.")
    ] = 0.0,
    reference_time: Annotated[
        float | None,
        typer.Option(help="Scan time (s) whose pose the image shows (default: the first valid tracker sample)."),
    ] = None,
) -> None:
    """Turn a tracking log into the motion CSV that `simulate --motion` and `recon --motion` take.

    Each row is how the head moved since the reference time, in scanner LPS mm about the isocentre
    (X·P(t)·P(t0)⁻¹·X⁻¹ with the calibration X), at scan time = tracker time − --time-offset. Invalid tracker
    samples are left out. `mrmotion recon KSPACE.h5 --motion MOTION.csv` then shows the head as it was at the
    reference time.
    """
    from mrmotion.commands import tracker_motion_file

    motion = tracker_motion_file(tracker, calibration, output, time_offset, reference_time)
    span = f"{motion.times_s[0]:g}–{motion.times_s[-1]:g} s"
    console.print(f"{len(motion)} tracker poses, {span} scan time; wrote {output}")


@app.command()
@_reports_errors
def simulate(
    image: Annotated[Path, typer.Argument(help="Input image (NIfTI, 2-D or 3-D; the motion-free object).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (created if missing).")],
    motion: Annotated[
        Path | None,
        typer.Option(
            help="Motion CSV (time_s,tx_mm,ty_mm,tz_mm,qx,qy,qz,qw): each row moves the object away from "
            "where it is in the image, scanner LPS about the isocentre; one row = constant pose."
        ),
    ] = None,
    random: Annotated[str | None, typer.Option(help="Random motion instead: light, moderate or severe.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for random motion and noise.")] = 0,
    order: Annotated[str, typer.Option(help="Phase-encode order: linear, centric, interleaved or random.")] = "linear",
    shots: Annotated[int, typer.Option(help="Echo trains for --order interleaved.")] = 1,
    coils: Annotated[
        int, typer.Option(help="Number of receive coils (loops around the head, fixed in the scanner).")
    ] = 8,
    snr: Annotated[float | None, typer.Option(help="SNR of the k-space data in dB (none: no noise).")] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="3d (volume encoding) or 2d (single-slice images, or multi-slice of a volume: "
            "scanner-fixed thin slices, no spin history)."
        ),
    ] = "3d",
    coil_model: Annotated[
        str,
        typer.Option(help="exact (coils fixed in the scanner) or moving (approximation: coils move with the head)."),
    ] = "exact",
    coil_clusters: Annotated[
        int | None,
        typer.Option(
            help="Exact coil model, 3-D or single-slice scans (not multi-slice): evaluate the coils at no more "
            "than this many poses (default 16), placed where the signal is. Long motion costs about this many × "
            "coils full-grid FFTs: fewer is faster and less accurate (docs/measured/physics.md: coil clusters)."
        ),
    ] = None,
) -> None:
    """Simulate a motion-corrupted multi-coil Cartesian scan of IMAGE (exact rigid motion in k-space).

    Every k-space sample is computed at its own transformed coordinate with its translation phase (augmented
    k-space, one NUFFT for all motion states); coils stay fixed in the scanner while the head moves. Writes
    corrupted.nii.gz (complex) and corrupted_magnitude.nii.gz with the input's affine, kspace.h5 (ISMRMRD with
    trajectory in rad/mm, sample times in s, geometry in LPS mm, coil maps), motion.csv (scanner LPS mm, about the
    isocentre) and simulation.png.
    """
    from mrmotion.commands.scan import simulate_files

    with console.status("starting") as status:
        summary = simulate_files(
            image,
            output,
            motion,
            random,
            seed,
            order,
            shots,
            coils,
            snr,
            mode,
            coil_model,
            step=lambda message: (status.update(message), console.log(message)),
            coil_clusters=coil_clusters,
        )
    size = summary.motion_size
    console.print(
        f"motion: max rotation {size['max_rotation_deg']:.2f} deg, "
        f"max translation {size['max_translation_mm']:.2f} mm; "
        f"corrupted image NRMSE {summary.nrmse:.3f}"
    )
    scan = summary.scan
    if scan.coil_clusters is not None and scan.coil_clusters > 1:
        console.print(
            f"exact coil model: the coils were evaluated at {scan.coil_clusters} poses, each shared by the motion "
            f"states within {scan.coil_cluster_tol_mm:.2f} mm of it ({scan.coil_pose_rms_mm:.2f} mm rms)"
            + (
                "; distances of millimetres mean coil weightings in error by up to a few per cent (the poses sit "
                "where the signal is: benchmarks/coil_cluster_error.py)"
                if scan.coil_cluster_tol_mm >= 1.0
                else ""
            )
        )
    console.print(f"wrote {', '.join(str(path) for path in summary.files)}")


@app.command()
@_reports_errors
def recon(
    kspace: Annotated[Path, typer.Argument(help="K-space file (ISMRMRD HDF5 written by mrmotion simulate).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Image to write (.nii or .nii.gz).")],
    motion: Annotated[
        Path | None, typer.Option(help="Known motion CSV (scanner LPS about the isocentre); none: plain SENSE.")
    ] = None,
    iterations: Annotated[int, typer.Option(help="Conjugate-gradient iterations.")] = 15,
    regularization: Annotated[
        float, typer.Option(help="Tikhonov weight, relative to the largest eigenvalue of EᴴE.")
    ] = 1e-4,
    complex_output: Annotated[
        bool, typer.Option("--complex", help="Write the complex image, not its magnitude.")
    ] = False,
    coil_model: Annotated[
        str,
        typer.Option(
            help="exact (coils fixed in the scanner; cost grows with the motion's range) or moving "
            "(approximation: coils move with the head; fastest)."
        ),
    ] = "exact",
    exact_iterations: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="With --coil-model exact and motion: iterations of the exact model after --iterations of the "
            "moving model (a warm start; each exact iteration costs about as much as 5 moving ones). "
            "Default: as many as --iterations up to 1 M voxels, 1 above.",
            show_default=False,
        ),
    ] = None,
    crop: Annotated[
        bool,
        typer.Option(
            help="Reconstruct only the box where the object is (found in the data; zero outside): faster. "
            "--no-crop reconstructs the whole field of view."
        ),
    ] = True,
    estimate_motion: Annotated[
        bool,
        typer.Option(
            "--estimate-motion",
            help="Estimate the motion from the data itself (aligned SENSE; single 2-D slices, in-plane motion; "
            "every motion state must sample the k-space centre, as in interleaved multi-shot scans) and write it "
            "as a motion CSV (--motion-out).",
        ),
    ] = False,
    motion_out: Annotated[
        Path | None,
        typer.Option(
            help="With --estimate-motion: where to write the estimated motion CSV (default: the output's name "
            "with _motion.csv).",
            show_default=False,
        ),
    ] = None,
    states: Annotated[
        int | None,
        typer.Option(
            help="With --estimate-motion: motion states of equal duration (default: one per shot of a multi-shot "
            "scan, else 8).",
            show_default=False,
        ),
    ] = None,
    estimation_iterations: Annotated[
        int, typer.Option(min=1, help="With --estimate-motion: alternating image / motion iterations.")
    ] = 24,
) -> None:
    """Reconstruct k-space with CG-SENSE, with known motion (augmented SENSE) if --motion is given, or with motion
    estimated from the data (--estimate-motion).

    With the true motion the image comes back in the reference position (where the object was at motion
    identity). Coil maps come from the file, or are estimated from the data (Walsh) when it has none. With
    --estimate-motion, the image shows the object as during the first motion state, and the motion CSV says how
    it moved from there in every state.
    """
    from mrmotion.commands.scan import recon_file

    if estimate_motion:
        estimated = motion_out or output.with_name(output.name.removesuffix(".gz").removesuffix(".nii") + "_motion.csv")
        with _ProgressOnFirstUpdate("estimating motion", total=estimation_iterations) as bar:
            recon_file(
                kspace, output, motion, iterations, regularization, not complex_output, crop=crop,
                estimated_motion_csv=estimated, states=states, estimation_iterations=estimation_iterations,
                estimation_progress=lambda i, of, residual: bar.update(
                    completed=i, description=f"estimating motion (residual {residual:.3f})"
                ),
            )  # fmt: skip
        console.print(f"wrote {output} and the estimated motion {estimated}")
        console.print(_motion_summary(estimated, output))
        return

    exact = iterations if exact_iterations is None else exact_iterations  # the most the default can be
    total = iterations + (exact if motion is not None and coil_model == "exact" else 0)
    with _ProgressOnFirstUpdate("CG-SENSE", total=total) as bar:
        recon_file(
            kspace,
            output,
            motion,
            iterations,
            regularization,
            not complex_output,
            coil_model=coil_model,
            progress=lambda iteration, residual: bar.update(
                completed=iteration,
                # the exact stage's residual is relative to where the moving model left it
                description=f"CG-SENSE{', exact model' if iteration > iterations else ''} (residual {residual:.1e})",
            ),
            exact_iterations=exact_iterations,
            crop=crop,
        )
        bar.update(completed=total)  # CG may stop early (converged, or one coil weighting: no exact stage)
    console.print(f"wrote {output}")


def _motion_summary(motion_csv: Path, image_path: Path) -> str:
    """One line on a motion CSV: its states, the largest turn (deg) and the largest shift of the image's centre (mm)
    from the reference pose."""
    from mrmotion.geometry.parameters import rotation_angle
    from mrmotion.geometry.transforms import apply
    from mrmotion.io.motion_csv import read_motion_csv
    from mrmotion.io.nifti import read_image

    motion = read_motion_csv(motion_csv)
    image = read_image(image_path)
    centre = apply(image.scanner_from_voxel, (np.array([*image.data.shape, 1, 1][:3]) - 1) / 2)
    shift = np.linalg.norm(apply(motion.transforms, centre) - centre, axis=-1)
    turn = np.degrees(rotation_angle(motion.transforms))
    return (
        f"{len(motion)} motion states; from the first: largest turn {turn.max():.2f}°, largest shift of the image "
        f"centre {shift.max():.2f} mm"
    )


@app.command()
@_reports_errors
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the demo's outputs.")] = Path(
        "mrmotion-demo"
    ),
) -> None:
    """Run the whole chain on a built-in synthetic session and write the outputs and figures to a folder.

    The session: a 12-pose calibration scan, 120 s of tracked head motion at 10 Hz (drift, nodding, one sudden
    turn) and 24 axial-oblique slices. Steps: calibrate the tracker, compute per-slice motion and prospective
    updates, report the motion, simulate the scan of a moving MNI152 head, reconstruct it with the tracked motion,
    correct it with the learned model, estimate head poses from navigators and prescribe slices from them, and
    compare with the known ground truth (summary.json, report.html).
    """
    from mrmotion.demo.run import run_demo

    with console.status("starting") as status:
        summary = run_demo(output, step=lambda message: (status.update(message), console.log(message)))
    calibration, prospective = summary["calibration"], summary["prospective"]
    console.print(
        f"calibration error vs truth: {calibration['rotation_error_deg']:.3f} deg, "
        f"{calibration['translation_error_mm']:.3f} mm ({calibration['method']})"
    )
    console.print(
        f"{prospective['updates']} slice updates; slices followed the head to "
        f"{prospective['median_tracking_error_mm']:.3f} mm median ({prospective['max_tracking_error_mm']:.3f} mm max)"
    )
    console.print(f"outputs in {output}/: " + ", ".join(summary["files"]))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
