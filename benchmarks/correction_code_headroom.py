"""How much better codes could make the learned correction: the headroom the prior's guidance has to work with.

On the test pairs of ``benchmarks/learned_correction.py`` for the unseen families (drift, periodic) at moderate
severity (same images, same seeds), the shipped VQ-VAE decodes:

* the codes its encoder picks from the corrupted image (prior strength 0: what ``mrmotion correct`` does);
* the codes chosen with the prior's guidance at a few strengths;
* the *clean image's own codes* (an oracle: the codes the encoder gives the motion-free slice), with the corrupted
  image in the detail path, as at inference; and without the detail path;
* the clean image's codes and the clean image in the detail path: the autoencoder's ceiling.

For each: PSNR and SSIM against the clean slice, and the share of top and bottom codes equal to the clean image's.
Guidance can at best move the codes to the oracle's, so the oracle row bounds what any prior could add.
Writes ``benchmarks/results/correction_code_headroom.txt``.

    python benchmarks/correction_code_headroom.py [--pairs 40]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learned_correction as benchmark  # noqa: E402  (test pairs and metrics as benchmarks/learned_correction.py)


def main() -> None:
    from mrmotion.learn import data
    from mrmotion.learn.guided import choose_codes
    from mrmotion.learn.model import CorrectionModel

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=40, help="pairs per unseen family")
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.time()
    model = CorrectionModel.load()
    vqvae = model.vqvae.eval()
    images = data.mni_slices("test") + (
        data.atlas_slices(benchmark.ATLASES, "test") if benchmark.ATLASES.is_dir() else []
    )
    clean, corrupted = [], []
    for family in data.TEST_FAMILIES:
        if family in data.TRAIN_FAMILIES:
            continue
        seed = 1000 + 10 * data.TEST_FAMILIES.index(family) + data.TEST_SEVERITIES.index("moderate")
        pairs = data.make_pairs(images, args.pairs, (family,), ("moderate",), seed, workers=benchmark.WORKERS)
        clean.append(pairs["clean"])
        corrupted.append(pairs["corrupted"])
    clean_images = torch.from_numpy(np.concatenate(clean)[:, None])
    corrupted_images = torch.from_numpy(np.concatenate(corrupted)[:, None])
    with torch.no_grad():
        clean_codes = choose_codes(vqvae, None, clean_images, 0.0)
        rows = [("corrupted input", corrupted_images, None)]
        for strength in (0.0, 1.0, 4.0):
            codes = choose_codes(vqvae, model.prior, corrupted_images, strength)
            name = "encoder codes (prior 0)" if strength == 0 else f"guided codes, strength {strength:g}"
            rows.append((name, vqvae.decode_codes(*codes, corrupted_images), codes))
        rows += [
            ("oracle: clean codes, corrupted detail", vqvae.decode_codes(*clean_codes, corrupted_images), clean_codes),
            ("oracle: clean codes, no detail path", vqvae.decode_codes(*clean_codes, corrupted_images, False), None),
            ("ceiling: clean codes, clean detail", vqvae.decode_codes(*clean_codes, clean_images), clean_codes),
        ]
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')} · command: python benchmarks/correction_code_headroom.py --pairs "
        f"{args.pairs}",
        f"unseen families (drift, periodic), moderate: {len(clean_images)} held-out test pairs (the pairs of "
        "benchmarks/learned_correction.py)",
        f"{'decoded from':40} {'PSNR dB':>8} {'SSIM':>6} {'top = clean':>12} {'bottom = clean':>15}",
    ]
    for name, images_out, codes in rows:
        q = benchmark.quality(images_out[:, 0].numpy(), clean_images[:, 0].numpy())
        agree = ("", "") if codes is None else tuple(
            f"{(c == t).double().mean().item():.1%}" for c, t in zip(codes, clean_codes, strict=True)
        )  # fmt: skip
        lines.append(f"{name:40} {q['psnr_db']:8.2f} {q['ssim']:6.3f} {agree[0]:>12} {agree[1]:>15}")
    lines.append(f"({time.time() - started:.0f} s)")
    text = "\n".join(lines)
    print(text)
    (benchmark.RESULTS / "correction_code_headroom.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
