"""The scan half of the demo: the MNI152 head moves as the tracker saw it, is scanned, and is reconstructed.

MNI152 T1 (2 mm, shipped with nilearn) → the session's true head motion (scanner LPS, about the isocentre) →
8-coil 3-D Cartesian scan (coils fixed in the scanner, exact) → CG-SENSE with the motion *as measured* by the
tracker and the calibration (so calibration and tracking errors show), with coils approximated as moving with
the head (fast); and, without any motion knowledge, the learned correction of the corrupted magnitude image
(slice by slice) → image quality of the corrupted and corrected images against the motion-free template.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from mrmotion.commands.correct import correct_file  # noqa: E402
from mrmotion.commands.geometry import tracker_motion_file  # noqa: E402
from mrmotion.commands.scan import recon_file, simulate_files  # noqa: E402
from mrmotion.demo.session import SyntheticSession  # noqa: E402
from mrmotion.geometry.transforms import invert_rigid  # noqa: E402
from mrmotion.io.motion_csv import write_motion_csv  # noqa: E402
from mrmotion.physics.trajectory import MotionTrajectory  # noqa: E402
from mrmotion.report.metrics import image_quality  # noqa: E402
from mrmotion.report.motion_plot import save_figure  # noqa: E402

Step = Callable[[str], None]
#: The demo reconstructs with the fast approximation (coils move with the head): the exact model costs coils ×
#: pose groups NUFFTs per CG iteration, and this long, continuous motion has dozens of pose clusters.
RECON_COIL_MODEL = "moving"


def mni_template(path: Path) -> Path:
    """Write nilearn's MNI152 2009 T1 template at 2 mm (packaged with nilearn, no download) to ``path``."""
    from nilearn.datasets import load_mni152_template

    template = load_mni152_template(resolution=2)
    data = np.asarray(template.get_fdata(), dtype=np.float32)
    nib.save(nib.Nifti1Image(data, template.affine), path)
    return path


def plot_comparison(volumes: dict[str, np.ndarray], scores: dict, path: Path):
    """Axial and sagittal middle slices of each named volume (the first is the reference), with their scores."""
    figure, axes = plt.subplots(2, len(volumes), figsize=(4 * len(volumes), 8.5), constrained_layout=True)
    scale = float(np.percentile(np.abs(next(iter(volumes.values()))), 99.5))
    for column, (name, volume) in enumerate(volumes.items()):
        magnitude = np.abs(volume)
        views = (magnitude[:, :, magnitude.shape[2] // 2].T, magnitude[magnitude.shape[0] // 2].T)
        for row, view in enumerate(views):
            axes[row, column].imshow(view, cmap="gray", vmin=0, vmax=scale, origin="lower")
            axes[row, column].axis("off")
        score = scores.get(name)
        label = name if score is None else f"{name}: SSIM {score['ssim']:.3f}, PSNR {score['psnr_db']:.1f} dB"
        axes[0, column].set_title(label)
    return save_figure(figure, path)


def run_scan_demo(output_dir: Path, session: SyntheticSession, step: Step) -> dict:
    """Simulate and reconstruct the MNI head under the session's motion, with the motion its tracker measured
    (``tracker.csv`` and ``scanner_from_camera.json`` in ``output_dir``); returns scores and file names."""
    template = mni_template(output_dir / "mni152_2mm.nii.gz")
    truth = session.scanner_from_head @ invert_rigid(session.scanner_from_head[0])
    true_motion = MotionTrajectory(session.times_s, truth, end_s=float(session.times_s[-1]))
    write_motion_csv(output_dir / "true_motion.csv", true_motion)
    # as a user would: `mrmotion tracker-motion tracker.csv --calibration scanner_from_camera.json -o ...`
    tracker_motion_file(
        output_dir / "tracker.csv", output_dir / "scanner_from_camera.json", output_dir / "tracked_motion.csv"
    )

    scan_dir = output_dir / "scan"
    simulated = simulate_files(
        template, scan_dir, motion_csv=output_dir / "true_motion.csv", coils=8, snr_db=40.0, step=step
    )
    step("reconstructing with the tracked motion (CG-SENSE, 10 iterations, coils moving with the head)")
    corrected, _ = recon_file(
        scan_dir / "kspace.h5",
        output_dir / "corrected.nii.gz",
        output_dir / "tracked_motion.csv",
        iterations=10,
        coil_model=RECON_COIL_MODEL,
        progress=lambda iteration, residual: step(f"  CG iteration {iteration}: relative residual {residual:.1e}"),
    )
    step("learned correction of the corrupted image (hierarchical VQ-VAE, slice by slice; no motion knowledge)")
    learned = output_dir / "learned_correction.nii.gz"
    correct_file(scan_dir / "corrupted_magnitude.nii.gz", learned)
    clean = np.asarray(nib.load(template).get_fdata())
    learned_data = np.asarray(nib.load(learned).get_fdata())
    scores = {
        "corrupted": image_quality(simulated.corrupted, clean),
        "corrected": image_quality(corrected, clean),
        "learned": image_quality(learned_data, clean),
    }
    volumes = {"motion-free": clean, "corrupted": simulated.corrupted, "corrected": corrected, "learned": learned_data}
    plot_comparison(volumes, scores, output_dir / "comparison.png")
    return {
        "scores": scores,
        "motion_states": len(true_motion),
        "samples": int(simulated.scan.data.shape[1]),
        "coils": int(simulated.scan.data.shape[0]),
        "files": [
            "mni152_2mm.nii.gz",
            "true_motion.csv",
            "tracked_motion.csv",
            "scan/",
            "corrected.nii.gz",
            "learned_correction.nii.gz",
            "comparison.png",
        ],
    }
