"""How much the exact coil model's pose clusters cost in accuracy, for continuous motion (issue 3).

Coils fixed in the scanner weight the object differently at every pose; ``MotionEncoding`` evaluates that weighting
once per *cluster* of close poses, at most ``MAX_CLUSTERS`` of them. When that cap binds, the clusters are fitted by
k-means (``coil_weighting.fit_clusters``: the greedy clusters at the smallest tolerance that fits and 8 k-means++
seedings, each refined, the best kept), each state weighted by the expected signal energy of its samples
(``coil_weighting.expected_energy`` of the image, as ``mrmotion simulate`` does; the default since 2026-11-25), and
each cluster's coils are evaluated at its states' mean pose. Compared with the same fit weighting states by their
number of samples, and with the default before 2026-11-25 (the greedy clusters refined by k-means, weighted by
samples).

On a small 3-D grid (24×22×20 voxels of 4 mm; a head-like object: random texture inside an ellipsoid of 0.8 of the half-
extents, whose spectrum is flat: the signal is not concentrated near the k-space centre as in a real head; 8 loop coils
placed as ``mrmotion simulate`` places them, :func:`~mrmotion.physics.coils.head_array`; linear 3-D Cartesian order),
the k-space of a 300-state random walk of the head (steps of 0.8° and 0.5 mm per axis, s.d.), and a continuous motion
(300 states interpolated linearly between 12 key poses uniform in ±8° and ±8 mm per axis), simulated with caps of 8, 16
(the default since 2026-11-25), 32, 64 and 256 clusters against the same model with one weighting per state (no
clustering, no truncation): relative error of all samples and the largest corner distance of a state from the pose its
coils were evaluated at. For scale, the error of the approximation "coils move with the head" on the same motion. Then
the same 64 clusters compressed into one group of low rank (the SVD of their coil weightings truncated at a relative
singular value): its rank, i.e. how many NUFFTs over all samples it costs (the default planner evaluates 64 × 8 coil
weightings, each over its cluster's samples only), and its error. Last, the simulation benchmark's own one-state-per-
line motion on the MNI152 template at 6 mm (a real head's spectrum), the three placements side by side, and its
32-state motion (piecewise constant, 28 states seen at 6 mm) at caps of 8 and 16.

Until 2026-11-24 the object filled the whole grid and the loops sat on a cylinder of 80 mm radius, which the grid's
corners (76 mm from its centre) nearly touched: since the coil weightings are interpolated from nodes reaching beyond
the grid, that measured interpolation across the coil wires, not clustering (results in git history).

    python benchmarks/coil_cluster_error.py
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

RESULT = Path(__file__).resolve().parent / "results" / "coil_cluster_error.txt"
#: The benchmark motion's errors, for ``benchmarks/coil_pose_tradeoff.py``.
RESULT_JSON = RESULT.with_suffix(".json")


#: How capped coil poses are placed, as compared: the default, and two older ways.
PLACING_NAMES = {
    "energy": "error",  # k-means++ seedings and the greedy start, each state weighted by its samples' expected energy
    "samples": "error_samples",  # the same, each state weighted by its number of samples
    "before": "error_before",  # the greedy clusters refined by k-means, weighted by samples (2026-11-24 default)
}
PLACINGS = (
    "signal-weighted fit (the default: k-means++ seedings and greedy start, states weighted by the expected energy "
    "of their samples) | the same fit, states weighted by their number of samples | before 2026-11-25 (greedy "
    "clusters refined by k-means, weighted by samples)"
)


@contextmanager
def poses_placed(placing: str):
    """``MotionEncoding`` places capped coil poses as ``placing`` says while in this block (see
    :data:`PLACING_NAMES`; the default needs ``sample_energy`` passed as well)."""
    import mrmotion.physics.coil_weighting as coil_weighting
    import mrmotion.physics.encoding as encoding

    fitted = encoding.fit_clusters

    def before(grid, transforms, weights, count, starts):
        return coil_weighting.refine_clusters(grid, transforms, starts[0], weights)

    encoding.fit_clusters = before if placing == "before" else fitted
    try:
        yield
    finally:
        encoding.fit_clusters = fitted


def main() -> None:
    import mrmotion.physics.coil_weighting as coil_weighting
    import mrmotion.physics.encoding as encoding
    from mrmotion.geometry.parameters import transform_from_euler
    from mrmotion.geometry.transforms import make_transform
    from mrmotion.physics.coils import head_array
    from mrmotion.physics.sampling import cartesian
    from mrmotion.physics.trajectory import MotionTrajectory

    rng = np.random.default_rng(0)
    shape = (24, 22, 20)
    grid = encoding.ImageGrid(shape, np.diag([4.0, 4.0, 4.0, 1.0]) @ make_transform(np.eye(3), [-12.0, -11.0, -10.0]))
    half = (np.array(shape) - 1) / 2
    inside = sum(((np.indices(shape) - half[:, None, None, None]) / (0.8 * half[:, None, None, None])) ** 2) <= 1
    image = rng.random(shape) * inside
    sampling = cartesian(shape, (4.0, 4.0, 4.0), mode="3d", order="linear", tr_s=0.01)
    states = 300
    times = np.linspace(0.0, sampling.time_s.max(), states)
    walk_degrees = np.cumsum(rng.normal(size=(states, 3)) * 0.8, axis=0)
    walk_millimetres = np.cumsum(rng.normal(size=(states, 3)) * 0.5, axis=0)
    keys, fraction = np.linspace(0.0, 1.0, 12), np.linspace(0.0, 1.0, states)
    key_degrees, key_millimetres = rng.uniform(-8.0, 8.0, (12, 3)), rng.uniform(-8.0, 8.0, (12, 3))
    motions = {
        "300-state random walk": (walk_degrees, walk_millimetres),
        "continuous motion through 12 key poses": tuple(
            np.stack([np.interp(fraction, keys, key[:, axis]) for axis in range(3)], axis=1)
            for key in (key_degrees, key_millimetres)
        ),
    }
    coils = head_array(grid, 8)
    energy = coil_weighting.expected_energy(image, grid, sampling.k_logical)  # as mrmotion simulate estimates it

    def simulate(motion, cap: int, one_group: bool = False, placing: str = "energy", **options):
        encoding.MAX_CLUSTERS = cap
        planned = coil_weighting.GROUP_TOLERANCES_MM
        coil_weighting.GROUP_TOLERANCES_MM = (np.inf,) if one_group else planned
        try:
            with poses_placed(placing):
                operator = encoding.MotionEncoding(
                    grid, sampling.k_logical, sampling.time_s, motion, coils, eps=1e-9,
                    sample_energy=energy if placing == "energy" else None, **options,
                )  # fmt: skip
        finally:
            coil_weighting.GROUP_TOLERANCES_MM = planned
        return operator.forward(image), operator

    lines = []
    for name, (degrees, millimetres) in motions.items():
        motion = MotionTrajectory(times, transform_from_euler(degrees, millimetres), end_s=sampling.time_s.max() + 1)
        reference, _ = simulate(motion, 100_000, cluster_tol_mm=0.0, rank_tol=1e-12)

        def error(data, reference=reference):
            return np.linalg.norm(data - reference) / np.linalg.norm(reference)

        moving = error(simulate(motion, 64, coil_model="moving")[0])
        lines += [
            f"{name} (largest excursion {np.abs(degrees - degrees[0]).max():.1f}° and "
            f"{np.abs(millimetres - millimetres[0]).max():.1f} mm from the start), 8 loop coils (head_array), "
            f"24×22×20 × 4 mm, ellipsoidal object of random texture (a flat spectrum: the signal is not near the "
            f"k-space centre); coils moving with the head: k-space error {moving:.4f}",
            f"cap on clusters | clusters | k-space error vs one weighting per state: {PLACINGS} "
            "(largest state-pose distance, mm)",
        ]
        for cap in (8, 16, 32, 64, 256):
            row = [f"{cap:>15}"]
            for placing in PLACING_NAMES:
                data, operator = simulate(motion, cap, placing=placing)
                if placing == "energy":
                    row.append(f"{operator.clusters:>8}")
                row.append(f"{error(data):.4f} ({operator.coil_pose_distance_mm:5.2f})")
            lines.append(" | ".join(row))
            print(lines[-1], flush=True)
        lines.append("")
        if name.startswith("300"):
            lines.append("64 clusters in one group of low rank | rank (NUFFTs over all samples) | k-space error")
            for rank_tol in (1e-3, 1e-2, 3e-2):
                data, operator = simulate(motion, 64, one_group=True, rank_tol=rank_tol)
                rank = sum(group.weights_u.shape[-1] for group in operator._groups)
                lines.append(f"{f'singular values > {rank_tol:g} of the largest':>36} | {rank:>30} | {error(data):.4f}")
            lines.append("")
    benchmark_lines, benchmark_errors = benchmark_motion()
    lines += benchmark_lines + [""]
    # piecewise-constant motion with more states than the default cap (exact, one weighting per state, up to it)
    states_lines, states_errors = benchmark_motion(32, caps=(8, 16))
    lines += states_lines
    RESULT_JSON.write_text(
        json.dumps({"benchmark_motion": benchmark_errors, "benchmark_motion_32_states": states_errors}, indent=1)
    )
    text = "\n".join(lines)
    print(text)
    RESULT.write_text(f"# python benchmarks/coil_cluster_error.py\n{text}\n")


def benchmark_motion(states="line", caps=(8, 16, 32, 64)) -> tuple[list[str], dict]:
    """The same comparison on a motion of ``benchmarks/simulate_vs_torchio.py`` (``states``: ``"line"``, its
    one-state-per-line case, 32 key poses uniform in ±5° and ±5 mm interpolated line by line; or a number of
    piecewise-constant states) and its object, the MNI152 template, at 6 mm (the 2-mm template averaged over 3³
    blocks: 1,209 lines) so that one coil weighting per state stays affordable; 8 loop coils as ``mrmotion simulate``
    places them. Returns the table's lines and its numbers (for :data:`RESULT_JSON`)."""
    import mrmotion.physics.coil_weighting as coil_weighting
    import mrmotion.physics.encoding as encoding
    from mrmotion.physics.coils import head_array
    from mrmotion.physics.sampling import cartesian
    from simulate_vs_torchio import LPS_FROM_RAS, TR_S, our_motion, template

    data, affine = template(2)
    shape = tuple(n // 3 for n in data.shape)
    blocks = data[: 3 * shape[0], : 3 * shape[1], : 3 * shape[2]].reshape(shape[0], 3, shape[1], 3, shape[2], 3)
    image = blocks.mean(axis=(1, 3, 5)).astype(np.complex128)
    scaled = affine @ np.diag([3.0, 3.0, 3.0, 1.0])
    scaled[:3, 3] = affine[:3, :3] @ np.full(3, 1.0) + affine[:3, 3]  # the first block's centre
    grid = encoding.ImageGrid(shape, LPS_FROM_RAS @ scaled)
    voxel = tuple(np.linalg.norm(scaled[:3, :3], axis=0))
    sampling = cartesian(shape, voxel, mode="3d", order="linear", tr_s=TR_S)
    motion = our_motion(states, shape, sampling)
    coils = head_array(grid, 8)

    def per_cluster(grid, poses, weights, samples, rank_tol, max_rank=None):  # no Gram matrix of 10⁴ weightings
        return [
            coil_weighting.CoilGroup(np.array([k]), *coil_weighting.compress(weights[[k]], rank_tol))
            for k in range(len(poses))
        ]

    def forward(**options):
        planner = encoding.plan_groups
        encoding.plan_groups = per_cluster if options.pop("per_cluster", False) else planner
        try:
            operator = encoding.MotionEncoding(grid, sampling.k_logical, sampling.time_s, motion, coils, **options)
        finally:
            encoding.plan_groups = planner
        return operator.forward(image), operator

    reference, used = forward(max_clusters=len(motion), cluster_tol_mm=0.0, rank_tol=1e-12, per_cluster=True)

    def error(data):
        return np.linalg.norm(data - reference) / np.linalg.norm(reference)

    moving = error(forward(coil_model="moving")[0])
    lines = [
        f"the simulation benchmark's {'one-state-per-line motion' if states == 'line' else f'{states}-state motion'}"
        f" ({used.states:,} states seen by the samples here), MNI152 at 6 mm "
        f"({'×'.join(map(str, shape))}), 8 loop coils (head_array); coils moving with the head: k-space error "
        f"{moving:.4f}",
    ]
    energy = coil_weighting.expected_energy(image, grid, sampling.k_logical)
    errors = {"states": used.states, "shape": list(shape), "moving": moving, "caps": {}}
    lines.append(f"cap on clusters | clusters | {PLACINGS} (largest / signal-weighted rms state-pose distance, mm)")
    for cap in caps:
        row, errors["caps"][cap] = [f"{cap:>15}"], {}
        for placing, key in PLACING_NAMES.items():
            with poses_placed(placing):
                data, operator = forward(max_clusters=cap, sample_energy=energy if placing == "energy" else None)
            if placing == "energy":
                row.append(f"{operator.clusters:>8}")
                errors["caps"][cap].update(
                    clusters=operator.clusters,
                    distance_mm=operator.coil_pose_distance_mm,
                    rms_mm=operator.coil_pose_rms_mm,
                )
            errors["caps"][cap][key] = error(data)
            row.append(f"{error(data):.4f} ({operator.coil_pose_distance_mm:5.2f} / {operator.coil_pose_rms_mm:5.2f})")
        lines.append(" | ".join(row))
        print(lines[-1], flush=True)
    return lines, errors


if __name__ == "__main__":
    main()
