"""Head pose on held-out fetal atlases: ours (symmetry-averaged region network) vs rigid registration vs the plain
CNN, in one run.

Test volumes: each atlas in ``mrmotion.pose.train.HELD_OUT`` (never seen in training), at random poses (rotation
uniform over SO(3), brain anywhere in a field of view 1.8–3× its size), rendered from the atlas's own T2 image (not
the random label contrasts of training) at 3 mm, with a skull/scalp shell, uterus, fluid, fetal body and maternal
tissue around it, thick slices (3 mm in plane, 3–4.5 mm slices), bias field, gamma, spin-history bands and noise.

Methods, on the same volumes:
* ours: localiser + region network averaged over the identity and the 3 half-turns of the grid about its axes (exactly
  equivariant to them; the 12 tetrahedral rotations up to session 15) + one Kabsch fit of the brain's principal axes
  and the region centroids, refined against the region template of the training atlas of nearest brain size
  (``mrmotion.pose.template``; shipped weights);
* ours, closed form only: the same without the template refinement (the ablation);
* plain CNN: the same networks run once, without the symmetry average (the non-equivariant comparison: same size,
  same training, same template refinement);
* registration: SimpleITK rigid registration (Mattes mutual information) of the nearest-age training atlas's T2
  image to the volume: the metric screened at 600 rotations, the best 4 optimised (two levels), each with the
  template's brain centre on the localiser's brain centre (the same localiser as ours: centres of mass of the whole
  cluttered field of view put the start 15–60 mm off). It is slow, so it runs on the first ``--registration``
  volumes of each atlas; its time does not include the localiser's (which is part of ours).

Prints per method: median and 95th-percentile geodesic rotation error (deg), failures (> 30°), median translation
error (mm), seconds per volume; and the equivariance check pose(R·x) vs R·pose(x) (deg), for R applied to the
volume's affine, for the head turned inside the same scan (:func:`equivariance_deg`), the latter also on clean
scouts (no clutter or degradations: what the estimator and the grid alone contribute), and for the volume's voxels
turned (resampled, as software that reorients a volume does; zero outside the turned field of view). Writes
``benchmarks/results/pose.{txt,json,png}``.

    python benchmarks/pose.py               # 200 poses per held-out atlas (about an hour)
    python benchmarks/pose.py --quick       # 10 poses per atlas
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ATLASES = ROOT.parent / "shared" / "data" / "fetal_atlas_spina_bifida"
RESULTS = ROOT / "benchmarks" / "results"
FAILURE_DEG = 30.0
VOXEL_MM = 3.0
OURS = "ours (regions, 4-rotation average, template-refined)"
CLOSED_FORM = "ours, closed-form rotation only (no template refinement)"
REGISTRATION = "registration (SimpleITK, 600 rotations screened)"
SCREEN_MM = 4.0  # the registration's rotation screen: resolution (mm) and cube side (voxels)
SCREEN_SIZE = 32


def geodesic_deg(a: np.ndarray, b: np.ndarray) -> float:
    cosine = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))


def test_volume(t2, rng: np.random.Generator, fov_factor: tuple[float, float] = (1.8, 3.0), **scout):
    """One degraded 3 mm scout at a random pose, its field of view ``fov_factor`` × the brain's size; returns (data,
    scanner_from_voxel, true scanner_from_head). ``scout``: other options of ``synth.scout_volume`` (``voxel_mm``,
    ``clutter``)."""
    from mrmotion.pose import synth

    pose = np.eye(4)
    pose[:3, :3] = synth.random_rotation(rng)
    pose[:3, 3] = rng.uniform(-30, 30, 3)
    data, grid = synth.scout_volume(t2, pose, rng, fov_factor=fov_factor, **{"voxel_mm": VOXEL_MM, **scout})
    return data, grid, pose


def scouts_of(folders: list[Path], per_atlas: int, rng: np.random.Generator, fov_factor=(1.8, 3.0)) -> list:
    """``per_atlas`` scouts (:func:`test_volume`) of each atlas folder in turn, from the atlases' own T2 images."""
    from mrmotion.pose import synth

    scouts = []
    for folder in folders:
        _, t2 = synth.fetal_t2_subject(folder)
        scouts += [test_volume(t2, rng, fov_factor) for _ in range(per_atlas)]
    return scouts


