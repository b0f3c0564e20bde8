"""How the pose estimator's fallbacks were chosen: on scouts of the youngest TRAINING atlases (GA 21, 22, 24; never
the held-out ones), where the localiser's coarse grid misjudges the small brain most often, the shipped estimator
with and without the retries it makes when a pose's confidence is low: cubes for the region network cut for other
brain sizes (estimate.RESCALES), then the brain localised again on a zoomed cube (estimate.ZOOM).

Writes ``benchmarks/results/pose_fallbacks.txt``.

    python benchmarks/pose_fallbacks.py [--volumes 60] [--seed 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pose as pose_benchmark  # noqa: E402  (test volumes and the geodesic, as benchmarks/pose.py makes them)

ATLASES = ("fetal_SB_atlas_GA21_notoperated", "fetal_SB_atlas_GA22_notoperated", "fetal_SB_atlas_GA24_notoperated")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--volumes", type=int, default=60, help="scouts per atlas")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    if not pose_benchmark.ATLASES.is_dir():
        sys.exit(f"fetal atlases not found at {pose_benchmark.ATLASES}")

    import torch

    from mrmotion.pose import estimate, synth
    from mrmotion.pose.train import HELD_OUT

    if set(ATLASES) & set(HELD_OUT):
        sys.exit(f"{sorted(set(ATLASES) & set(HELD_OUT))} are held out: the retries must be chosen on training atlases")
    torch.set_num_threads(2)
    model = estimate.PoseModel.load()
    shipped = estimate.RESCALES, estimate.ZOOM
    settings = {
        "no retries": ((), 0.0),
        f"retries at {shipped[0]} x the localiser's brain size": (shipped[0], 0.0),
        f"shipped: those, then the localiser zoomed to {shipped[1]:g} brain sizes": shipped,
    }
    results = {name: {"errors": [], "confidence": [], "seconds": []} for name in settings}
    rng = np.random.default_rng(args.seed)
    started = time.time()
    for atlas in ATLASES:
        _, t2 = synth.fetal_t2_subject(pose_benchmark.ATLASES / atlas)
        for _ in range(args.volumes):
            data, grid, truth = pose_benchmark.test_volume(t2, rng)
            for name, (rescales, zoom) in settings.items():
                estimate.RESCALES, estimate.ZOOM = rescales, zoom
                tick = time.perf_counter()
                try:
                    result = estimate.estimate_pose(data, grid, model)
                    error, confidence = pose_benchmark.geodesic_deg(result.scanner_from_head, truth), result.confidence
                except Exception:  # no brain found: a failure
                    error, confidence = 180.0, 0.0
                results[name]["seconds"].append(time.perf_counter() - tick)
                results[name]["errors"].append(error)
                results[name]["confidence"].append(confidence)
    estimate.RESCALES, estimate.ZOOM = shipped
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')} · {time.time() - started:.0f} s · command: python "
        f"benchmarks/pose_fallbacks.py --volumes {args.volumes} --seed {args.seed}",
        f"{args.volumes} scouts each of {', '.join(ATLASES)} (training atlases), 3 mm, clutter and degradations",
        f"retried below confidence {estimate.LOW_CONFIDENCE}",
        "setting | median (deg) | p95 (deg) | failures (> 30 deg) | confidence < 0.5 | failures among confidence >= 0.5"
        " | s / volume",
    ]
    for name, r in results.items():
        errors, confidence = np.array(r["errors"]), np.array(r["confidence"])
        confident = confidence >= estimate.LOW_CONFIDENCE
        lines.append(
            f"{name} | {np.median(errors):.1f} | {np.percentile(errors, 95):.1f} | {np.mean(errors > 30):.1%} | "
            f"{np.mean(~confident):.1%} | {np.mean(errors[confident] > 30) if confident.any() else 0:.1%} | "
            f"{np.mean(r['seconds']):.2f}"
        )
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).resolve().parent / "results" / "pose_fallbacks.txt"
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
