"""The demo's scan without a tracker: a multi-shot slice whose motion is estimated from its own k-space data.

An axial slice of the MNI152 T1 (2 mm) is scanned in 8 interleaved shots by 8 coils fixed in the scanner while the
head turns and shifts in-plane between shots (up to 4° and 4 mm, the first shot at rest). Then, as a user would:
`mrmotion recon` without motion, with `--estimate-motion` (aligned SENSE), and with the true motion, each scored
against the motion-free slice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from mrmotion.commands.scan import recon_file, simulate_files
from mrmotion.geometry.parameters import transform_from_euler
from mrmotion.io.motion_csv import read_motion_csv, write_motion_csv
from mrmotion.physics.sampling import cartesian
from mrmotion.physics.trajectory import MotionTrajectory
from mrmotion.report.metrics import image_quality
from mrmotion.report.motion_plot import save_figure

Step = Callable[[str], None]
SHOTS = 8
COILS = 8
MAX_MOTION = 4.0  # deg and mm, per shot


def axial_slice(volume_path: Path, path: Path) -> Path:
    """The middle axial slice of a volume as a 2-D NIfTI (the volume's affine, so the slice sits where it was)."""
    volume = nib.load(volume_path)
    data = np.asarray(volume.get_fdata(), dtype=np.float32)
    middle = data.shape[2] // 2
    affine = volume.affine.copy()
    affine[:3, 3] = volume.affine[:3, :3] @ [0, 0, middle] + volume.affine[:3, 3]
    nib.save(nib.Nifti1Image(data[:, :, middle], affine), path)
    return path


def shot_motion(slice_path: Path, seed: int) -> MotionTrajectory:
    """In-plane motion per shot of the slice's interleaved scan (as `mrmotion simulate` samples it): a turn about the
    slice's centre and a shift in-plane, each up to :data:`MAX_MOTION` (deg, mm); the first shot at rest."""
    image = nib.load(slice_path)
    voxel = np.linalg.norm(image.affine[:3, :3], axis=0)
    sampling = cartesian((*image.shape, 1), tuple(voxel), mode="2d", order="interleaved", shots=SHOTS, seed=seed)
    starts = np.array([sampling.time_s[sampling.shot == s].min() for s in range(SHOTS)])
    rng = np.random.default_rng(seed)
    angles = np.concatenate([[0.0], rng.uniform(-MAX_MOTION, MAX_MOTION, SHOTS - 1)])
    shifts = np.zeros((SHOTS, 3))
    shifts[1:, :2] = rng.uniform(-MAX_MOTION, MAX_MOTION, (SHOTS - 1, 2))
    turns = transform_from_euler(np.stack([0 * angles, 0 * angles, angles], -1))  # about z: the axial normal
    centre = slice_centre(slice_path)
    turns[:, :3, 3] = centre - turns[:, :3, :3] @ centre + shifts
    return MotionTrajectory(starts, turns, end_s=sampling.duration_s)


def run_estimation_demo(output_dir: Path, step: Step, seed: int = 0) -> dict:
    """Simulate the moving slice and reconstruct it three ways (``output_dir/mni152_2mm.nii.gz`` must exist);
    returns the scores, the estimate's pose errors and the file names."""
    clean_path = axial_slice(output_dir / "mni152_2mm.nii.gz", output_dir / "slice.nii.gz")
    write_motion_csv(output_dir / "slice_true_motion.csv", shot_motion(clean_path, seed))
    scan_dir = output_dir / "slice_scan"
    step(f"scanning an axial slice in {SHOTS} interleaved shots while the head moves between them")
    simulate_files(
        clean_path, scan_dir, motion_csv=output_dir / "slice_true_motion.csv", order="interleaved", shots=SHOTS,
        coils=COILS, snr_db=40.0, seed=seed,
    )  # fmt: skip
    kspace = scan_dir / "kspace.h5"
    plain, _ = recon_file(kspace, output_dir / "slice_plain.nii.gz")
    step("estimating the slice's motion from its own k-space data (mrmotion recon --estimate-motion)")
    estimated, _ = recon_file(
        kspace, output_dir / "slice_estimated.nii.gz", estimated_motion_csv=output_dir / "slice_estimated_motion.csv",
        estimation_progress=lambda i, of, residual: step(f"  iteration {i}/{of}: residual {residual:.3f}"),
    )  # fmt: skip
    known, _ = recon_file(kspace, output_dir / "slice_known.nii.gz", output_dir / "slice_true_motion.csv")
    clean = np.asarray(nib.load(clean_path).get_fdata())
    images = {"no motion correction": plain, "motion estimated from the data": estimated, "true motion": known}
    scores = {name: image_quality(image, clean) for name, image in images.items()}
    truth = read_motion_csv(output_dir / "slice_true_motion.csv")
    estimate = read_motion_csv(output_dir / "slice_estimated_motion.csv")
    errors = _pose_errors(estimate, truth, slice_centre(clean_path))
    _plot(clean, images, scores, truth, estimate, output_dir / "slice_estimation.png")
    return {
        "scores": scores,
        "shots": SHOTS,
        "max_rotation_deg": float(np.degrees(np.abs(_angles(truth.transforms)).max())),
        "max_rotation_error_deg": errors[0],
        "max_shift_error_mm": errors[1],
        "files": [
            "slice.nii.gz",
            "slice_true_motion.csv",
            "slice_scan/",
            "slice_plain.nii.gz",
            "slice_estimated.nii.gz",
            "slice_estimated_motion.csv",
            "slice_known.nii.gz",
            "slice_estimation.png",
        ],
    }


def _angles(transforms: np.ndarray) -> np.ndarray:
    """In-plane (about z) rotation angles of transforms (S, 4, 4), radians."""
    return np.arctan2(transforms[:, 1, 0], transforms[:, 0, 0])


def _pose_errors(estimate: MotionTrajectory, truth: MotionTrajectory, centre: np.ndarray) -> tuple[float, float]:
    """Largest in-plane rotation error (deg) and largest error of where the slice's centre ``centre`` (LPS mm) moved
    (mm), over the estimate's states, against the true motion at their start times."""
    at = truth.at(estimate.times_s)
    rotation = float(np.degrees(np.abs(np.angle(np.exp(1j * (_angles(estimate.transforms) - _angles(at))))).max()))
    moved = lambda t: t[:, :3, :3] @ centre + t[:, :3, 3]  # noqa: E731
    return rotation, float(np.linalg.norm(moved(estimate.transforms) - moved(at), axis=-1).max())


def slice_centre(slice_path: Path) -> np.ndarray:
    """The centre voxel of a 2-D NIfTI slice, scanner LPS mm."""
    image = nib.load(slice_path)
    centre_ras = image.affine[:3, :3] @ (np.array([*image.shape, 1]) // 2) + image.affine[:3, 3]
    return centre_ras * [-1, -1, 1]


def _plot(clean, images: dict, scores: dict, truth, estimate, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(17, 4.2), constrained_layout=True)
    axes = figure.subplots(1, 5, gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.4]})
    scale = float(np.percentile(np.abs(clean), 99.5))
    for axis, (name, image) in zip(axes, {"motion-free": clean, **images}.items(), strict=False):
        axis.imshow(np.abs(image).T, cmap="gray", vmin=0, vmax=scale, origin="lower")
        axis.axis("off")
        score = scores.get(name)
        axis.set_title(name if score is None else f"{name}\nSSIM {score['ssim']:.3f}, PSNR {score['psnr_db']:.1f} dB")
    shots = np.arange(len(estimate))
    axes[4].plot(shots, np.degrees(_angles(truth.at(estimate.times_s))), "o-", label="true rotation (deg)")
    axes[4].plot(shots, np.degrees(_angles(estimate.transforms)), "x--", label="estimated rotation (deg)")
    axes[4].set_xlabel("shot")
    axes[4].legend()
    return save_figure(figure, path)
