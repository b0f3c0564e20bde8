"""Head pose on simulated fetal EPI scouts: whole-uterus fields of view on 3 × 3 × 4.5 mm voxels, EPI artefacts and
the fetus moving between interleaved slices.

Issue 4 asks the pose to work on real full-field fetal EPI scouts (whole uterus, about 3 × 3 × 4.5 mm voxels). We have
no real one; ``benchmarks/pose_full_field.py`` tests whole-uterus fields of view on isotropic 3 mm grids with a still
head. A real scout is a stack of 2-D single-shot EPI slices, and this benchmark adds what that brings, one thing at a
time, on the same scouts (same poses, fields of view, contrasts and clutter):

1. **anisotropic voxels**: 3 × 3 mm in plane, 4.5 mm slices (each slice the mean of three planes 1.5 mm apart, a
   boxcar slice profile), slices along one of the scanner's axes (axial, coronal or sagittal stacks);
2. **EPI artefacts**: a Nyquist (N/2) ghost along the phase-encode axis (3–12% of the image, per slice) and geometric
   distortion along it (a smooth B0 displacement of up to 2–3 voxels);
3. **motion between slices**: slices acquired interleaved (even, then odd), the head turning about its brain centre
   during the stack: a slow drift plus one sudden jump, together up to ``--motion-deg`` (with 0.3 mm of translation per
   degree). The truth is then the mean pose over the slices (rotation: the chordal L2 mean); the spread of the slice
   poses about it is printed.

The bias field, gamma, spin-history bands and Rician noise of ``mrmotion.pose.synth.degrade`` come last, as in the
other pose benchmarks. Held-out atlases only (``mrmotion.pose.train.HELD_OUT``). Prints per setting: median and
95th-percentile rotation error, failures (> 30°), median brain-centre error, seconds per volume; writes
``benchmarks/results/pose_epi_scouts.txt`` and a figure of the first scout of each atlas in the last setting
(``pose_epi_scouts.png``).

    python benchmarks/pose_epi_scouts.py                  # 40 scouts per held-out atlas
    python benchmarks/pose_epi_scouts.py --per-atlas 5    # a quick look
    python benchmarks/pose_epi_scouts.py --figure-only    # the figure alone (3 scouts)
    python benchmarks/pose_epi_scouts.py --atlases train --per-atlas 10 --motion-deg --components 0 3
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pose as pose_benchmark  # noqa: E402  (the geodesic, the atlas folder and the scout runner)

IN_PLANE_MM = 3.0
SLICE_MM = 4.5
#: planes averaged per slice (the slice profile), spread over its thickness
PROFILE_PLANES = 3
FOV_FACTOR = (4.0, 6.0)
GHOST = (0.03, 0.12)
DISTORTION_VOXELS = (2.0, 3.0)
#: translation of the head per degree of its rotation during the stack (mm)
MM_PER_DEGREE = 0.3


@dataclass(frozen=True)
class ScoutDraw:
    """Everything random about one scout, drawn once so that every setting renders the same scout."""

    pose: np.ndarray  # scanner_from_head at the start of the stack
    scanner_from_voxel: np.ndarray
    shape: tuple[int, int, int]
    intensities: np.ndarray
    clutter_seed: int
    degrade_seed: int
    drift_axis: np.ndarray
    jump_axis: np.ndarray
    jump_time: float
    drift_share: float
    shift_direction: np.ndarray
    ghost: float
    distortion_voxels: float
    distortion_seed: int


def draw_scout(t2, rng: np.random.Generator) -> ScoutDraw:
    from mrmotion.pose import synth

    pose = np.eye(4)
    pose[:3, :3] = synth.random_rotation(rng)
    pose[:3, 3] = rng.uniform(-30, 30, 3)
    side = t2.brain_size * rng.uniform(*FOV_FACTOR)
    in_plane, slices = int(round(side / IN_PLANE_MM)), int(round(side / SLICE_MM))
    shape = (in_plane, in_plane, slices)
    axes = np.eye(3)[:, np.roll(np.arange(3), int(rng.integers(3)))]  # sagittal, coronal or axial stack
    room = max(side / 2 - 0.6 * t2.brain_size, 0.0)
    affine = np.eye(4)
    affine[:3, :3] = axes * np.array([IN_PLANE_MM, IN_PLANE_MM, SLICE_MM])
    affine[:3, 3] = pose[:3, 3] + rng.uniform(-room, room, 3) - affine[:3, :3] @ ((np.array(shape) - 1) / 2)

    def unit() -> np.ndarray:
        vector = rng.normal(size=3)
        return vector / np.linalg.norm(vector)

    return ScoutDraw(
        pose=pose,
        scanner_from_voxel=affine,
        shape=shape,
        intensities=synth.t2_intensities(t2, rng),
        clutter_seed=int(rng.integers(2**32)),
        degrade_seed=int(rng.integers(2**32)),
        drift_axis=unit(),
        jump_axis=unit(),
        jump_time=float(rng.uniform(0.2, 0.8)),
        drift_share=float(rng.uniform(0.3, 0.7)),
        shift_direction=unit(),
        ghost=float(rng.uniform(*GHOST)),
        distortion_voxels=float(rng.uniform(*DISTORTION_VOXELS)),
        distortion_seed=int(rng.integers(2**32)),
    )


def slice_poses(draw: ScoutDraw, motion_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(slices, 4, 4) head pose of each slice (interleaved acquisition: even slices, then odd) and the truth: the
    mean pose over the slices. The head turns about its brain centre: a drift over the whole stack plus one jump,
    together ``motion_deg`` at the end."""
    from scipy.spatial.transform import Rotation

    count = draw.shape[2]
    order = np.concatenate([np.arange(0, count, 2), np.arange(1, count, 2)])
    times = np.empty(count)
    times[order] = np.arange(count) / max(count - 1, 1)
    angle = np.radians(motion_deg)
    drift = draw.drift_share * angle * times[:, None] * draw.drift_axis
    jump = (1 - draw.drift_share) * angle * (times[:, None] >= draw.jump_time) * draw.jump_axis
    turns = Rotation.from_rotvec(drift) * Rotation.from_rotvec(jump)
    centre = draw.pose[:3, 3]
    motions = np.tile(np.eye(4), (count, 1, 1))
    motions[:, :3, :3] = turns.as_matrix()
    shift = MM_PER_DEGREE * motion_deg * times[:, None] * draw.shift_direction
    motions[:, :3, 3] = centre - motions[:, :3, :3] @ centre + shift
    poses = motions @ draw.pose
    truth = np.eye(4)
    truth[:3, :3] = Rotation.from_matrix(poses[:, :3, :3]).mean().as_matrix()
    truth[:3, 3] = poses[:, :3, 3].mean(axis=0)
    return poses, truth


