"""Which symmetry group the region network is averaged over (``mrmotion.pose.estimate.GROUPS``): chosen on scouts of
the TRAINING atlases (never the held-out ones), with the shipped weights. For each group, the same scouts (3 mm, as
``benchmarks/pose.py`` makes them): median and 95th-percentile rotation error, failures (> 30°), seconds per volume.

Writes ``benchmarks/results/pose_symmetry_groups.txt``.

    python benchmarks/pose_symmetry_groups.py [--per-atlas 8] [--groups tetrahedral klein]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pose as pose_benchmark  # noqa: E402  (test volumes and the geodesic, as benchmarks/pose.py makes them)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-atlas", type=int, default=8, help="scouts per training atlas")
    parser.add_argument("--groups", nargs="+", default=["tetrahedral", "klein"])
    parser.add_argument("--seed", type=int, default=77)
    args = parser.parse_args()

    import torch

    from mrmotion.pose import estimate

    torch.set_num_threads(2)
    model = estimate.PoseModel.load()
    folders = pose_benchmark.atlas_folders(held_out=False)
    scouts = pose_benchmark.scouts_of(folders, args.per_atlas, np.random.default_rng(args.seed))
    lines = [f"{args.per_atlas} scouts of each of {len(folders)} training atlases (3 mm, as benchmarks/pose.py makes "
             "them), shipped weights; the same scouts for every group", "",
             f"{'group':12} {pose_benchmark.SCOUT_COLUMNS}"]  # fmt: skip
    default = estimate.GROUPS["equivariant"]
    try:
        for group in args.groups:
            estimate.GROUPS["equivariant"] = group
            lines.append(f"{group:12} {pose_benchmark.scout_summary(pose_benchmark.run_scouts(scouts, model))}")
            print(lines[-1], flush=True)
    finally:
        estimate.GROUPS["equivariant"] = default
    text = "\n".join(lines)
    out = pose_benchmark.RESULTS / "pose_symmetry_groups.txt"
    out.write_text(f"# command: python benchmarks/pose_symmetry_groups.py\n{text}\n")
    print(text)


if __name__ == "__main__":
    main()
