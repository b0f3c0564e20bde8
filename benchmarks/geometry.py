"""Geometry benchmark: per-slice motion throughput and latency, and orthonormality drift of long chains.

Prints one table. Anchors, in the same run:
* B_i(t) = Y_i A(t) Y_i⁻¹ for 10⁶ slice × time pairs: ``logical_motion`` (vectorised) vs a plain Python loop of
  per-update scipy ``Rotation`` calls (timed on a subset, reported per update);
* one update through the public function (with its input checks), in µs;
* rotation drift ``max|RᵀR − I|`` after 10⁶ chained compositions, without and with re-orthonormalisation
  (``orthonormalize`` every 1,000 compositions; drift measured at the end, 1,000 compositions after the last one).

Run: ``python benchmarks/geometry.py`` (about 30 s on 2 cores).
"""

from __future__ import annotations

import time
import timeit

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.spatial.transform import Rotation

from mrmotion.geometry.motion import logical_motion
from mrmotion.geometry.parameters import transform_from_rotvec
from mrmotion.geometry.transforms import make_transform, orthonormalize, rigidity_error


def random_rigid(rng: np.random.Generator, count: int) -> np.ndarray:
    return make_transform(Rotation.random(count, random_state=rng).as_matrix(), rng.normal(scale=50, size=(count, 3)))


def scipy_loop(calibration: np.ndarray, motion: np.ndarray, times: int, slices: int) -> float:
    """Seconds per update for a plain loop of per-update scipy calls (the way one writes it without batching)."""
    rotations_y = [Rotation.from_matrix(y[:3, :3]) for y in calibration[:slices]]
    rotations_a = [Rotation.from_matrix(a[:3, :3]) for a in motion[:times]]
    start = time.perf_counter()
    for t in range(times):
        rotation_a, translation_a = rotations_a[t], motion[t, :3, 3]
        for i in range(slices):
            rotation_y, translation_y = rotations_y[i], calibration[i, :3, 3]
            rotation_b = rotation_y * rotation_a * rotation_y.inv()
            translation_b = rotation_y.apply(translation_a) + translation_y - rotation_b.apply(translation_y)
            out = np.eye(4)
            out[:3, :3] = rotation_b.as_matrix()
            out[:3, 3] = translation_b
    return (time.perf_counter() - start) / (times * slices)


def chain_drift(steps: int, every: int | None, rng: np.random.Generator) -> float:
    """max |RᵀR − I| (and |det − 1|) after ``steps`` compositions with small random motions."""
    motions = transform_from_rotvec(rng.normal(scale=0.01, size=(1000, 3)), rng.normal(scale=0.1, size=(1000, 3)))
    pose = np.eye(4)
    for step in range(1, steps + 1):
        pose = pose @ motions[step % 1000]
        if every is not None and step % every == 0 and step != steps:
            pose = orthonormalize(pose)
    return float(rigidity_error(pose))


def main() -> None:
    rng = np.random.default_rng(0)
    times, slices = 1000, 1000
    calibration, motion = random_rigid(rng, slices), random_rigid(rng, times)

    logical_motion(calibration, motion)  # warm up
    runs = [timeit.timeit(lambda: logical_motion(calibration, motion), number=1) for _ in range(5)]
    vectorised = min(runs) / (times * slices)
    loop = scipy_loop(calibration, motion, 50, 200)
    single_y, single_a = calibration[0], motion[0]
    latency = min(timeit.repeat(lambda: logical_motion(single_y, single_a), number=2000, repeat=5)) / 2000

    drift_plain = chain_drift(1_000_000, None, np.random.default_rng(1))
    drift_fixed = chain_drift(1_000_000, 1000, np.random.default_rng(1))

    table = Table(title="mrmotion geometry benchmark (this machine)")
    for column in ("measure", "mrmotion", "anchor", "ratio", "target"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    table.add_row(
        "B_i(t) updates per second (10⁶ pairs)",
        f"{1 / vectorised:,.0f}",
        f"{1 / loop:,.0f} (scipy loop)",
        f"{loop / vectorised:,.0f}×",
        "≥ 10⁶/s, ≥ 100×",
    )
    table.add_row("single update latency (public function)", f"{latency * 1e6:.1f} µs", "", "", "≤ 50 µs")
    table.add_row(
        "drift after 10⁶ compositions",
        f"{drift_fixed:.1e} (re-orthonormalised)",
        f"{drift_plain:.1e} (plain)",
        f"{drift_plain / max(drift_fixed, 1e-300):,.0f}×",
        "≤ 1e-12",
    )
    Console(width=130).print(table)


if __name__ == "__main__":
    main()
