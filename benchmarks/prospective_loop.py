"""The prospective loop, simulated: navigator → pose → re-prescribed slice, along a moving fetal head.

A held-out fetal atlas moves during a 2-D multi-slice scan (slow drift plus sudden jumps, up to 20° and 10 mm,
starting from a random orientation). Before each slice a 3-D navigator (3 mm scout with clutter and degradations,
:func:`mrmotion.pose.synth.scout_volume`) is simulated at the head's pose of that moment and its pose is estimated;
the slice is then prescribed in the head's axial plane at that estimate and acquired ``--lag`` seconds later.

Compared, for every slice: the angle between the acquired slice and the true anatomical plane, and the distance
between them along the plane's normal, for
* no loop: the whole stack prescribed once from the first navigator;
* loop, every navigator: each slice from its own navigator's pose estimate, whatever its confidence;
* loop, confident only: the same, but a navigator whose pose has confidence below 0.5 leaves the slices at the last
  confident pose (``mrmotion.pose.prospective.pose_to_follow``; what `mrmotion prescribe` does by default);
* loop with the true pose at navigator time (what a perfect estimator would give: only the lag remains).

Writes ``benchmarks/results/prospective_loop.{txt,json,png}``.

    python benchmarks/prospective_loop.py [--slices 40] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ATLASES = ROOT.parent / "shared" / "data" / "fetal_atlas_spina_bifida"
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atlas", default="fetal_SB_atlas_GA28_operated", help="held-out atlas to move")
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--slice-time", type=float, default=2.0, help="seconds per slice")
    parser.add_argument("--lag", type=float, default=0.5, help="seconds from navigator to slice")
    parser.add_argument("--plane", default="axial", choices=["axial", "coronal", "sagittal"])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not (ATLASES / args.atlas).is_dir():
        sys.exit(f"atlas not found: {ATLASES / args.atlas}")

    import torch
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from mrmotion.physics.motion_models import drift, sudden
    from mrmotion.pose import synth
    from mrmotion.pose.estimate import default_model, estimate_pose
    from mrmotion.pose.prospective import anatomical_slices, plane_error, pose_to_follow

    torch.set_num_threads(2)
    console = Console(record=True, width=140)
    rng = np.random.default_rng(args.seed)
    _, t2 = synth.fetal_t2_subject(ATLASES / args.atlas)
    start = np.eye(4)
    start[:3, :3] = synth.random_rotation(rng)
    duration = args.slices * args.slice_time
    centre = start[:3, 3]
    slow = drift(0, duration, 8.0, 4.0, centre_mm=centre, seed=args.seed)
    jumps = sudden(0, duration, 15.0, 8.0, rate_large=2, rate_small=4, centre_mm=centre, seed=args.seed + 1)

    def true_pose(t: float) -> np.ndarray:
        return jumps.at([t])[0] @ slow.at([t])[0] @ start

    model = default_model()
    spacing, thickness, fov = 3.5, 3.0, (180.0, 180.0)
    count = args.slices

    def stack(pose: np.ndarray):
        return anatomical_slices(pose, args.plane, count, spacing, fov, thickness)

    first = estimate_pose(*synth.scout_volume(t2, true_pose(0.0), rng), model).scanner_from_head
    fixed = stack(first)
    followed = first  # the pose the confident-only loop acts on
    rows = []
    seconds = []
    for k in track(range(count), description="slices", console=console):
        navigator_time = k * args.slice_time
        acquired_time = navigator_time + args.lag
        truth_then = true_pose(navigator_time)
        truth_now = true_pose(acquired_time)
        navigator = synth.scout_volume(t2, truth_then, rng)
        tick = time.perf_counter()  # the pose only: rendering the navigator is the simulation's, not the loop's
        estimate = estimate_pose(*navigator, model)
        seconds.append(time.perf_counter() - tick)
        offset = (k - (count - 1) / 2) * spacing
        followed = pose_to_follow(followed, estimate.scanner_from_head, estimate.confidence)
        modes = {
            "no loop": fixed[k],
            "loop (our pose, every navigator)": stack(estimate.scanner_from_head)[k],
            "loop (our pose, confident only)": stack(followed)[k],
            "loop (true pose at navigator)": stack(truth_then)[k],
        }
        row = {"slice": k, "time_s": acquired_time, "confidence": estimate.confidence}
        for name, prescribed in modes.items():
            row[name] = plane_error(prescribed, truth_now, args.plane, offset)
        moved = truth_now @ np.linalg.inv(start)
        row["head_rotation_deg"] = float(np.degrees(np.arccos(np.clip((np.trace(moved[:3, :3]) - 1) / 2, -1, 1))))
        rows.append(row)
    names = list(modes)
    table = Table(
        title=f"Prospective loop, {args.atlas}, {count} {args.plane} slices, {args.slice_time:g} s each, "
        f"navigator {args.lag:g} s before each slice; head moved up to "
        f"{max(r['head_rotation_deg'] for r in rows):.1f}°"
    )
    for column in ("prescription", "angle median (°)", "angle max (°)", "offset median (mm)", "offset max (mm)"):
        table.add_column(column, justify="left" if column == "prescription" else "right")
    summary = {}
    for name in names:
        angles = np.array([r[name][0] for r in rows])
        offsets = np.array([r[name][1] for r in rows])
        summary[name] = {
            "angle_median_deg": float(np.median(angles)),
            "angle_max_deg": float(angles.max()),
            "offset_median_mm": float(np.median(offsets)),
            "offset_max_mm": float(offsets.max()),
        }
        s = summary[name]
        table.add_row(
            name,
            f"{s['angle_median_deg']:.1f}",
            f"{s['angle_max_deg']:.1f}",
            f"{s['offset_median_mm']:.1f}",
            f"{s['offset_max_mm']:.1f}",
        )
    console.print(table)
    console.print(f"pose estimation: {np.median(seconds):.2f} s per navigator (median)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = f"python benchmarks/prospective_loop.py {' '.join(sys.argv[1:])}"
    header = f"# {time.strftime('%Y-%m-%d %H:%M')} · command: {command}\n"
    (RESULTS / "prospective_loop.txt").write_text(header + console.export_text())
    (RESULTS / "prospective_loop.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    times = [r["time_s"] for r in rows]
    axes[0].plot(times, [r["head_rotation_deg"] for r in rows], color="black")
    axes[0].set_title("head rotation from the start (°)")
    for name, style in zip(names, ["-", "-o", "-s", ":"], strict=True):
        axes[1].plot(times, [r[name][0] for r in rows], style, label=name, markersize=3)
        axes[2].plot(times, [r[name][1] for r in rows], style, label=name, markersize=3)
    axes[1].set_title("slice vs anatomical plane: angle (°)")
    axes[2].set_title("slice vs anatomical plane: offset (mm)")
    for axis in axes:
        axis.set_xlabel("time (s)")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(RESULTS / "prospective_loop.png", dpi=120)
    console.print(f"wrote {RESULTS}/prospective_loop.txt/.json/.png")


if __name__ == "__main__":
    main()
