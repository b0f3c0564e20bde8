"""Heads a few degrees from the volume's axes: does the pose follow the head, or snap to the voxel grid?

Scouts are often acquired nearly along the head's axes (adults lie straight; a navigator repeats the scout's grid),
and prospective correction needs the small rotations between them. This benchmark renders 3-mm scouts of the
held-out fetal atlases (clutter and degradations as ``benchmarks/pose.py``) with the head turned by δ = 0, 2, 4, 6
and 10° about a random axis from the volume's axes (the same head, field of view and degradations for every δ), and
reports, for the shipped estimator as it runs by default (a refined rotation within ``template.GRID_SNAP_DEG`` of
the volume's axes refined again with the template score's sampling dithered, ``template.DITHER_VOXELS``), with the
dither always on, and never (as before 2026-11-25):

* the median rotation error (°), and
* the rotation the estimate shows about δ's axis (median and quartiles, °): it should be δ. Without the dither the
  refinement snaps to the grid (the score's cusp where its samples meet the template's nodes), and small turns vanish.

Run: ``python benchmarks/pose_near_axes.py [--heads N]`` (N heads per atlas, default 8; about 3 minutes). Writes
``benchmarks/results/pose_near_axes.txt``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from pose import ATLASES, VOXEL_MM, geodesic_deg  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ANGLES_DEG = (0.0, 2.0, 4.0, 6.0, 10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=8, help="heads per held-out atlas")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if not ATLASES.is_dir():
        sys.exit(f"fetal atlases not found at {ATLASES}")

    import torch
    from scipy.spatial.transform import Rotation

    from mrmotion.pose import synth, template
    from mrmotion.pose.estimate import PoseModel, estimate_pose
    from mrmotion.pose.train import HELD_OUT

    torch.set_num_threads(2)
    model = PoseModel.load()
    shipped = template.DITHER_VOXELS, template.GRID_SNAP_DEG
    settings = {  # (dither, snap angle)
        f"dithered within {shipped[1]:g}° of the axes (default)": shipped,
        f"always dithered (±{shipped[0]:g} voxel)": (shipped[0], 180.0),
        "never dithered (before 2026-11-25)": (0.0, shipped[1]),
    }
    rng = np.random.default_rng(args.seed)
    scans = []  # (t2, axis, seed, centre): the same heads for every setting and angle
    for name in HELD_OUT:
        _, t2 = synth.fetal_t2_subject(ATLASES / name)
        for _ in range(args.heads):
            axis = rng.normal(size=3)
            scans.append((t2, axis / np.linalg.norm(axis), int(rng.integers(2**32)), rng.uniform(-30, 30, 3)))
    started = time.time()
    lines = []
    for label, (dither, snap) in settings.items():
        template.DITHER_VOXELS, template.GRID_SNAP_DEG = dither, snap
        for angle in ANGLES_DEG:
            errors, shown = [], []
            for t2, axis, seed, centre in scans:
                pose = np.eye(4)
                pose[:3, :3] = Rotation.from_rotvec(np.radians(angle) * axis).as_matrix()
                pose[:3, 3] = centre
                data, grid = synth.scout_volume(t2, pose, np.random.default_rng(seed), VOXEL_MM)
                estimate = estimate_pose(data, grid, model).scanner_from_head
                errors.append(geodesic_deg(estimate, pose))
                shown.append(float(np.degrees(Rotation.from_matrix(estimate[:3, :3]).as_rotvec() @ axis)))
            q1, median, q3 = np.percentile(shown, [25, 50, 75])
            lines.append(
                f"{label:40s} δ {angle:4.1f}°: rotation error median {np.median(errors):4.1f}°; "
                f"rotation shown about δ's axis median {median:5.1f}° (quartiles {q1:5.1f}, {q3:5.1f})"
            )
            print(lines[-1], flush=True)
    template.DITHER_VOXELS, template.GRID_SNAP_DEG = shipped
    header = (
        f"# {time.strftime('%Y-%m-%d %H:%M')} · command: python benchmarks/pose_near_axes.py "
        f"{' '.join(sys.argv[1:])} · {len(scans)} heads ({args.heads} per held-out atlas) per angle, "
        f"{VOXEL_MM:g}-mm scouts with clutter and degradations · {time.time() - started:.0f} s\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pose_near_axes.txt").write_text(header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
