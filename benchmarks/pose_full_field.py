"""Head pose on full-field scouts: the whole uterus in view, the brain a small part of it.

``benchmarks/pose.py`` draws fields of view 1.8–3× the brain's size. Real fetal EPI scouts cover the whole uterus:
here the field of view is 4–6× the brain's size (250–600 mm; 3 mm voxels, slices 3–4.5 mm thick, clutter,
bias, bands and noise as in ``benchmarks/pose.py``). In such fields the coarse localiser (a 48³ cube over the whole
field) can merge the brain with the tissue around it and find a brain about twice too large; when no pose is then
confident, ``estimate.ZOOM_SIZES`` sets the brain sizes the zoomed localiser's cubes are cut for. Compared: the
zoomed cube for the localiser's brain size only (up to session 16) and for that size and then half of it (the
default, chosen on the training atlases with ``--atlases train``).

Prints per setting: median and 95th-percentile rotation error, failures (> 30°), median brain-centre error, share of
poses from a zoomed cube, seconds per volume. Writes ``benchmarks/results/pose_full_field[_train].txt``.

    python benchmarks/pose_full_field.py                    # held-out atlases, 60 scouts each
    python benchmarks/pose_full_field.py --atlases train --per-atlas 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pose as pose_benchmark  # noqa: E402  (the geodesic and the atlas folder, as benchmarks/pose.py has them)

FOV_FACTOR = (4.0, 6.0)
SETTINGS = {"zoom for the found size only": (1.0,), "zoom for the found size, then half of it": (1.0, 0.5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atlases", choices=["held-out", "train"], default="held-out")
    parser.add_argument("--per-atlas", type=int, default=60, help="scouts per atlas")
    parser.add_argument("--seed", type=int, default=2027)
    args = parser.parse_args()
    if not pose_benchmark.ATLASES.is_dir():
        sys.exit(f"fetal atlases not found at {pose_benchmark.ATLASES}")

    import torch

    from mrmotion.pose import estimate, synth
    from mrmotion.pose.train import HELD_OUT

    torch.set_num_threads(2)
    model = estimate.PoseModel.load()
    folders = [
        f
        for f in synth.fetal_atlas_folders(pose_benchmark.ATLASES)
        if (f.name in HELD_OUT) == (args.atlases == "held-out")
    ]
    rng = np.random.default_rng(args.seed)
    scouts = []
    for folder in folders:
        _, t2 = synth.fetal_t2_subject(folder)
        for _ in range(args.per_atlas):
            truth = np.eye(4)
            truth[:3, :3] = synth.random_rotation(rng)
            truth[:3, 3] = rng.uniform(-30, 30, 3)
            data, grid = synth.scout_volume(t2, truth, rng, pose_benchmark.VOXEL_MM, fov_factor=FOV_FACTOR)
            scouts.append((data, grid, truth))
    voxel = pose_benchmark.VOXEL_MM
    sides = [s[0].shape[0] * voxel for s in scouts]
    names = ", ".join(f.name for f in folders)
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')} · command: python benchmarks/pose_full_field.py --atlases {args.atlases} "
        f"--per-atlas {args.per_atlas}",
        f"{len(scouts)} full-field scouts of the {args.atlases} atlases ({names}): field of view "
        f"{FOV_FACTOR[0]:g}–{FOV_FACTOR[1]:g}× the brain's size ({min(sides):.0f}–{max(sides):.0f} mm), "
        f"{voxel:g} mm voxels, slices {voxel:g}–{1.5 * voxel:g} mm",
        "",
        f"{'setting':42} {'median °':>9} {'p95 °':>7} {'failures':>9} {'centre mm':>10} {'zoomed':>7} "
        f"{'s / volume':>11}",
    ]
    print("\n".join(lines), flush=True)
    default = estimate.ZOOM_SIZES
    try:
        for label, sizes in SETTINGS.items():
            estimate.ZOOM_SIZES = sizes
            errors, shifts, zoomed, seconds = [], [], [], []
            for data, grid, truth in scouts:
                began = time.perf_counter()
                try:
                    found = estimate.estimate_pose(data, grid, model)
                    pose = found.scanner_from_head
                    errors.append(pose_benchmark.geodesic_deg(pose, truth))
                    shifts.append(float(np.linalg.norm(pose[:3, 3] - truth[:3, 3])))
                    zoomed.append(bool(found.details["zoomed"]))
                except Exception:  # no brain found: a failure
                    errors.append(180.0)
                    shifts.append(np.inf)
                    zoomed.append(False)
                seconds.append(time.perf_counter() - began)
            errors = np.array(errors)
            lines.append(
                f"{label:42} {np.median(errors):9.2f} {np.percentile(errors, 95):7.1f} "
                f"{100 * np.mean(errors > pose_benchmark.FAILURE_DEG):8.1f}% {np.median(shifts):10.2f} "
                f"{100 * np.mean(zoomed):6.0f}% {np.mean(seconds):11.2f}"
            )
            print(lines[-1], flush=True)
    finally:
        estimate.ZOOM_SIZES = default
    suffix = "" if args.atlases == "held-out" else "_train"
    (pose_benchmark.RESULTS / f"pose_full_field{suffix}.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