def run_scouts(scouts: list, model) -> dict[str, list]:
    """Our pose of every scout: ``errors`` (rotation, deg; 180 when no brain is found), ``shifts`` (brain centre,
    mm; inf when none), ``seconds``, ``poses`` (NaN when none) and ``estimates`` (None when none)."""
    from mrmotion.pose.estimate import estimate_pose

    run: dict[str, list] = {"errors": [], "shifts": [], "seconds": [], "poses": [], "estimates": []}
    for data, grid, truth in scouts:
        began = time.perf_counter()
        try:
            estimate = estimate_pose(data, grid, model)
        except Exception:  # no brain found: a failure
            estimate = None
        run["seconds"].append(time.perf_counter() - began)
        pose = estimate.scanner_from_head if estimate is not None else np.full((4, 4), np.nan)
        run["estimates"].append(estimate)
        run["poses"].append(pose)
        run["errors"].append(geodesic_deg(pose, truth) if estimate is not None else 180.0)
        run["shifts"].append(float(np.linalg.norm(pose[:3, 3] - truth[:3, 3])) if estimate is not None else np.inf)
    return run


def confident_failures(run: dict[str, list]) -> float:
    """Share of a :func:`run_scouts`'s volumes whose pose is a failure (> 30°) with a confidence the scanner would
    act on (≥ ``estimate.LOW_CONFIDENCE``)."""
    from mrmotion.pose.estimate import LOW_CONFIDENCE

    return float(
        np.mean(
            [
                e is not None and e.confidence >= LOW_CONFIDENCE and error > FAILURE_DEG
                for e, error in zip(run["estimates"], run["errors"], strict=True)
            ]
        )
    )


#: column heads of :func:`scout_summary`
SCOUT_COLUMNS = f"{'median °':>9} {'p95 °':>7} {'failures':>9} {'centre mm':>9} {'s / volume':>11}"


def scout_summary(run: dict[str, list]) -> str:
    """Median and 95th-percentile rotation error, failures, median centre error and mean seconds of a
    :func:`run_scouts`, as the columns of the scout benchmarks' tables."""
    errors = np.array(run["errors"])
    return (
        f"{np.median(errors):9.2f} {np.percentile(errors, 95):7.1f} {100 * np.mean(errors > FAILURE_DEG):8.1f}% "
        f"{np.median(run['shifts']):9.2f} {np.mean(run['seconds']):11.3f}"
    )


