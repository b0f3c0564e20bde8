"""Speed against accuracy of the coil models for long motion (issue 3): one figure from two benchmarks' results.

For one state per phase-encode line of the 1-mm MNI152 with 8 coils, the time of the simulation
(``benchmarks/simulate_vs_torchio.py``: the exact model at its default 16 coil poses, capped at 64 and 8 with
``mrmotion simulate --coil-clusters``, and coils moving with the head) against the k-space error of each model on the
same motion (``benchmarks/coil_cluster_error.py``, MNI152 at 6 mm against one coil weighting per state; the error of
a cap does not depend on the resolution much, its time does). Also the time growth from 2 motion states (target
≤ 1.5×). Reads ``results/simulate_vs_torchio.json`` and ``results/coil_cluster_error.json``; writes
``results/coil_pose_tradeoff.png`` and prints the table. Run the two benchmarks first.

    python benchmarks/coil_pose_tradeoff.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FIGURE = RESULTS / "coil_pose_tradeoff.png"


def points() -> list[dict]:
    """One dict per model: label, seconds (1 mm, one state per line), growth (vs 2 states, exact), error."""
    try:
        timing = json.loads((RESULTS / "simulate_vs_torchio.json").read_text())
        errors = json.loads((RESULTS / "coil_cluster_error.json").read_text())["benchmark_motion"]
    except (OSError, KeyError, json.JSONDecodeError) as problem:
        sys.exit(f"need the results of simulate_vs_torchio.py and coil_cluster_error.py in {RESULTS}: {problem}")
    line, two = timing["rows"]["line"], timing["rows"]["2"]
    models = [
        ("exact, ≤ 64 coil poses", line.get("ours8_cap64"), two.get("ours8"), errors["caps"].get("64")),
        ("exact, 16 coil poses (default)", line.get("ours8"), two.get("ours8"), errors["caps"].get("16")),
        ("exact, ≤ 8 coil poses", line.get("ours8_cap8"), two.get("ours8"), errors["caps"].get("8")),
        ("coils moving with the head", line.get("ours8_moving"), two.get("ours8_moving"), {"error": errors["moving"]}),
    ]
    rows = []
    for label, run, start, error in models:
        if not (run and "seconds" in run and start and "seconds" in start and error):
            continue
        rows.append(
            {
                "label": label,
                "seconds": run["seconds"],
                "growth": run["seconds"] / start["seconds"],
                "start": start["seconds"],
                "error": error["error"],
            }
        )
    return rows


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = points()
    if not rows:
        sys.exit("no model has both a time and an error in the results")
    print(f"{'model':<32} {'seconds':>8} {'growth':>7} {'k-space error':>14}")
    for row in rows:
        print(f"{row['label']:<32} {row['seconds']:>8.1f} {row['growth']:>6.2f}× {100 * row['error']:>13.1f}%")
    figure, axis = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    for index, row in enumerate(rows):
        axis.plot(row["seconds"], 100 * row["error"], "o", color="tab:red" if "moving" in row["label"] else "tab:blue")
        axis.annotate(
            f"{row['label']}\n{row['growth']:.2f}× the 2-state time",
            (row["seconds"], 100 * row["error"]),
            textcoords="offset points",
            xytext=(6, 6 if index % 2 == 0 else -22),  # alternate above and below: neighbours do not overlap
            fontsize=8,
        )
    target = 1.5 * rows[0]["start"]  # the exact model's 2-state time × 1.5: the growth target
    axis.axvline(target, color="grey", linestyle="--", linewidth=1)
    top = 1.25 * 100 * max(row["error"] for row in rows)
    axis.text(target, 0.93 * top, " 1.5× the exact model's\n 2-state time (target)", fontsize=8, color="grey", va="top")
    axis.set_xlabel("simulation time, 1 mm MNI152, 8 coils, one state per line (s)")
    axis.set_ylabel("k-space error vs one coil weighting per state (%)")
    axis.set_title("Coils fixed in the scanner: speed against accuracy", fontsize=10)
    axis.set_xlim(0, 1.35 * max(row["seconds"] for row in rows))
    axis.set_ylim(-0.12 * top, top)  # room for the labels below the lowest points
    axis.grid(alpha=0.3)
    figure.savefig(FIGURE, dpi=120)
    print(f"wrote {FIGURE}")


if __name__ == "__main__":
    main()
