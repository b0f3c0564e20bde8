"""Scan commands: simulate a motion-corrupted multi-coil acquisition from an image, and reconstruct k-space.

``simulate_files`` writes into OUTDIR: ``corrupted.nii.gz`` (complex, coil-combined, the input's affine),
``corrupted_magnitude.nii.gz``, ``kspace.h5`` (ISMRMRD, with coil maps), ``motion.csv`` (the motion used, scanner
LPS about the isocentre) and ``simulation.png``. ``recon_file`` reconstructs a k-space file with CG-SENSE, with
known motion if a motion CSV is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrmotion.errors import MrMotionError, OutputFileError
from mrmotion.io.files import check_output
from mrmotion.io.ismrmrd_cartesian import RECON_FOV
from mrmotion.io.kspace_h5 import KSpaceData, read_kspace, write_kspace
from mrmotion.io.motion_csv import read_motion_csv, write_motion_csv
from mrmotion.io.nifti import read_image, write_image
from mrmotion.physics.coils import GridCoilMaps, estimate_coil_maps, head_array
from mrmotion.physics.combine import calibration_images, coil_images, combine
from mrmotion.physics.encoding import ImageGrid
from mrmotion.physics.motion_models import SEVERITIES, random_motion, severity
from mrmotion.physics.nufft import precision
from mrmotion.physics.sampling import cartesian
from mrmotion.physics.simulate import SimulatedScan, check_snr, in_plane, in_plane_like, right_handed, simulate
from mrmotion.physics.trajectory import MotionTrajectory
from mrmotion.recon.motion_estimation import EstimationProgress, estimate_motion
from mrmotion.recon.reconstruct import acquisition_grid, sense_reconstruction
from mrmotion.recon.sense import Progress
from mrmotion.report.scan_figure import plot_scan

Step = Callable[[str], None]
OUTPUTS = ("corrupted.nii.gz", "corrupted_magnitude.nii.gz", "kspace.h5", "motion.csv", "simulation.png")


@dataclass(frozen=True)
class SimulationSummary:
    """What ``simulate_files`` did: the scan, the combined corrupted image, its NRMSE and the motion's size."""

    scan: SimulatedScan
    corrupted: np.ndarray
    nrmse: float
    motion_size: dict
    files: list[Path]


def _motion(args: dict, grid: ImageGrid, duration_s: float) -> MotionTrajectory:
    if args.get("motion_csv") is not None and args.get("random") is not None:
        raise MrMotionError("give either a motion CSV or --random, not both")
    if args.get("motion_csv") is not None:
        return read_motion_csv(args["motion_csv"])
    if args.get("random") is not None:
        if args["random"] not in SEVERITIES:
            raise MrMotionError(f"--random must be one of {', '.join(SEVERITIES)}, got {args['random']!r}")
        centre = grid.positions(grid.centre_index)
        motion = random_motion(args["random"], 0.0, duration_s, seed=args.get("seed", 0), centre_mm=centre)
        return in_plane_like(motion, grid) if len(grid.shape) == 2 else motion
    return MotionTrajectory.constant(np.eye(4))


