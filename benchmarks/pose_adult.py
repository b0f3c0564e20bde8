"""Head pose on adult heads: the MNI152 template turned to random poses, as fast whole-head scouts.

Issue 4 asks for fetal and adult heads. The only adult head we have is the MNI152 2009 template (nilearn, embedded),
and the shipped networks learned it too: the localiser from its tissue maps, the region network (since session 18)
from the same maps labelled like the fetal atlases (``mrmotion.pose.synth.adult_region_subject``), and the region
templates include it. Its own T1 image was never used in training: this benchmark tests a new contrast and new
degradations of a known anatomy, not adult anatomy in general (one subject). Settings:

1. **T1, 3 mm**: the template's own T1 image (brain, skull, scalp, the top of the neck: a contrast the region network
   never saw), a whole-head field of view 1.3–1.7× the brain's size with the brain anywhere inside, no clutter,
   slices 3–4.5 mm thick along a random scanner axis, bias field, gamma, spin-history bands and Rician noise
   (``mrmotion.pose.synth.scout_volume``, as the fetal benchmarks make their scouts);
2. **T1, 5 mm**: the same scouts on 5 mm voxels (slices 5–7.5 mm);
3. **tissue maps, 3 mm**: the template's CSF, grey and white matter and the rest of the head as labels, CSF bright
   and the others random (a T2-like contrast of random strength).

Rotations uniform over SO(3). Prints per setting median and 95th-percentile rotation error, failures (> 30°), median
brain-centre error, seconds per volume, the share of poses confident enough to act on (≥ 0.5, ``mrmotion prescribe``'s
default) and of confident failures; then the equivariance check of
``benchmarks/pose.py`` on the T1 scouts (the head turned about its brain centre in the same scan, re-rendered).
Writes ``benchmarks/results/pose_adult.txt``.

    python benchmarks/pose_adult.py                 # 100 scouts per setting, 20 equivariance pairs
    python benchmarks/pose_adult.py --scouts 10     # a quick look
    python benchmarks/pose_adult.py --weights DIR --tag _new   # other weights, pose_adult_new.txt
    python benchmarks/pose_adult.py --calibration 150   # how estimate.ADULT_TEMPLATE_SCORE_RANGE was chosen

``--calibration N``: N scouts of the tissue maps (the anatomy the region network learned; never the T1 image) on a
seed other than the benchmark's (``CALIBRATION_SEED``), each pose's template score: the failures' scores and the
correct poses' 1st / 5th / 50th percentiles, and the share of confident poses; once with the adult template scored
on the fetal range (as when ``estimate.ADULT_TEMPLATE_SCORE_RANGE`` was chosen) and once on its own. Writes
``benchmarks/results/pose_adult_calibration.txt``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pose as pose_benchmark  # noqa: E402  (scouts, the scout runner and its summary, the equivariance check)

#: field of view of the whole-head scouts, in brain sizes (the MNI152 brain: 174 mm; 226–296 mm)
FOV_FACTOR = (1.3, 1.7)
SEED = 2026
CALIBRATION_SEED = 99


def calibration(model, count: int) -> list[str]:
    """Template scores of the poses of ``count`` tissue-map scouts (see the module docstring), with the adult template
    scored on the fetal range (as when the adult range was chosen) and on its own."""
    from mrmotion.pose import estimate, synth

    subject = synth.adult_subject()
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')} · command: python benchmarks/pose_adult.py --calibration {count}",
        f"{count} scouts of the adult tissue maps (seed {CALIBRATION_SEED}, field of view {FOV_FACTOR[0]:g}–"
        f"{FOV_FACTOR[1]:g}× the brain, 3 mm)",
    ]
    adult_range = estimate.ADULT_TEMPLATE_SCORE_RANGE
    for label, score_range in (("fetal range (before)", estimate.TEMPLATE_SCORE_RANGE), ("adult range", adult_range)):
        estimate.ADULT_TEMPLATE_SCORE_RANGE = score_range
        rng, rows = np.random.default_rng(CALIBRATION_SEED), []
        try:
            for _ in range(count):
                data, grid, pose = pose_benchmark.test_volume(subject, rng, FOV_FACTOR, voxel_mm=3.0, clutter=False)
                found = estimate.estimate_pose(data, grid, model)
                error = pose_benchmark.geodesic_deg(found.scanner_from_head, pose)
                rows.append((error, found.details["template_score"], found.confidence))
        finally:
            estimate.ADULT_TEMPLATE_SCORE_RANGE = adult_range
        error, score, confidence = np.array(rows).T
        right, confident = error <= pose_benchmark.FAILURE_DEG, confidence >= estimate.LOW_CONFIDENCE
        lines += [
            f"{label}, {score_range[0]:g}–{score_range[1]:g}: failures (> {pose_benchmark.FAILURE_DEG:g}°) "
            f"{int((~right).sum())}, their template scores " + ", ".join(f"{v:.3f}" for v in np.sort(score[~right])),
            "  correct poses' template scores at their 1st / 5th / 50th percentiles: "
            + " / ".join(f"{v:.3f}" for v in np.percentile(score[right], [1, 5, 50])),
            f"  confident (≥ {estimate.LOW_CONFIDENCE:g}): {100 * np.mean(confident):.0f}% of the poses, "
            f"{int((confident & ~right).sum())} of them failures",
        ]
        print("\n".join(lines[-3:]), flush=True)
    return lines


def main() -> None:
    import torch

    from mrmotion.pose import synth
    from mrmotion.pose.estimate import LOW_CONFIDENCE, PoseModel, default_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scouts", type=int, default=100, help="scouts per setting")
    parser.add_argument("--equivariance", type=int, default=20, help="pairs for the equivariance check")
    parser.add_argument("--weights", type=Path, default=None, help="pose weights folder (default: shipped)")
    parser.add_argument("--tag", default="", help="suffix of the result file")
    parser.add_argument("--calibration", type=int, default=0, help="only the calibration, on this many scouts")
    args = parser.parse_args()
    if args.scouts < 1 or args.equivariance < 0 or args.calibration < 0:
        sys.exit("--scouts must be ≥ 1, --equivariance and --calibration ≥ 0")
    torch.set_num_threads(2)
    model = default_model() if args.weights is None else PoseModel.load(args.weights)
    if args.calibration > 0:
        lines = calibration(model, args.calibration)
        (pose_benchmark.RESULTS / f"pose_adult_calibration{args.tag}.txt").write_text("\n".join(lines) + "\n")
        return
    t1, labels = synth.adult_t1_subject(), synth.adult_subject()
    began = time.strftime("%Y-%m-%d %H:%M")
    lines = [
        f"# {began} · command: python benchmarks/pose_adult.py --scouts {args.scouts} "
        f"--equivariance {args.equivariance}" + (f" --weights {args.weights}" if args.weights else ""),
        f"adult MNI152 template (brain size {t1.brain_size:.0f} mm), {args.scouts} scouts per setting at random poses "
        f"(rotation uniform over SO(3)); whole-head field of view {FOV_FACTOR[0]:g}–{FOV_FACTOR[1]:g}× the brain's "
        f"size; weights: {args.weights or 'shipped'} (see the module docstring for what they learned)",
        "",
        f"{'setting':28} {pose_benchmark.SCOUT_COLUMNS} {'confident':>10} {'confident failures':>19}",
    ]
    print("\n".join(lines), flush=True)
    settings = {"T1, 3 mm": (t1, 3.0), "T1, 5 mm": (t1, 5.0), "tissue maps (CSF bright), 3 mm": (labels, 3.0)}
    for index, (label, (subject, voxel)) in enumerate(settings.items()):
        # the two T1 settings share their poses and fields of view (the same seed)
        rng = np.random.default_rng(SEED + (2 if index == 2 else 0))
        scouts = [
            pose_benchmark.test_volume(subject, rng, FOV_FACTOR, voxel_mm=voxel, clutter=False)
            for _ in range(args.scouts)
        ]
        run = pose_benchmark.run_scouts(scouts, model)
        confident = np.mean([e is not None and e.confidence >= LOW_CONFIDENCE for e in run["estimates"]])
        lines.append(
            f"{label:28} {pose_benchmark.scout_summary(run)} {100 * confident:9.0f}% "
            f"{100 * pose_benchmark.confident_failures(run):18.1f}%"
        )
        print(lines[-1], flush=True)
    if args.equivariance:
        rng = np.random.default_rng(SEED + 7)
        values = np.array(
            [
                pose_benchmark.equivariance_deg("head", t1, model, rng, fov_factor=FOV_FACTOR, clutter=False)
                for _ in range(args.equivariance)
            ]
        )
        lines += [
            "",
            "equivariance pose(R·x) vs R·pose(x), T1 3 mm, the head turned about its brain centre in the same scan "
            f"(re-rendered): median {np.median(values):.2f}°, p95 {np.percentile(values, 95):.2f}° over "
            f"{len(values)} pairs",
        ]
        print(lines[-1], flush=True)
    lines.append(f"# finished {time.strftime('%H:%M')}")
    (pose_benchmark.RESULTS / f"pose_adult{args.tag}.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
