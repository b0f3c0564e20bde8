"""How the pose fit's settings were chosen: on scouts of the TRAINING atlases (never the held-out ones), with the
shipped weights, the rotation error for each weight of the principal axes in the fit (regions.AXES_WEIGHT) and each
symmetry group of the average, and how the sign margin and centroid residual of the closed-form fit and the
template score of the refined rotation separate failures (estimate.SIGN_MARGIN_SCALE, estimate.RESIDUAL_SCALE,
estimate.TEMPLATE_SCORE_RANGE).

Writes ``benchmarks/results/pose_fit_settings.txt`` (``pose_fit_settings_shipped.txt`` with ``--shipped-only``).

    python benchmarks/pose_fit_settings.py [--volumes 20] [--seed 77] [--shipped-only]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pose as pose_benchmark  # noqa: E402  (test volumes and the geodesic, as benchmarks/pose.py makes them)

WEIGHTS = (1.0, 3.0, 5.0, 10.0, 30.0, 100.0)
GROUPS = ("identity", "tetrahedral", "rotations")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--volumes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=77)
    parser.add_argument("--shipped-only", action="store_true", help="only the shipped group and axes weight")
    args = parser.parse_args()

    from mrmotion.pose import estimate, regions, synth

    model = estimate.PoseModel.load()
    folders = pose_benchmark.atlas_folders(held_out=False)
    rng = np.random.default_rng(args.seed)
    original = regions.AXES_WEIGHT
    groups, weights = (("tetrahedral",), (original,)) if args.shipped_only else (GROUPS, WEIGHTS)
    errors = {(group, weight): [] for group in groups for weight in weights}
    margins, residuals, scores, shipped_errors = [], [], [], []
    started = time.time()
    for _ in range(args.volumes):
        _, t2 = synth.fetal_t2_subject(folders[rng.integers(len(folders))])
        data, grid, truth = pose_benchmark.test_volume(t2, rng)
        for group in groups:
            estimate.GROUPS["equivariant"] = group
            for weight in weights:
                regions.AXES_WEIGHT = weight
                try:
                    result = estimate.estimate_pose(data, grid, model)
                except Exception:  # no brain found: a failure
                    errors[group, weight].append(180.0)
                    continue
                error = pose_benchmark.geodesic_deg(result.scanner_from_head, truth)
                errors[group, weight].append(error)
                if group == "tetrahedral" and weight == original:
                    margins.append(result.details["sign_margin"])
                    residuals.append(result.details["region_residual"])
                    scores.append(result.details["template_score"])
                    shipped_errors.append(error)
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')} · {time.time() - started:.0f} s · command: python "
        f"benchmarks/pose_fit_settings.py {' '.join(sys.argv[1:])}",
        f"{args.volumes} scouts of training atlases (3 mm, as benchmarks/pose.py makes them), shipped weights",
        "median rotation error (°) / failures > 30° by symmetry group (rows) and axes weight (columns)",
        "group        " + "".join(f"{w:>14g}" for w in weights),
    ]
    for group in groups:
        cells = []
        for weight in weights:
            values = np.array(errors[group, weight])
            cells.append(f"{np.median(values):7.1f} / {np.mean(values > 30):4.0%}")
        lines.append(f"{group:<13}" + "".join(f"{c:>14}" for c in cells))
    failed = np.array(shipped_errors) > 30
    margins, residuals, scores = np.array(margins), np.array(residuals), np.array(scores, dtype=float)
    lines += [
        f"shipped settings (tetrahedral, axes weight {original:g}), {failed.sum()} failures:",
        f"  sign margin of failures {np.round(np.sort(margins[failed]), 2).tolist()}; of correct poses 5th/50th "
        f"percentile {np.percentile(margins[~failed], 5):.2f} / {np.median(margins[~failed]):.2f}",
        f"  centroid residual of failures {np.round(np.sort(residuals[failed]), 3).tolist()}; of correct poses "
        f"median / 95th percentile {np.median(residuals[~failed]):.3f} / {np.percentile(residuals[~failed], 95):.3f}",
        f"  template score (refined rotation) of failures {np.round(np.sort(scores[failed]), 3).tolist()}; of correct "
        f"poses 1st/5th/50th percentile {np.percentile(scores[~failed], 1):.3f} / "
        f"{np.percentile(scores[~failed], 5):.3f} / {np.median(scores[~failed]):.3f}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = pose_benchmark.RESULTS / ("pose_fit_settings_shipped.txt" if args.shipped_only else "pose_fit_settings.txt")
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