class Registration:
    """SimpleITK rigid registration of a template (canonical atlas T2) to a volume, searched over rotations.

    Multi-start as users do it, made wide enough to reach any pose: normalised cross-correlation is screened at
    ``screen`` rotations (a fixed random set, about 20° apart; the optimiser's capture range is 20–40°, measured on
    the branch pose-moment-head) with the template's brain centre on the given centre, and the best ``refine`` are
    optimised by SimpleITK (Mattes mutual information, rotation and translation, two levels, fixed parameter scales:
    its physical-shift scales left the rotation stuck); the refined pose with the best correlation wins.
    """

    def __init__(self, template_folder: Path, screen: int = 600, refine: int = 4):
        import nibabel as nib
        import SimpleITK as sitk
        from scipy import ndimage
        from scipy.spatial.transform import Rotation

        from mrmotion.geometry.prescription import LPS_FROM_RAS
        from mrmotion.pose import synth
        from mrmotion.pose.frames import brain_size_mm, canonical_head_pose

        self.sitk = sitk
        sitk.ProcessObject.SetGlobalWarningDisplay(False)
        image = nib.load(template_folder / "srr.nii.gz")
        data = synth._block_mean(np.asanyarray(image.dataobj).astype(np.float32), 2)
        affine = synth._downsampled_affine(LPS_FROM_RAS @ image.affine, 2)
        self.template = self._to_sitk(data, affine)
        mask = nib.load(template_folder / "mask.nii.gz")
        brain = np.asanyarray(mask.dataobj) > 0
        self.template_pose = canonical_head_pose(brain, LPS_FROM_RAS @ mask.affine)
        self.brain_size = brain_size_mm(brain, LPS_FROM_RAS @ mask.affine)
        self.screen_data = ndimage.gaussian_filter(data, SCREEN_MM / 2.355 / np.linalg.norm(affine[:3, 0]))
        self.screen_voxel_from_scanner = np.linalg.inv(affine)
        self.starts = Rotation.random(screen, random_state=0).as_matrix()
        self.refine = refine

    def _to_sitk(self, data: np.ndarray, affine: np.ndarray):
        sitk = self.sitk
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))).astype(np.float32))
        image.SetSpacing([float(s) for s in spacing])
        image.SetOrigin([float(v) for v in affine[:3, 3]])
        image.SetDirection([float(v) for v in (affine[:3, :3] / spacing).ravel()])
        return image

    def _method(self, shrink: list[int], smooth: list[float], iterations: int, sampling: float):
        sitk = self.sitk
        method = sitk.ImageRegistrationMethod()
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(sampling, seed=1)
        method.SetInterpolator(sitk.sitkLinear)
        method.SetOptimizerAsRegularStepGradientDescent(learningRate=0.3, minStep=1e-4, numberOfIterations=iterations)
        method.SetOptimizerScales([1.0, 1.0, 1.0, 1e-3, 1e-3, 1e-3])  # radians vs mm
        method.SetShrinkFactorsPerLevel(shrink)
        method.SetSmoothingSigmasPerLevel(smooth)
        method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
        return method

    def _correlation(self, data: np.ndarray, scanner_from_voxel: np.ndarray, centre: np.ndarray):
        """A function of ``template_from_scanner`` matrices (k, 4, 4): minus the normalised cross-correlation
        between the volume and the template mapped by each, inside a brain-sized sphere around ``centre``, both at
        SCREEN_MM (one trilinear lookup of the template per matrix)."""
        from scipy import ndimage

        from mrmotion.pose.estimate import resample_to_cube
        from mrmotion.pose.synth import grid_points

        size = SCREEN_SIZE
        cube, grid = resample_to_cube(data, scanner_from_voxel, centre, self.brain_size / 0.6, size)
        points = grid_points(grid, (size,) * 3)
        inside = np.linalg.norm(points - centre[:, None], axis=0) < 0.6 * self.brain_size
        fixed = cube.ravel()[inside]
        fixed = (fixed - fixed.mean()) / (fixed.std() + 1e-9)
        points = np.vstack([points[:, inside], np.ones((1, int(inside.sum())))])

        def value(template_from_scanner: np.ndarray) -> np.ndarray:
            out = np.empty(len(template_from_scanner))
            for index, matrix in enumerate(template_from_scanner):
                voxel = (self.screen_voxel_from_scanner @ matrix @ points)[:3]
                moving = ndimage.map_coordinates(self.screen_data, voxel, order=1)
                out[index] = -np.mean(fixed * (moving - moving.mean()) / (moving.std() + 1e-9))
            return out

        return value

    def _transform(self, rotation: np.ndarray, centre: np.ndarray, offset: np.ndarray):
        transform = self.sitk.Euler3DTransform()
        transform.SetCenter([float(v) for v in centre])
        transform.SetMatrix([float(v) for v in rotation.ravel()])
        transform.SetTranslation([float(v) for v in offset])
        return transform

    def __call__(self, data: np.ndarray, scanner_from_voxel: np.ndarray, brain_mm: np.ndarray) -> np.ndarray:
        fixed = self._to_sitk(data, scanner_from_voxel)
        centre = np.asarray(brain_mm, dtype=np.float64)  # start: the template's brain centre on the given one
        offset = self.template_pose[:3, 3] - centre
        correlation = self._correlation(data, scanner_from_voxel, centre)
        starts = np.tile(np.eye(4), (len(self.starts), 1, 1))  # template = R (scanner − centre) + template centre
        starts[:, :3, :3] = self.starts
        starts[:, :3, 3] = self.template_pose[:3, 3] - self.starts @ centre
        refined = []
        for index in np.argsort(correlation(starts))[: self.refine]:
            candidate = self._transform(self.starts[index], centre, offset)
            method = self._method([4, 2], [4.0, 2.0], 200, 0.5)
            method.SetInitialTransform(candidate, inPlace=True)
            try:
                method.Execute(fixed, self.template)
            except RuntimeError:
                continue
            # SimpleITK maps fixed (volume) points to moving (template) points: template_from_scanner
            matrix = np.eye(4)
            matrix[:3, :3] = np.array(candidate.GetMatrix()).reshape(3, 3)
            origin = np.array(candidate.GetCenter())
            matrix[:3, 3] = np.array(candidate.GetTranslation()) + origin - matrix[:3, :3] @ origin
            refined.append(matrix)
        if not refined:
            return np.full((4, 4), np.nan)
        # the refined candidates are compared by the screen's correlation: mutual information at the optimiser's
        # sampling ranked wrong poses first on these cluttered volumes
        best = refined[int(np.argmin(correlation(np.array(refined))))]
        return np.linalg.inv(best) @ self.template_pose


