"""Motion estimated from the k-space data itself (aligned SENSE), on the real 7-coil slice of ../shared.

The slice (256 × 216, 1 mm pixels assumed, SENSE-1 with Walsh maps as the object, its maps as the coils fixed in the
scanner) is scanned in 8 interleaved shots; every shot but the first is moved in-plane by a random rotation and
translation up to ± A degrees and ± A mm (uniform, seeded), for A = 2, 4, 8, 10. For each case, side by side:
the plain reconstruction (no motion), the reconstruction with motion estimated from the data
(:func:`mrmotion.recon.motion_estimation.estimate_motion`, defaults), and with the true (known) motion, each against
the reconstruction of the still scan (NRMSE inside the head); the estimate's largest rotation error (deg) and
largest displacement error of the head's centre (mm) over the shots; seconds for the estimation (with its final
reconstruction). Writes ``benchmarks/results/motion_estimation.{txt,json,png}``.

    python benchmarks/motion_estimation.py               # 3 seeds per amplitude
    python benchmarks/motion_estimation.py --seeds 1     # quick
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

ROOT = Path(__file__).resolve().parents[1]
SLICE = ROOT.parent / "shared" / "data" / "brain_slice_7coil" / "brain_slice_7coil.npz"
RESULTS = ROOT / "benchmarks" / "results"
AMPLITUDES = (2.0, 4.0, 8.0, 10.0)
SHOTS = 8
FAILED_DEG = 1.0  # a case whose largest rotation error exceeds this counts as not recovered


def real_slice():
    """Object (SENSE-1 combination), its grid and coil maps of the real slice, 1 mm pixels."""
    from mrmotion.geometry.transforms import make_transform
    from mrmotion.physics.coils import GridCoilMaps, estimate_coil_maps
    from mrmotion.physics.encoding import ImageGrid

    coil_images = np.moveaxis(np.load(SLICE)["arr_0"], -1, 0).astype(np.complex128)
    maps = estimate_coil_maps(coil_images, method="walsh")
    combined = np.sum(np.conj(maps) * coil_images, axis=0) / np.maximum(np.sum(np.abs(maps) ** 2, axis=0), 1e-12)
    shape = combined.shape
    grid = ImageGrid(shape, make_transform(np.eye(3), -np.array([*np.array(shape) // 2, 0.0])))
    return combined, grid, GridCoilMaps(maps, grid.scanner_from_voxel)


def shot_motion(sampling, amplitude: float, rng: np.random.Generator):
    """In-plane motion per shot, the first at rest: rotations about the slice normal and shifts in-plane."""
    from mrmotion.geometry.parameters import transform_from_euler
    from mrmotion.physics.trajectory import MotionTrajectory

    shots = np.unique(sampling.shot)
    starts = np.array([sampling.time_s[sampling.shot == s].min() for s in shots])
    angles = np.concatenate([[0.0], rng.uniform(-amplitude, amplitude, len(shots) - 1)])
    shifts = np.concatenate([[[0.0, 0.0]], rng.uniform(-amplitude, amplitude, (len(shots) - 1, 2))])
    rotations = np.stack([np.zeros_like(angles), np.zeros_like(angles), angles], -1)
    poses = transform_from_euler(rotations, np.concatenate([shifts, np.zeros((len(shots), 1))], -1))
    return MotionTrajectory(starts, poses, end_s=sampling.duration_s)


def pose_errors(estimated: np.ndarray, truth: np.ndarray, centre: np.ndarray) -> tuple[float, float]:
    """Largest rotation error (deg) and displacement error of ``centre`` (mm) over the states."""
    difference = np.linalg.inv(truth) @ estimated
    angles = np.degrees(Rotation.from_matrix(difference[:, :3, :3]).magnitude())
    moved = lambda t: t[:, :3, :3] @ centre + t[:, :3, 3]  # noqa: E731
    return float(angles.max()), float(np.linalg.norm(moved(estimated) - moved(truth), axis=1).max())


def main() -> None:
    from mrmotion.physics.sampling import cartesian
    from mrmotion.physics.simulate import simulate
    from mrmotion.recon.motion_estimation import estimate_motion
    from mrmotion.recon.reconstruct import sense_reconstruction

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="random motions per amplitude")
    args = parser.parse_args()
    if not SLICE.exists():
        raise SystemExit(f"real slice not found at {SLICE}")
    combined, grid, coils = real_slice()
    sampling = cartesian((*combined.shape, 1), (1.0, 1.0, 1.0), mode="3d", order="interleaved", shots=SHOTS)
    still = simulate(combined, grid, sampling, None, coils)
    settings = dict(iterations=15, regularization=1e-4)
    reference, _ = sense_reconstruction(still.data, sampling, still.scanner_from_logical, coils, **settings)
    mask = np.abs(reference.image) > 0.1 * np.abs(reference.image).max()

    def nrmse(image: np.ndarray) -> float:
        return float(np.linalg.norm((image - reference.image)[mask]) / np.linalg.norm(reference.image[mask]))

    rows, shown = [], None
    for amplitude in AMPLITUDES:
        for seed in range(args.seeds):
            motion = shot_motion(sampling, amplitude, np.random.default_rng(1000 + seed))
            scan = simulate(combined, grid, sampling, motion, coils)
            plain, _ = sense_reconstruction(scan.data, sampling, scan.scanner_from_logical, coils, **settings)
            known, _ = sense_reconstruction(scan.data, sampling, scan.scanner_from_logical, coils, motion, **settings)
            began = time.perf_counter()
            estimate = estimate_motion(scan.data, sampling, scan.scanner_from_logical, coils)
            seconds = time.perf_counter() - began
            rotation, shift = pose_errors(estimate.motion.transforms, motion.transforms, estimate.centre_mm)
            row = {
                "amplitude": amplitude,
                "seed": seed,
                "nrmse_plain": nrmse(plain.image),
                "nrmse_estimated": nrmse(estimate.result.image),
                "nrmse_known": nrmse(known.image),
                "rotation_error_deg": rotation,
                "shift_error_mm": shift,
                "seconds": seconds,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            if amplitude == 4.0 and seed == 0:
                shown = (plain.image, estimate.result.image, known.image)
    lines = [
        f"real 7-coil slice, 256 x 216, {SHOTS} interleaved shots, in-plane motion per shot up to +-A deg and +-A mm",
        "NRMSE inside the head against the still scan's reconstruction; errors: the largest over the shots",
        "",
        f"{'A':>4} {'seed':>4} {'plain':>7} {'estimated':>9} {'known':>7} {'rot err':>8} {'shift err':>9} {'s':>6}",
    ]
    for r in rows:
        lines.append(
            f"{r['amplitude']:4.0f} {r['seed']:4d} {r['nrmse_plain']:7.3f} {r['nrmse_estimated']:9.4f} "
            f"{r['nrmse_known']:7.4f} {r['rotation_error_deg']:8.3f} {r['shift_error_mm']:9.3f} {r['seconds']:6.1f}"
        )
    lines.append("")
    for amplitude in AMPLITUDES:
        group = [r for r in rows if r["amplitude"] == amplitude]
        recovered = sum(r["rotation_error_deg"] <= FAILED_DEG for r in group)
        median = {key: np.median([r[f"nrmse_{key}"] for r in group]) for key in ("plain", "estimated", "known")}
        lines.append(
            f"A = {amplitude:g}: recovered (rotation error <= {FAILED_DEG:g} deg) in {recovered} of {len(group)}; "
            f"median NRMSE plain {median['plain']:.3f}, estimated {median['estimated']:.4f}, "
            f"known {median['known']:.4f}"
        )
    lines.append(f"seconds per estimation (median): {np.median([r['seconds'] for r in rows]):.1f}")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "motion_estimation.txt").write_text(text + "\n")
    (RESULTS / "motion_estimation.json").write_text(json.dumps(rows, indent=1) + "\n")
    if shown is not None:
        figure(shown, reference.image, RESULTS / "motion_estimation.png")


def figure(images, reference: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = ("no motion correction", "motion estimated from the data", "known motion", "still scan")
    scale = np.abs(reference).max()
    fig, axes = plt.subplots(1, 4, figsize=(13, 4))
    for axis, image, title in zip(axes, (*images, reference), titles, strict=True):
        axis.imshow(np.abs(image).T, cmap="gray", vmin=0, vmax=scale, origin="lower")
        axis.set_title(title)
        axis.axis("off")
    fig.suptitle("real 7-coil slice, 8 interleaved shots moved by up to 4 deg and 4 mm")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