def simulate_files(
    image_path: Path,
    output_dir: Path,
    motion_csv: Path | None = None,
    random: str | None = None,
    seed: int = 0,
    order: str = "linear",
    shots: int = 1,
    coils: int = 8,
    snr_db: float | None = None,
    mode: str = "3d",
    coil_model: str = "exact",
    step: Step = lambda message: None,
    coil_clusters: int | None = None,
) -> SimulationSummary:
    """Simulate a scan of the image at ``image_path`` into ``output_dir`` (see the module docstring)."""
    if coils < 1:
        raise MrMotionError(f"--coils must be at least 1, got {coils}")
    if coil_clusters is not None and coil_clusters < 1:
        raise MrMotionError(f"--coil-clusters must be at least 1, got {coil_clusters}")
    check_snr(snr_db)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputFileError(f"{output_dir} exists and is not a folder")
    inputs = [image_path] + ([motion_csv] if motion_csv is not None else [])
    image = read_image(image_path)
    data, scanner_from_voxel, flipped = right_handed(np.asarray(image.data), image.scanner_from_voxel)
    if not np.any(data):  # zero k-space: no corrupted image, no error to report (the library simulates it anyway)
        raise MrMotionError(f"{image_path}: the image is all zeros: nothing to simulate")
    if data.ndim == 2 and mode == "3d":
        mode = "2d"
    if coil_clusters is not None and data.ndim == 3 and mode == "2d":
        raise MrMotionError(
            "--coil-clusters applies to 3-D and single-slice scans; a multi-slice scan (--mode 2d of a volume) "
            "evaluates the coils per slice plane instead"
        )
    grid = ImageGrid(data.shape, scanner_from_voxel)
    voxel = np.linalg.norm(scanner_from_voxel[:3, :3], axis=0)
    matrix = (*data.shape, 1) if data.ndim == 2 else data.shape
    sampling = cartesian(matrix, tuple(voxel), mode=mode, order=order, shots=shots, seed=seed)
    motion = _motion({"motion_csv": motion_csv, "random": random, "seed": seed}, grid, sampling.duration_s)
    array = head_array(grid, coils, two_d=data.ndim == 2)
    created = not output_dir.exists()  # the folder is made once the inputs are read, and removed if still empty
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        files = [check_output(output_dir / name, inputs) for name in OUTPUTS]
        step(f"simulating {len(sampling):,} samples × {coils} coils, {len(motion)} motion states ({coil_model} coils)")
        eps, dtype = precision(data.size)
        scan = simulate(
            data.astype(complex), grid, sampling, motion, array, snr_db, coil_model, seed, eps, dtype, coil_clusters
        )
    except BaseException:
        if created and not any(output_dir.iterdir()):
            output_dir.rmdir()
        raise
    step("coil-combining the corrupted image")
    corrupted = combine(coil_images(scan.data, sampling), scan.coil_maps)
    mask = np.abs(data) > 0.05 * np.abs(data).max()
    nrmse = float(np.linalg.norm((np.abs(corrupted) - np.abs(data))[mask]) / np.linalg.norm(np.abs(data)[mask]))
    step("writing the corrupted image, k-space, motion and figure")
    written = corrupted[:, :, ::-1] if flipped else corrupted
    write_image(files[0], written.astype(np.complex64), image.scanner_from_voxel, image.header, inputs)
    write_image(files[1], np.abs(written).astype(np.float32), image.scanner_from_voxel, image.header, inputs)
    extra = {
        "source_image": str(image_path),
        "coil_model": coil_model,
        "order": order,
        "shots": shots,
        "snr_db": snr_db,
        "seed": seed,
        "motion_states": len(motion),
        "coil_clusters": scan.coil_clusters,
        "coil_clusters_cap": coil_clusters,
        "coil_cluster_tol_mm": scan.coil_cluster_tol_mm,
        "coil_pose_rms_mm": scan.coil_pose_rms_mm,
    }
    frame = scan.scanner_from_logical
    maps = scan.coil_maps.reshape(scan.coil_maps.shape[0], *matrix)
    write_kspace(files[2], KSpaceData(scan.data, sampling, frame, maps, scan.noise_std, extra), inputs)
    used = scan.motion if data.ndim == 2 else motion
    if np.isinf(used.end_s):
        used = MotionTrajectory(used.times_s, used.transforms, max(sampling.duration_s, used.times_s[-1]))
    if len(used) == 1:
        used = MotionTrajectory(
            np.array([0.0, sampling.duration_s]), np.repeat(used.transforms, 2, 0), sampling.duration_s
        )
    write_motion_csv(files[3], used, inputs=inputs)
    plot_scan(data, corrupted, sampling, used, files[4], title=f"{image_path.name}: NRMSE {nrmse:.3f}")
    return SimulationSummary(scan, corrupted, nrmse, severity(used), files)