def equivariance_deg(check: str, t2, model, rng: np.random.Generator, **scout) -> float:
    """pose(R·x) against R·pose(x) (degrees) for a random rotation R, on a fresh random scout.

    ``check`` "affine": the same voxels with R applied to the volume's affine. "head": the head turned by R about
    its brain centre inside the same scan, re-rendered with the same random field of view, contrast, clutter,
    degradations and noise (one seed for both renders), so the network sees the brain at a new angle. "resampled":
    the volume's voxels turned by R about the brain centre on the same grid (trilinear, zero outside the turned field
    of view, as resampling software writes it): the scan's degradations turn with the head. ``scout``: other options
    of ``synth.scout_volume`` (``fov_factor``, ``clutter``, ``degraded``)."""
    from mrmotion.pose import synth
    from mrmotion.pose.estimate import estimate_pose

    pose = np.eye(4)
    pose[:3, :3] = synth.random_rotation(rng)
    pose[:3, 3] = rng.uniform(-30, 30, 3)
    rotation = synth.random_rotation(rng)
    seed = int(rng.integers(2**32))
    data, grid = synth.scout_volume(t2, pose, np.random.default_rng(seed), VOXEL_MM, **scout)
    plain = estimate_pose(data, grid, model).scanner_from_head
    if check == "affine":
        motion = np.eye(4)
        motion[:3, :3] = rotation
        moved = estimate_pose(data, motion @ grid, model).scanner_from_head
    else:
        motion = np.eye(4)  # about the brain centre: the field of view stays where it was
        motion[:3, :3] = rotation
        motion[:3, 3] = pose[:3, 3] - rotation @ pose[:3, 3]
        if check == "head":  # clutter and noise stay where they were
            moved_data, moved_grid = synth.scout_volume(
                t2, motion @ pose, np.random.default_rng(seed), VOXEL_MM, **scout
            )
        else:
            moved_data, moved_grid = synth.moved_voxels(data, grid, motion), grid
        moved = estimate_pose(moved_data, moved_grid, model).scanner_from_head
    return geodesic_deg(moved, motion @ plain)


def atlas_folders(held_out: bool) -> list[Path]:
    """The fetal atlas folders held out of training (``mrmotion.pose.train.HELD_OUT``), or the training ones; exits
    with a message when ../shared/data is not there."""
    from mrmotion.pose.synth import fetal_atlas_folders
    from mrmotion.pose.train import HELD_OUT

    if not ATLASES.is_dir():
        sys.exit(f"fetal atlases not found at {ATLASES}")
    return [f for f in fetal_atlas_folders(ATLASES) if (f.name in HELD_OUT) == held_out]


