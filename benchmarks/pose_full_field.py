"""Head pose on full-field scouts: the whole uterus in view, the brain a small part of it.

``benchmarks/pose.py`` draws fields of view 1.8–3× the brain's size. Real fetal EPI scouts cover the whole uterus:
here the field of view is 4–6× the brain's size (250–600 mm; 3 mm voxels, slices 3–4.5 mm thick, clutter,
bias, bands and noise as in ``benchmarks/pose.py``). In such fields the coarse localiser (a 48³ cube over the whole
field) can merge the brain with the tissue around it and find a brain about twice too large; when no pose is then
confident, ``estimate.ZOOM_SIZES`` sets the brain sizes the zoomed localiser's cubes are cut for. Compared: the
zoomed cube for the localiser's brain size only (up to session 15), for that size and then half of it (session 16,
chosen on the training atlases with ``--atlases train``), and then also the localiser's other connected components
(``estimate.OTHER_COMPONENTS``, session 17: it can take maternal or fetal-body tissue for the brain).

Prints per setting: median and 95th-percentile rotation error, failures (> 30°), median brain-centre error, seconds
per volume, shares of poses from a zoomed cube and from another component, and of failures with a confidence ≥ 0.5
(confident and wrong: the ones a scanner would act on). Writes ``benchmarks/results/pose_full_field[_train].txt``.

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
#: setting → (estimate.ZOOM_SIZES, estimate.OTHER_COMPONENTS)
SETTINGS = {
    "zoom for the found size only (to s. 15)": ((1.0,), 0),
    "+ then half of it (session 16)": ((1.0, 0.5), 0),
    "+ other localiser components (now)": ((1.0, 0.5), 3),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atlases", choices=["held-out", "train"], default="held-out")
    parser.add_argument("--per-atlas", type=int, default=60, help="scouts per atlas")
    parser.add_argument("--seed", type=int, default=2027)
    args = parser.parse_args()

    import torch

    from mrmotion.pose import estimate

    torch.set_num_threads(2)
    model = estimate.PoseModel.load()
    folders = pose_benchmark.atlas_folders(held_out=args.atlases == "held-out")
    scouts = pose_benchmark.scouts_of(folders, args.per_atlas, np.random.default_rng(args.seed), FOV_FACTOR)
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
        f"{'setting':42} {pose_benchmark.SCOUT_COLUMNS} {'zoomed':>7} {'other':>7} {'confident':>9}",
    ]
    print("\n".join(lines), flush=True)
    default = estimate.ZOOM_SIZES, estimate.OTHER_COMPONENTS
    try:
        for label, (sizes, others) in SETTINGS.items():
            estimate.ZOOM_SIZES, estimate.OTHER_COMPONENTS = sizes, others
            run = pose_benchmark.run_scouts(scouts, model)
            zoomed = [e is not None and bool(e.details["zoomed"]) for e in run["estimates"]]
            other = [e is not None and e.details["component"] > 0 for e in run["estimates"]]
            lines.append(
                f"{label:42} {pose_benchmark.scout_summary(run)} {100 * np.mean(zoomed):6.0f}% "
                f"{100 * np.mean(other):6.0f}% {100 * pose_benchmark.confident_failures(run):8.1f}%"
            )
            print(lines[-1], flush=True)
    finally:
        estimate.ZOOM_SIZES, estimate.OTHER_COMPONENTS = default
    suffix = "" if args.atlases == "held-out" else "_train"
    (pose_benchmark.RESULTS / f"pose_full_field{suffix}.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
