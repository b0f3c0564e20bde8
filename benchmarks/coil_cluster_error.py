"""How much the exact coil model's pose clusters cost in accuracy, for continuous motion (issue 3).

Coils fixed in the scanner weight the object differently at every pose; ``MotionEncoding`` evaluates that weighting
once per *cluster* of close poses (at its central state), at most ``MAX_CLUSTERS`` of them (the smallest tolerance
that fits: doubling, then bisection).
This compares, on a small 3-D grid (24×22×20 voxels of 4 mm, 8 loop coils, linear 3-D Cartesian order), the k-space
of a 300-state random walk of the head (steps of 0.8° and 0.5 mm per axis, s.d.) simulated with caps of 16, 32, 64
(the default) and 256 clusters against the same model with one weighting per state (no clustering, no truncation):
relative error of all samples, and the cluster tolerance reached.

    python benchmarks/coil_cluster_error.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RESULT = Path(__file__).resolve().parent / "results" / "coil_cluster_error.txt"


def main() -> None:
    import mrmotion.physics.encoding as encoding
    from mrmotion.geometry.parameters import transform_from_euler
    from mrmotion.geometry.transforms import make_transform
    from mrmotion.physics.coils import loop_coils
    from mrmotion.physics.sampling import cartesian
    from mrmotion.physics.trajectory import MotionTrajectory

    rng = np.random.default_rng(0)
    shape = (24, 22, 20)
    grid = encoding.ImageGrid(shape, np.diag([4.0, 4.0, 4.0, 1.0]) @ make_transform(np.eye(3), [-12.0, -11.0, -10.0]))
    image = rng.random(shape)
    sampling = cartesian(shape, (4.0, 4.0, 4.0), mode="3d", order="linear", tr_s=0.01)
    states = 300
    times = np.linspace(0.0, sampling.time_s.max(), states)
    degrees = np.cumsum(rng.normal(size=(states, 3)) * 0.8, axis=0)
    millimetres = np.cumsum(rng.normal(size=(states, 3)) * 0.5, axis=0)
    motion = MotionTrajectory(times, transform_from_euler(degrees, millimetres), end_s=sampling.time_s.max() + 1.0)
    coils = loop_coils(8, head_radius_mm=80.0, centre_mm=np.zeros(3), rings=2)

    def simulate(cap: int, **options) -> tuple[np.ndarray, encoding.MotionEncoding]:
        encoding.MAX_CLUSTERS = cap
        operator = encoding.MotionEncoding(
            grid, sampling.k_logical, sampling.time_s, motion, coils, "exact", eps=1e-9, **options
        )
        return operator.forward(image), operator

    reference, _ = simulate(100_000, cluster_tol_mm=0.0, rank_tol=1e-12)
    lines = [
        f"300-state random walk (largest excursion {np.abs(degrees - degrees[0]).max():.1f}° and "
        f"{np.abs(millimetres - millimetres[0]).max():.1f} mm from the start), 8 loop coils, 24×22×20 × 4 mm",
        "cap on clusters | clusters used | cluster tolerance (mm) | k-space error vs one weighting per state",
    ]
    for cap in (16, 32, 64, 256):
        data, operator = simulate(cap)
        error = np.linalg.norm(data - reference) / np.linalg.norm(reference)
        lines.append(f"{cap:>15} | {operator.clusters:>13} | {operator.cluster_tol_mm:>22.2f} | {error:.4f}")
    text = "\n".join(lines)
    print(text)
    RESULT.write_text(f"# python benchmarks/coil_cluster_error.py\n{text}\n")


if __name__ == "__main__":
    main()