def nearest_training_atlas(name: str) -> Path:
    def age(folder_name: str) -> int:
        return int(folder_name.split("_GA")[1][:2])

    return min(atlas_folders(held_out=False), key=lambda f: (abs(age(f.name) - age(name)), f.name))


def summarise(errors: list[tuple[float, float]], seconds: list[float]) -> dict:
    rotation = np.array([e[0] for e in errors])
    translation = np.array([e[1] for e in errors])
    return {
        "count": len(errors),
        "rotation_median_deg": float(np.median(rotation)),
        "rotation_p95_deg": float(np.percentile(rotation, 95)),
        "failures": float(np.mean(rotation > FAILURE_DEG)),
        "translation_median_mm": float(np.median(translation)),
        "translation_p95_mm": float(np.percentile(translation, 95)),
        "seconds_per_volume": float(np.median(seconds)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--poses", type=int, default=200, help="random poses per held-out atlas")
    parser.add_argument("--registration", type=int, default=20, help="volumes per atlas for the registration baseline")
    parser.add_argument("--equivariance", type=int, default=20, help="volumes per atlas for the equivariance check")
    parser.add_argument("--quick", action="store_true", help="10 poses, 3 registrations, 5 equivariance per atlas")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--tag", default="", help="suffix for the result files")
    parser.add_argument(
        "--passes", type=int, default=1, help="region cubes our estimator averages (mrmotion pose --passes; 1-5)"
    )
    args = parser.parse_args()
    if args.quick:
        args.poses, args.registration, args.equivariance = 10, 3, 5
    if not ATLASES.is_dir():
        sys.exit(f"fetal atlases not found at {ATLASES}")

    import torch
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from mrmotion.pose import synth
    from mrmotion.pose.estimate import LOW_CONFIDENCE, PoseModel, estimate_pose
    from mrmotion.pose.train import HELD_OUT

    torch.set_num_threads(2)
    console = Console(record=True, width=150)
    shipped = PoseModel.load(arch="equivariant")
    models = {
        OURS: replace(shipped, passes=args.passes),
        CLOSED_FORM: replace(shipped, templates=None),
        "plain CNN (same network, no symmetry average)": PoseModel.load(arch="cnn"),
    }
    records: dict[str, dict[str, list]] = {name: {"errors": [], "seconds": []} for name in [*models, REGISTRATION]}
    per_atlas: dict[str, dict] = {}
    equivariance: dict[str, list[float]] = {"affine": [], "head": [], "head, clean": [], "resampled": []}
    localiser_errors: dict[str, list[float]] = {}
    confidences: dict[str, list[tuple[float, float]]] = {}  # (confidence, rotation error) per volume
    rng = np.random.default_rng(args.seed)
    subjects = {}  # held-out atlas → (labels, T2 subject), read once
    started = time.time()
    with Progress(console=console) as bar:
        for name in HELD_OUT:
            _, t2 = subjects[name] = synth.fetal_t2_subject(ATLASES / name)
            registration = Registration(nearest_training_atlas(name))
            task = bar.add_task(name, total=args.poses)
            per_atlas[name] = {key: {"errors": [], "seconds": []} for key in records}
            for index in range(args.poses):
                data, grid, truth = test_volume(t2, rng)
                runs = list(models.items())
                brain_mm = None  # the localiser's brain centre (from the first model), where registration starts
                if index < args.registration:
                    runs.append((REGISTRATION, registration))
                for method, model in runs:
                    tick = time.perf_counter()
                    try:
                        if method.startswith("registration"):
                            pose = model(data, grid, brain_mm)
                        else:
                            estimate = estimate_pose(data, grid, model)
                            pose = estimate.scanner_from_head
                            if brain_mm is None:
                                brain_mm = np.array(estimate.details["centre_localiser_mm"])
                            localiser_errors.setdefault(method, []).append(
                                float(np.linalg.norm(np.array(estimate.details["centre_localiser_mm"]) - truth[:3, 3]))
                            )
                    except Exception as error:  # a failure to find the brain counts as a failure
                        console.log(f"{method} on {name} #{index}: {error}")
                        pose = np.full((4, 4), np.nan)
                    seconds = time.perf_counter() - tick
                    if np.all(np.isfinite(pose)):
                        error = (geodesic_deg(pose, truth), float(np.linalg.norm(pose[:3, 3] - truth[:3, 3])))
                    else:
                        error = (180.0, float("inf"))
                    for target in (records[method], per_atlas[name][method]):
                        target["errors"].append(error)
                        target["seconds"].append(seconds)
                    if not method.startswith("registration"):
                        confidence = estimate.confidence if np.all(np.isfinite(pose)) else 0.0
                        confidences.setdefault(method, []).append((confidence, error[0]))
                if index < args.equivariance:
                    for check in ("affine", "head"):
                        equivariance[check].append(equivariance_deg(check, t2, models[OURS], rng))
                bar.advance(task)
    # the same re-rendered check on clean scouts (no clutter, thick slices, bias, bands or noise): what is left comes
    # from the estimator and the grid, not the scan's degradations (its own random stream: the main one is unchanged)
    clean_rng = np.random.default_rng(args.seed + 1)
    for _, t2 in subjects.values():
        for _ in range(args.equivariance):
            equivariance["head, clean"].append(
                equivariance_deg("head", t2, models[OURS], clean_rng, clutter=False, degraded=False)
            )
    # the voxels themselves turned (resampled, zero outside the turned field of view), also on a stream of its own
    resampled_rng = np.random.default_rng(args.seed + 2)
    for _, t2 in subjects.values():
        for _ in range(args.equivariance):
            equivariance["resampled"].append(equivariance_deg("resampled", t2, models[OURS], resampled_rng))
    summary = {method: summarise(r["errors"], r["seconds"]) for method, r in records.items() if r["errors"]}
    atlas_summary = {
        atlas: {method: summarise(r["errors"], r["seconds"]) for method, r in methods.items() if r["errors"]}
        for atlas, methods in per_atlas.items()
    }
    table = Table(
        title=f"Head pose on held-out fetal atlases ({', '.join(HELD_OUT)}), {VOXEL_MM:g} mm volumes with clutter "
        "and degradations; rotation uniform over SO(3)"
    )
    for column in (
        "method",
        "volumes",
        "rotation median (°)",
        "rotation p95 (°)",
        f"failures (> {FAILURE_DEG:g}°)",
        "translation median (mm)",
        "s / volume",
    ):
        table.add_column(column, justify="left" if column == "method" else "right")
    for method, s in summary.items():
        table.add_row(
            method,
            str(s["count"]),
            f"{s['rotation_median_deg']:.1f}",
            f"{s['rotation_p95_deg']:.1f}",
            f"{100 * s['failures']:.1f}%",
            f"{s['translation_median_mm']:.1f}",
            f"{s['seconds_per_volume']:.2f}",
        )
    console.print(table)
    per = Table(title="per held-out atlas: rotation median / p95 (°), failures")
    per.add_column("atlas")
    for method in summary:
        per.add_column(method, justify="right")
    for atlas, methods in atlas_summary.items():
        per.add_row(
            atlas,
            *[
                f"{m['rotation_median_deg']:.1f} / {m['rotation_p95_deg']:.1f}, {100 * m['failures']:.0f}%"
                if (m := methods.get(k))
                else "—"
                for k in summary
            ],
        )
    console.print(per)
    ours = summary[OURS]
    reg = summary.get(REGISTRATION)
    lines = [
        f"equivariance pose(R·x) vs R·pose(x), {name} (target ≤ 2°): median {np.median(values):.2f}°, "
        f"p95 {np.percentile(values, 95):.2f}° over {len(values)} volumes"
        for name, values in (
            ("the volume's affine rotated (the same voxels)", equivariance["affine"]),
            (
                "the head turned about its centre in the same scan (re-rendered, same clutter and noise)",
                equivariance["head"],
            ),
            (
                "the same on clean scouts (no clutter, thick slices, bias, bands or noise)",
                equivariance["head, clean"],
            ),
            (
                "the volume's voxels turned about the brain centre (trilinear, zero outside the turned field of view)",
                equivariance["resampled"],
            ),
        )
    ] + [
        f"ours: the rotations of {args.passes} region cube(s) averaged per confident pose (--passes)",
        f"targets: median ≤ 5°: {ours['rotation_median_deg']:.1f}°; p95 ≤ 15°: {ours['rotation_p95_deg']:.1f}°; "
        f"failures ≤ 2%: {100 * ours['failures']:.1f}%; "
        f"translation median ≤ 2 mm: {ours['translation_median_mm']:.1f} mm; "
        f"≤ 1 s per volume: {ours['seconds_per_volume']:.2f} s",
    ]
    if reg:
        lines.append(
            f"vs registration: median {ours['rotation_median_deg']:.1f}° vs {reg['rotation_median_deg']:.1f}°, "
            f"failures "
            f"{100 * ours['failures']:.1f}% vs {100 * reg['failures']:.1f}%, speed-up "
            f"{reg['seconds_per_volume'] / ours['seconds_per_volume']:.1f}× (target ≥ 10×)"
        )
    for method, values in localiser_errors.items():
        lines.append(f"{method}: brain centre from the localiser alone: median error {np.median(values):.1f} mm")
    for method, pairs in confidences.items():
        confidence, error = np.array(pairs).T
        failed, trusted = error > FAILURE_DEG, confidence >= LOW_CONFIDENCE
        lines.append(
            f"{method}: confidence ≥ {LOW_CONFIDENCE:g} on {100 * trusted.mean():.0f}% of volumes, of which "
            f"{100 * failed[trusted].mean():.1f}% are failures; {int((failed & ~trusted).sum())} of "
            f"{int(failed.sum())} failures have confidence < {LOW_CONFIDENCE:g}"
        )
    for line in lines:
        console.print(line)
    header = (
        f"# {time.strftime('%Y-%m-%d %H:%M')} · {platform.node()} · Python {platform.python_version()} · "
        f"torch {torch.__version__} · {time.time() - started:.0f} s · command: python benchmarks/pose.py "
        f"{' '.join(sys.argv[1:])}\n"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "pose" + (f"_{args.tag}" if args.tag else "") + ("_quick" if args.quick else "")
    (RESULTS / f"{stem}.txt").write_text(header + console.export_text())
    (RESULTS / f"{stem}.json").write_text(
        json.dumps(
            {
                "summary": summary,
                "per_atlas": atlas_summary,
                "equivariance_deg": equivariance,
                "confidence_and_error": confidences,
                "run": {"passes": args.passes},
            },
            indent=1,
        )
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for method, r in records.items():
        if r["errors"]:
            values = np.sort([e[0] for e in r["errors"]])
            axis.plot(values, np.arange(1, values.size + 1) / values.size, label=f"{method} (n={values.size})")
    axis.axvline(FAILURE_DEG, color="grey", linestyle=":")
    axis.set_xscale("log")
    axis.set_xlabel("rotation error (degrees)")
    axis.set_ylabel("share of volumes")
    axis.set_title("Head pose on held-out fetal atlases (3 mm)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(RESULTS / f"{stem}.png", dpi=120)
    from mrmotion.pose.card import write_card
    from mrmotion.pose.estimate import weights_folder

    if args.quick:  # the card holds the full runs only
        console.print(f"wrote {RESULTS / stem}.txt/.json/.png")
        return
    # from the untagged run, with the --passes runs beside it (a tagged run only adds or updates its row)
    write_card(weights_folder(), RESULTS / "pose.json")
    console.print(f"wrote {RESULTS / stem}.txt/.json/.png and the card {weights_folder() / 'pose_card.md'}")


if __name__ == "__main__":
    main()
