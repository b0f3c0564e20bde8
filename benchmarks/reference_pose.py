"""Which pose does a motion-corrupted image show? The simulator's references compared on the same scans.

A correction network that sees only the corrupted image can at best return the head in the pose the image shows;
the clean slice of a training or test pair should be in that pose. For each scan (held-out test slices of
``mrmotion.learn.data``, moderate motion of each family, the scan settings drawn as for training pairs) the same
motion is re-referenced to each of the simulator's ``REFERENCES`` (``mrmotion.physics.torchio_transform``) and the
corrupted image scored (PSNR, ``mrmotion.report.metrics.image_quality``) against the clean slice in that pose, and
after the corrupted image's own rigid best fit to it (``learned_correction.aligned``: the most any pose could give).
The smaller the gap to the best fit, the nearer the reference is to the pose the image shows.
Writes ``benchmarks/results/reference_pose.txt``.

    python benchmarks/reference_pose.py             # 16 scans per family
    python benchmarks/reference_pose.py --scans 4   # quick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ATLASES = ROOT.parent / "shared" / "data" / "fetal_atlas_spina_bifida"
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from learned_correction import aligned
    from mrmotion.learn import data
    from mrmotion.physics.torchio_transform import REFERENCES, corrupt
    from mrmotion.report.metrics import image_quality

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scans", type=int, default=16, help="scans per motion family")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    images = data.mni_slices("test") + (data.atlas_slices(ATLASES, "test") if ATLASES.is_dir() else [])
    rng = np.random.default_rng(args.seed)
    scores: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for family in data.TEST_FAMILIES:
        for _ in range(args.scans):
            image = images[int(rng.integers(len(images)))]
            clean = data.randomise_contrast(image.pixels, rng)
            order = data.ORDERS[int(rng.integers(len(data.ORDERS)))]
            shots = int(rng.choice([2, 4, 8])) if order == "interleaved" else 1
            coils, snr, seed = int(rng.choice([1, 2, 4, 8])), float(rng.uniform(20, 40)), int(rng.integers(2**31))
            affine = np.diag([image.pixel_mm] * 3 + [1.0])
            for reference in REFERENCES:
                out, _ = corrupt(clean[None, :, :, None], affine, "moderate", family, order, shots, coils, snr,
                                 "exact", "magnitude", seed, None, reference=reference)  # fmt: skip
                corrupted, scale = data.normalise(out[0, :, :, 0])
                target = clean / scale
                scores.setdefault((family, reference), []).append(
                    (image_quality(corrupted, target)["psnr_db"],
                     image_quality(aligned(corrupted, target), target)["psnr_db"])
                )  # fmt: skip
    lines = [
        f"corrupted image vs the clean slice in each reference pose: PSNR dB (mean over {args.scans} scans per "
        f"family, moderate motion, held-out slices); in brackets the gap to its rigid best fit",
        f"{'reference':10}" + "".join(f"{family:>22}" for family in data.TEST_FAMILIES),
    ]
    for reference in REFERENCES:
        cells = []
        for family in data.TEST_FAMILIES:
            values = np.array(scores[(family, reference)])
            cells.append(f"{values[:, 0].mean():8.2f} ({values[:, 1].mean() - values[:, 0].mean():5.2f} below)")
        lines.append(f"{reference:10}" + "".join(f"{cell:>22}" for cell in cells))
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reference_pose.txt").write_text(f"# python benchmarks/reference_pose.py --scans {args.scans}\n{text}\n")


if __name__ == "__main__":
    main()
