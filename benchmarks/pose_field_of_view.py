"""The zeros outside a volume's field of view (``mrmotion.pose.field_of_view``): when they are taken for that, and
what filling them does to the pose.

1. **Convex-hull gap** (``field_of_view.convex_hull_gap``, the share of the scanned region's convex hull that is
   zero; ``CONVEX_TOLERANCE`` separates fields of view from masked volumes): of held-out scouts whose voxels were
   turned and resampled (zero outside), of clean held-out scouts on a zero background (no clutter or noise), and of
   every fetal atlas's skull-stripped T2 image (``srr.nii.gz``).
2. **Which benchmark volumes have such zeros at all**: held-out scouts as ``benchmarks/pose.py``,
   ``benchmarks/pose_full_field.py`` and ``benchmarks/pose_epi_scouts.py`` make them (their background is noise).
3. **Zero-padded scouts**: held-out scouts (as ``benchmarks/pose.py``) put on a larger matrix, up to half their size
   of zeros added on each side at random; the pose with the zeros filled (the default) and left as they are
   (``estimate.EXTEND_MAX_VOXELS`` = 0).

Writes ``benchmarks/results/pose_field_of_view.txt``.

    python benchmarks/pose_field_of_view.py              # 30 padded scouts per held-out atlas (about 20 minutes)
    python benchmarks/pose_field_of_view.py --per-atlas 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pose as pose_benchmark  # noqa: E402  (test volumes, the geodesic, the atlas folders)
import pose_epi_scouts as epi  # noqa: E402  (EPI scouts)


def hull_gaps(subjects, rng: np.random.Generator, count: int) -> dict[str, list[float]]:
    import nibabel as nib

    from mrmotion.pose import synth
    from mrmotion.pose.field_of_view import convex_hull_gap

    gaps: dict[str, list[float]] = {"turned and resampled scouts": [], "clean scouts, zero background": []}
    for t2 in subjects:
        for _ in range(count):
            data, grid, pose = pose_benchmark.test_volume(t2, rng)
            motion = np.eye(4)
            motion[:3, :3] = synth.random_rotation(rng)
            motion[:3, 3] = pose[:3, 3] - motion[:3, :3] @ pose[:3, 3]
            gaps["turned and resampled scouts"].append(convex_hull_gap(synth.moved_voxels(data, grid, motion) != 0))
            clean, _, _ = pose_benchmark.test_volume(t2, rng, clutter=False, degraded=False)
            gaps["clean scouts, zero background"].append(convex_hull_gap(clean != 0))
    folders = synth.fetal_atlas_folders(pose_benchmark.ATLASES)
    gaps["skull-stripped fetal atlases (srr)"] = [
        convex_hull_gap(np.asarray(nib.load(folder / "srr.nii.gz").dataobj) != 0) for folder in folders
    ]
    return gaps


def with_zeros_outside(subjects, rng: np.random.Generator, count: int) -> dict[str, list[bool]]:
    from mrmotion.pose.field_of_view import outside_field_of_view

    found: dict[str, list[bool]] = {"scouts (pose.py)": [], "full field (pose_full_field.py)": [], "EPI, 20°": []}
    for t2 in subjects:
        for _ in range(count):
            found["scouts (pose.py)"].append(outside_field_of_view(pose_benchmark.test_volume(t2, rng)[0]) is not None)
            full = pose_benchmark.test_volume(t2, rng, fov_factor=(4.0, 6.0))[0]
            found["full field (pose_full_field.py)"].append(outside_field_of_view(full) is not None)
            scout = epi.render_scout(t2, epi.draw_scout(t2, rng), 20.0, True)[0]
            found["EPI, 20°"].append(outside_field_of_view(scout) is not None)
    return found


def padded_scouts(subjects, model, rng: np.random.Generator, count: int) -> dict[str, list[tuple[float, float]]]:
    from mrmotion.pose import estimate

    results: dict[str, list[tuple[float, float]]] = {"zeros filled (default)": [], "zeros left": []}
    default = estimate.EXTEND_MAX_VOXELS
    for t2 in subjects:
        for _ in range(count):
            data, grid, pose = pose_benchmark.test_volume(t2, rng)
            pads = [(int(rng.integers(0, s // 2)), int(rng.integers(0, s // 2))) for s in data.shape]
            shift = np.eye(4)
            shift[:3, 3] = [-before for before, _ in pads]
            for label, limit in zip(results, (default, 0), strict=True):
                estimate.EXTEND_MAX_VOXELS = limit
                try:
                    found = estimate.estimate_pose(np.pad(data, pads), grid @ shift, model)
                finally:
                    estimate.EXTEND_MAX_VOXELS = default
                results[label].append((pose_benchmark.geodesic_deg(found.scanner_from_head, pose), found.confidence))
    return results


def main() -> None:
    import torch

    from mrmotion.pose import synth
    from mrmotion.pose.estimate import LOW_CONFIDENCE, default_model
    from mrmotion.pose.field_of_view import CONVEX_TOLERANCE

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-atlas", type=int, default=30, help="padded scouts per held-out atlas")
    parser.add_argument("--seed", type=int, default=77)
    args = parser.parse_args()
    if args.per_atlas < 1:
        sys.exit("--per-atlas must be ≥ 1")
    torch.set_num_threads(2)
    subjects = [synth.fetal_t2_subject(folder)[1] for folder in pose_benchmark.atlas_folders(held_out=True)]
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')} · command: python benchmarks/pose_field_of_view.py "
        f"--per-atlas {args.per_atlas} --seed {args.seed}",
        "",
    ]
    print("\n".join(lines), flush=True)
    lines.append(f"convex-hull gap of the scanned region (taken for a field of view at ≤ {CONVEX_TOLERANCE:g}):")
    for label, values in hull_gaps(subjects, np.random.default_rng(args.seed + 1), 4).items():
        lines.append(
            f"  {label:38} min {min(values):.4f}  median {np.median(values):.4f}  max {max(values):.4f}  "
            f"({len(values)})"
        )
        print(lines[-1], flush=True)
    lines.append("volumes with zeros outside a field of view (filled before the search):")
    for label, flags in with_zeros_outside(subjects, np.random.default_rng(args.seed + 2), 10).items():
        lines.append(f"  {label:38} {sum(flags)} of {len(flags)}")
        print(lines[-1], flush=True)
    lines += [
        "",
        f"zero-padded held-out scouts, {args.per_atlas} per atlas:",
        f"  {'':24} {'median °':>9} {'p95 °':>7} {'failures':>9} {'confident':>10}",
    ]
    model = default_model()
    for label, rows in padded_scouts(subjects, model, np.random.default_rng(args.seed), args.per_atlas).items():
        errors, confidence = np.array(rows).T
        failures, confident = np.mean(errors > pose_benchmark.FAILURE_DEG), np.mean(confidence >= LOW_CONFIDENCE)
        lines.append(
            f"  {label:24} {np.median(errors):9.2f} {np.percentile(errors, 95):7.1f} "
            f"{100 * failures:8.1f}% {100 * confident:9.0f}%"
        )
        print(lines[-1], flush=True)
    lines.append(f"# finished {time.strftime('%H:%M')}")
    (pose_benchmark.RESULTS / "pose_field_of_view.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