def recon_file(
    kspace_path: Path,
    output: Path,
    motion_csv: Path | None = None,
    iterations: int = 15,
    regularization: float = 1e-4,
    magnitude: bool = True,
    progress: Progress | None = None,
    coil_model: str = "exact",
    exact_iterations: int | None = None,
    crop: bool = True,
    estimated_motion_csv: Path | None = None,
    states: int | None = None,
    estimation_iterations: int = 24,
    estimation_progress: EstimationProgress | None = None,
) -> tuple[np.ndarray, ImageGrid]:
    """CG-SENSE reconstruction of an ISMRMRD k-space file, with known motion if ``motion_csv`` is given (the
    options as :func:`~mrmotion.recon.reconstruct.sense_reconstruction`), or with motion estimated from the data
    when ``estimated_motion_csv`` (where to write the estimate) is given
    (:func:`~mrmotion.recon.motion_estimation.estimate_motion`: ``states``, ``estimation_iterations``, and
    ``estimation_progress(iteration, of, residual)``; ``iterations`` are then the final reconstruction's)."""
    inputs = [kspace_path] + ([motion_csv] if motion_csv is not None else [])
    check_output(output, inputs)
    if not output.name.endswith((".nii", ".nii.gz")):
        raise MrMotionError(f"output {output}: expected a .nii or .nii.gz file name")
    if estimated_motion_csv is not None:
        if motion_csv is not None:
            raise MrMotionError("give either the motion (--motion) or ask for it to be estimated, not both")
        check_output(estimated_motion_csv, inputs)
        if estimated_motion_csv.suffix.lower() != ".csv":  # (so never the image, a .nii or .nii.gz)
            raise MrMotionError(f"estimated motion {estimated_motion_csv}: expected a .csv file name")
    kspace = read_kspace(kspace_path)
    motion = read_motion_csv(motion_csv) if motion_csv is not None else None
    grid = acquisition_grid(kspace.sampling, kspace.scanner_from_logical)
    if kspace.coil_maps is not None:
        maps = kspace.coil_maps.reshape(kspace.coil_maps.shape[0], *grid.shape)
    else:
        maps = estimate_coil_maps(calibration_images(kspace.data, kspace.sampling))
    if motion is not None and len(grid.shape) == 2:
        motion = in_plane(motion, grid)
    coils = GridCoilMaps(maps, grid.scanner_from_voxel, order=1)
    if estimated_motion_csv is not None:
        estimate = estimate_motion(
            kspace.data, kspace.sampling, kspace.scanner_from_logical, coils, states, estimation_iterations,
            regularization=regularization, final_iterations=iterations, progress=estimation_progress,
        )  # fmt: skip
        write_motion_csv(estimated_motion_csv, estimate.motion, inputs=inputs)
        result, grid = estimate.result, estimate.grid
    else:
        eps, dtype = precision(int(np.prod(grid.shape)))
        if progress is not None:  # the inputs are read and valid: the work starts (relative residual 1 at iteration 0)
            progress(0, 1.0)
        result, grid = sense_reconstruction(
            kspace.data, kspace.sampling, kspace.scanner_from_logical, coils, motion, iterations, regularization,
            coil_model=coil_model, eps=eps, dtype=dtype, progress=progress, exact_iterations=exact_iterations,
            crop=crop,
        )  # fmt: skip
    image, grid = _shown_field_of_view(result.image, grid, kspace.extra.get(RECON_FOV))
    written = np.abs(image).astype(np.float32) if magnitude else image.astype(np.complex64)
    write_image(output, written, grid.scanner_from_voxel, None, inputs)
    return image, grid


def _shown_field_of_view(image: np.ndarray, grid: ImageGrid, fov_mm: list[float] | None) -> tuple:
    """The image and grid cropped, centred, to the field of view (read, phase, slice; mm) the file says to show
    (an ISMRMRD reconSpace smaller than the encoded one, e.g. an oversampled readout); unchanged without one."""
    if fov_mm is None:
        return image, grid
    voxel = np.linalg.norm(grid.scanner_from_voxel[:3, :3], axis=0)[: image.ndim]
    box = []
    for size, step, wanted in zip(image.shape, voxel, fov_mm, strict=False):
        keep = min(size, max(1, int(round(wanted / step))))
        start = size // 2 - keep // 2
        box.append(slice(start, start + keep))
    return image[tuple(box)], grid.cropped(tuple(box))
