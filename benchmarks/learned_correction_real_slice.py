"""Learned correction on real anatomy: the real 7-coil brain slice of ../shared, corrupted by our simulator.

The held-out test of ``benchmarks/learned_correction.py`` uses template and atlas anatomy (MNI152, fetal atlases).
This one uses a real scan: the 7-coil slice (fully sampled, 256 × 216), coil-combined (SENSE-1 with Walsh maps),
its magnitude as the clean image (with the scan's own noise), assumed 1 mm pixels (as
``benchmarks/simulate_vs_torchio.py`` does). Each pair is this slice under another random motion of a family and
severity (seeded, the same for every method), simulated like the training pairs (``learn.data.make_pairs``: random
order, shots, 1–8 synthetic coils, SNR 20–40 dB). Methods as in ``learned_correction.py`` (U-Net, VQ-VAE without
and with guidance, both with and without the four flips). Mean SSIM, PSNR and NRMSE against the clean slice.
Writes ``benchmarks/results/learned_correction_real_slice.{txt,json}``.

    python benchmarks/learned_correction_real_slice.py            # 24 pairs per family
    python benchmarks/learned_correction_real_slice.py --pairs 4  # quick
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SLICE = ROOT.parent / "shared" / "data" / "brain_slice_7coil" / "brain_slice_7coil.npz"
RESULTS = ROOT / "benchmarks" / "results"
PIXEL_MM = 1.0
FAMILIES = ("sudden", "drift", "periodic")


def real_slice_magnitude() -> np.ndarray:
    """The real slice's SENSE-1 magnitude (Walsh coil maps) at its own 256 × 216 pixels."""
    from mrmotion.physics.coils import estimate_coil_maps

    coil_images = np.moveaxis(np.load(SLICE)["arr_0"], -1, 0).astype(np.complex128)
    maps = estimate_coil_maps(coil_images, method="walsh")
    combined = np.sum(np.conj(maps) * coil_images, axis=0) / np.maximum(np.sum(np.abs(maps) ** 2, axis=0), 1e-12)
    return np.abs(combined)


def real_slice():
    """The real slice as a ``learn.data.SliceImage`` on the model's working grid."""
    from mrmotion.learn import data

    pixels, pixel_mm = data.to_working_grid(real_slice_magnitude(), PIXEL_MM)
    return data.SliceImage(pixels / float(np.percentile(pixels, 99.5)), pixel_mm, "brain_slice_7coil")


def main() -> None:
    from learned_correction import quality, run_methods
    from mrmotion.learn import data
    from mrmotion.learn.model import FILES, CorrectionModel, load_unet, weights_folder

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=24, help="pairs per family")
    parser.add_argument("--severity", default="moderate", choices=data.TEST_SEVERITIES)
    parser.add_argument("--strength", type=float, default=0.25, help="prior strength of the guided column")
    args = parser.parse_args()
    if not SLICE.is_file():
        raise SystemExit(f"{SLICE} not found: this benchmark needs ../shared/data")
    torch.set_num_threads(2)
    model = CorrectionModel.load(weights_folder())
    unet = load_unet(weights_folder() / FILES["unet"])
    image = real_slice()
    results: dict = {"pairs": args.pairs, "severity": args.severity, "strength": args.strength, "table": []}
    lines = [f"real 7-coil brain slice (SENSE-1 magnitude, {PIXEL_MM:g} mm pixels assumed), {args.severity} motion, "
             f"{args.pairs} motions per family; trained on sudden motion of template and atlas slices"]  # fmt: skip
    header = f"{'family':9} {'seen':5} {'method':26} {'SSIM':>6} {'PSNR dB':>8} {'NRMSE':>6}"
    lines += ["", header, "-" * len(header)]
    for index, family in enumerate(FAMILIES):
        pairs = data.make_pairs(
            [image], args.pairs, (family,), (args.severity,), 2000 + index, workers=os.cpu_count() or 1
        )
        seen = family in data.TRAIN_FAMILIES and args.severity in data.TRAIN_SEVERITIES
        for method, out in run_methods(model, unet, pairs["corrupted"], args.strength).items():
            row = {"family": family, "seen": seen, "method": method, **quality(out, pairs["clean"])}
            results["table"].append(row)
            lines.append(f"{family:9} {'yes' if seen else 'no':5} {method:26} {row['ssim']:6.3f} "
                         f"{row['psnr_db']:8.2f} {row['nrmse']:6.3f}")  # fmt: skip
    unseen = [r for r in results["table"] if r["family"] not in data.TRAIN_FAMILIES]
    lines += ["", "unseen families (drift, periodic): mean over both"]
    for method in dict.fromkeys(r["method"] for r in unseen):
        chosen = [r for r in unseen if r["method"] == method]
        summary = {k: float(np.mean([r[k] for r in chosen])) for k in ("ssim", "psnr_db", "nrmse")}
        results.setdefault("unseen", {})[method] = summary
        lines.append(f"  {method:26} SSIM {summary['ssim']:.4f}  PSNR {summary['psnr_db']:.2f} dB  "
                     f"NRMSE {summary['nrmse']:.4f}")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / "learned_correction_real_slice"
    stem.with_suffix(".txt").write_text(f"# command: python benchmarks/learned_correction_real_slice.py\n{text}\n")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
