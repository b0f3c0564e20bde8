"""Known-motion CG-SENSE: exact coil model vs coils moving with the head, and the exact model warm-started.

The 8-state, 8-coil scan of ``simulate_vs_torchio.py`` (MNI152, exact coil model, no noise) is reconstructed three
ways with the same λ (1e-4 of the largest eigenvalue of the moving model's EᴴE) and the same preconditioner as
``sense_reconstruction``: the moving model (EᴴE a Toeplitz convolution), the exact model from zero, and the exact
model from the moving model's solution (its first residual costs one E and one Eᴴ). Prints the NRMSE of |x| against
the clean template inside the head after every iteration, and the time of each run. Question it answers: would a
warm start make the exact model's reconstruction cheap enough (the 1 mm target is 5 min)? It did:
``sense_reconstruction`` now runs the exact model this way (and on the object's box), measured by
``simulate_vs_torchio.py``; this study keeps the whole grid and the operators built by hand.

    python benchmarks/recon_warm_start.py            # 2 mm (99×117×95), about 3 minutes
    python benchmarks/recon_warm_start.py --mm 1     # 1 mm, about 25 minutes

Writes ``benchmarks/results/recon_warm_start_{mm}mm.txt``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    import simulate_vs_torchio as bench
    from mrmotion.physics.coil_weighting import coil_maps_on_grid
    from mrmotion.physics.coils import GridCoilMaps
    from mrmotion.physics.encoding import MotionEncoding
    from mrmotion.physics.simulate import acquisition_frame, simulate
    from mrmotion.recon.reconstruct import acquisition_grid
    from mrmotion.recon.sense import largest_eigenvalue

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mm", type=int, default=2, choices=(1, 2), help="template resolution")
    parser.add_argument("--iterations", type=int, default=10, help="CG iterations from zero")
    parser.add_argument("--refine", type=int, default=3, help="exact-model iterations after the moving model")
    args = parser.parse_args()
    clean, _, grid, sampling, motion = bench.scan_setup(args.mm, 8)
    coils = bench.head_coils(grid)
    eps, dtype = bench.precision(clean.size)
    scan = simulate(clean, grid, sampling, motion, coils, None, "exact", 0, eps, dtype)
    frame = acquisition_frame(grid)
    recon_grid = acquisition_grid(sampling, frame)
    maps = GridCoilMaps(scan.coil_maps, recon_grid.scanner_from_voxel)
    k = (frame[:3, :3] @ sampling.k_logical.T).T
    inside = clean > 0.05 * clean.max()
    power = np.sum(np.abs(coil_maps_on_grid(maps, recon_grid)) ** 2, axis=0)
    weight = 1.0 / np.maximum(power, 0.05 * power.max())
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    def nrmse(x: np.ndarray) -> float:
        return float(np.linalg.norm((np.abs(x) - clean)[inside]) / np.linalg.norm(clean[inside]))

    def operator(model: str) -> MotionEncoding:
        return MotionEncoding(
            recon_grid, k, sampling.time_s, motion, maps, model, eps=eps, dtype=dtype, origin_mm=frame[:3, 3]
        )

    def cg(encoding: MotionEncoding, iterations: int, lam: float, tag: str, start: np.ndarray | None = None):
        """Preconditioned CG on (EᴴE + λ) x = Eᴴ y, as ``cg_sense``, from ``start`` (or zero)."""
        began = time.perf_counter()
        if start is None:
            x = np.zeros(recon_grid.shape, dtype=dtype)
            residual = encoding.adjoint(scan.data)
        else:
            x = start.astype(dtype)
            residual = encoding.adjoint(scan.data - encoding.forward(x)) - lam * x
        preconditioned = weight * residual
        direction = preconditioned.copy()
        energy = float(np.real(np.vdot(residual, preconditioned)))
        errors = []
        for _ in range(iterations):
            applied = encoding.normal(direction) + lam * direction
            step = energy / float(np.real(np.vdot(direction, applied)))
            x += step * direction
            residual -= step * applied
            preconditioned = weight * residual
            new_energy = float(np.real(np.vdot(residual, preconditioned)))
            direction = preconditioned + (new_energy / energy) * direction
            energy = new_energy
            errors.append(nrmse(x))
        seconds = time.perf_counter() - began
        say(f"{tag:42} {seconds:7.1f} s   NRMSE per iteration: " + " ".join(f"{e:.4f}" for e in errors))
        return x

    say(
        f"# {datetime.datetime.now():%Y-%m-%d %H:%M} · python benchmarks/recon_warm_start.py --mm {args.mm} · "
        f"MNI152 {args.mm} mm {clean.shape}, 8 coils, 8 states (exact coil model), eps {eps:g}"
    )
    began = time.perf_counter()
    moving, exact = operator("moving"), operator("exact")
    lam = 1e-4 * largest_eigenvalue(moving)
    say(f"operators and λ: {time.perf_counter() - began:.1f} s (exact model: {exact.clusters} clusters)")
    start = cg(moving, args.iterations, lam, f"moving model, {args.iterations} it. from zero")
    cg(exact, args.refine, lam, f"exact model, {args.refine} it. from the moving solution", start)
    cg(exact, args.iterations, lam, f"exact model, {args.iterations} it. from zero")
    (HERE / "results" / f"recon_warm_start_{args.mm}mm.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