def render_scout(t2, draw: ScoutDraw, motion_deg: float, epi: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """The scout's voxels, the truth (mean head pose) and the spread of the slice poses about it (largest, deg)."""
    from scipy import ndimage

    from mrmotion.pose import synth

    poses, truth = slice_poses(draw, motion_deg)
    in_plane, _, count = draw.shape
    image = np.zeros(draw.shape, np.float32)
    head = np.zeros(draw.shape, np.float32)
    offsets = (np.arange(PROFILE_PLANES) + 0.5) / PROFILE_PLANES - 0.5  # in slices
    for index in range(count):
        for offset in offsets:
            plane = draw.scanner_from_voxel.copy()
            plane[:3, 3] += plane[:3, 2] * (index + offset)
            part, _, fraction = synth.render(
                t2, poses[index], plane, (in_plane, in_plane, 1), draw.intensities, IN_PLANE_MM
            )
            image[:, :, index] += part[:, :, 0] / PROFILE_PLANES
            head[:, :, index] += fraction[:, :, 0] / PROFILE_PLANES
    image = synth.add_clutter(
        image, head, draw.scanner_from_voxel, draw.pose[:3, 3], t2.brain_size, np.random.default_rng(draw.clutter_seed)
    )
    if epi:  # phase encoding along the second voxel axis
        rng = np.random.default_rng(draw.distortion_seed)
        coarse = rng.normal(size=(4, 4, 4))
        field = ndimage.zoom(coarse, [s / 4 for s in draw.shape], order=3)[
            : draw.shape[0], : draw.shape[1], : draw.shape[2]
        ]
        field *= draw.distortion_voxels / np.abs(field).max()
        index = np.indices(draw.shape, dtype=np.float64)
        index[1] += field
        image = ndimage.map_coordinates(image, index, order=1, cval=0.0).astype(np.float32)
        image = image + draw.ghost * np.roll(image, in_plane // 2, axis=1)
    image = synth.degrade(
        image, IN_PLANE_MM, np.random.default_rng(draw.degrade_seed), False, in_plane_mm=1e-3, thickness_mm=1e-3
    )
    spread = max(pose_benchmark.geodesic_deg(p, truth) for p in poses)
    return (image * 1000).astype(np.float32), truth, spread


def figure(examples: list[tuple], title: str, path: Path) -> None:
    """One row per example scout (name, voxels, scanner_from_voxel, truth, estimate or None): the slice through the
    true brain centre and the reformat across slices through it, with the true (green +) and estimated (red ×)
    brain centres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(examples), 2, figsize=(9, 4.2 * len(examples)), squeeze=False)
    for row, (name, data, affine, truth, estimate) in enumerate(examples):
        to_voxel = np.linalg.inv(affine)
        centre = to_voxel[:3, :3] @ truth[:3, 3] + to_voxel[:3, 3]
        found = None if estimate is None else to_voxel[:3, :3] @ estimate.scanner_from_head[:3, 3] + to_voxel[:3, 3]
        k = int(np.clip(round(centre[2]), 0, data.shape[2] - 1))
        j = int(np.clip(round(centre[1]), 0, data.shape[1] - 1))
        views = (
            (data[:, :, k], (0, 1), 1.0, f"slice {k}"),
            (data[:, j, :], (0, 2), SLICE_MM / IN_PLANE_MM, "across slices"),
        )
        for column, (image, (a, b), aspect, label) in enumerate(views):
            ax = axes[row, column]
            ax.imshow(image.T, cmap="gray", origin="lower", aspect=aspect)
            ax.plot(centre[a], centre[b], "+", color="lime", markersize=14, mew=2)
            if found is not None:
                ax.plot(found[a], found[b], "x", color="red", markersize=12, mew=2)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(label, fontsize=9)
        error = (
            "no pose"
            if estimate is None
            else (
                f"rotation error {pose_benchmark.geodesic_deg(estimate.scanner_from_head, truth):.1f}°, "
                f"confidence {estimate.confidence:.2f}"
            )
        )
        axes[row, 0].set_ylabel(f"{name.replace('fetal_SB_atlas_', '')}\n{error}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atlases", choices=["held-out", "train"], default="held-out")
    parser.add_argument("--per-atlas", type=int, default=40, help="scouts per atlas")
    parser.add_argument(
        "--motion-deg", type=float, nargs="*", default=[10.0, 20.0], help="motion in the stack (none: still only)"
    )
    parser.add_argument(
        "--components",
        type=int,
        nargs="+",
        default=None,
        help="values of estimate.OTHER_COMPONENTS to run each setting with (default: the shipped one)",
    )
    parser.add_argument("--seed", type=int, default=4545)
    parser.add_argument(
        "--figure-only", action="store_true", help="only the figure (the first scout of each atlas, last setting)"
    )
    args = parser.parse_args()

    import torch

    from mrmotion.pose import estimate, synth

    torch.set_num_threads(2)
    model = estimate.PoseModel.load()
    folders = pose_benchmark.atlas_folders(held_out=args.atlases == "held-out")
    components = args.components or [estimate.OTHER_COMPONENTS]
    rng = np.random.default_rng(args.seed)
    subjects = [synth.fetal_t2_subject(folder)[1] for folder in folders]
    draws = [(t2, draw_scout(t2, rng)) for t2 in subjects for _ in range(args.per_atlas)]
    settings = [("anisotropic voxels, still head", 0.0, False), ("+ EPI ghost and distortion", 0.0, True)]
    settings += [(f"+ motion between slices, {m:g}°", m, True) for m in args.motion_deg]
    sides = [d.shape[0] * IN_PLANE_MM for _, d in draws]
    command = " ".join(["python benchmarks/pose_epi_scouts.py", *sys.argv[1:]])
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')} · command: {command}",
        f"{len(draws)} simulated EPI scouts of the {args.atlases} atlases ({', '.join(f.name for f in folders)}): "
        f"field of view {FOV_FACTOR[0]:g}–{FOV_FACTOR[1]:g}× the brain's size ({min(sides):.0f}–{max(sides):.0f} mm), "
        f"{IN_PLANE_MM:g} × {IN_PLANE_MM:g} × {SLICE_MM:g} mm voxels, interleaved slices; each setting adds to the "
        "one above it, on the same scouts",
        "",
        f"{'setting':38} {'others':>6} {pose_benchmark.SCOUT_COLUMNS} {'slice-pose spread °':>20} {'confident':>9}",
    ]
    figure_path = pose_benchmark.RESULTS / "pose_epi_scouts.png"
    label, motion_deg, epi = settings[-1]
    first = range(0, len(draws), args.per_atlas)  # the first scout of each atlas
    if args.figure_only:
        examples = []
        for index in first:
            t2, draw = draws[index]
            data, truth, _ = render_scout(t2, draw, motion_deg, epi)
            run = pose_benchmark.run_scouts([(data, draw.scanner_from_voxel, truth)], model)
            examples.append((t2.name, data, draw.scanner_from_voxel, truth, run["estimates"][0]))
        figure(examples, f"simulated EPI scouts: {label.lstrip('+ ')}", figure_path)
        print(f"wrote {figure_path}")
        return
    print("\n".join(lines), flush=True)
    began = time.perf_counter()
    for label, motion_deg, epi in settings:
        scouts, spreads = [], []
        for t2, draw in draws:
            data, truth, spread = render_scout(t2, draw, motion_deg, epi)
            scouts.append((data, draw.scanner_from_voxel, truth))
            spreads.append(spread)
        for others in components:
            default, estimate.OTHER_COMPONENTS = estimate.OTHER_COMPONENTS, others
            try:
                run = pose_benchmark.run_scouts(scouts, model)
            finally:
                estimate.OTHER_COMPONENTS = default
            lines.append(
                f"{label:38} {others:6d} {pose_benchmark.scout_summary(run)} {np.median(spreads):20.1f} "
                f"{100 * pose_benchmark.confident_failures(run):8.1f}%"
            )
            print(lines[-1], flush=True)
    suffix = "" if args.atlases == "held-out" else "_train"
    if not suffix:
        examples = [(draws[i][0].name, *scouts[i], run["estimates"][i]) for i in first]
        figure(examples, f"simulated EPI scouts: {label.lstrip('+ ')}", figure_path)
    lines += ["", "(others: estimate.OTHER_COMPONENTS; slice-pose spread: median over scouts of the largest angle of a "
              "slice's pose from the truth; confident: failures with confidence ≥ 0.5; "
              f"{time.perf_counter() - began:.0f} s in all)"]  # fmt: skip
    (pose_benchmark.RESULTS / f"pose_epi_scouts{suffix}.txt").write_text("\n".join(lines) + "\n")
    print(lines[-1])


if __name__ == "__main__":
    main()
