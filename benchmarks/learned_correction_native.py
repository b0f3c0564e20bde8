"""Learned correction of slices finer than the model's working grid, as `mrmotion correct` gets them.

The other correction benchmarks run on the model's 128 × 128 working grid. Users give images at their own resolution:
the real 7-coil slice is 256 × 216 and a 1 mm MNI152 axial slice 197 × 233, so `mrmotion correct` resamples each
slice to the working grid and back. Here the motion is simulated at the slice's own resolution (the same simulator
and motion families as ``learned_correction.py``, moderate severity) and three ways back are compared on the same pairs:

* **round trip** (up to session 16): the corrected working-grid image resampled back to the slice's grid; everything
  finer than the working grid is lost, anatomy included;
* **the model's change added everywhere**: the correction (corrected minus input, on the working grid) resampled back
  and added to the slice itself, which keeps its own fine detail, but also its fine noise and ghosts outside the head;
* **the slice's detail inside** (now, ``mrmotion.learn.correct.with_input_detail``): the round trip, plus the
  slice's own detail (what its round trip removes) inside the object only.

Also shown: the input through the round trip alone (no network), i.e. what the resampling costs by itself. The model
is the shipped VQ-VAE as `mrmotion correct` runs it (prior strength 0, averaged over the four flips). Slices: the
real slice (its SENSE-1 magnitude with Walsh maps, 1 mm pixels assumed) and the held-out MNI152 axial band (every
4th slice). Mean SSIM, PSNR, NRMSE against the clean slice at its own resolution. Writes
``benchmarks/results/learned_correction_native.txt``.

    python benchmarks/learned_correction_native.py             # 12 pairs per family and source
    python benchmarks/learned_correction_native.py --pairs 2   # quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learned_correction import quality  # noqa: E402
from learned_correction_real_slice import SLICE, real_slice_magnitude  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FAMILIES = ("sudden", "drift", "periodic")
METHODS = (
    "corrupted",
    "round trip (up to session 16)",
    "model's change added everywhere",
    "slice's detail inside (now)",
    "the input's round trip alone",
)


def native_sources() -> dict[str, list[np.ndarray]]:
    """Clean slices at their own resolution (1 mm pixels), each divided by its 99.5th percentile."""
    from nilearn.datasets import load_mni152_template

    from mrmotion.learn import data

    sources = {}
    if SLICE.is_file():
        sources["real slice 256 × 216"] = [data.normalise(real_slice_magnitude())[0]]
    volume = np.asarray(load_mni152_template(resolution=1).get_fdata(), dtype=np.float64)
    band = [volume[:, :, z] for z in list(data.HELD_OUT_MNI_AXIAL)[::4]]
    sources[f"MNI152 held-out axial {band[0].shape[0]} × {band[0].shape[1]}"] = [data.normalise(s)[0] for s in band]
    return sources


def corrected_ways(model, corrupted: np.ndarray) -> dict[str, np.ndarray]:
    """The corrupted slice corrected with each way back, and its round trip alone (normalised units)."""
    from mrmotion.learn import data
    from mrmotion.learn.correct import DEFAULT_SYMMETRIES, from_working_grid, with_input_detail
    from mrmotion.learn.guided import correct_batch
    from mrmotion.learn.symmetry import symmetrised

    normalised, _ = data.normalise(corrupted)
    working = data.to_working_grid(normalised, 1.0)[0].astype(np.float32)
    with torch.no_grad():
        out = symmetrised(
            lambda images: correct_batch(model.vqvae, model.prior, images, 0.0),
            torch.from_numpy(working[None, None]),
            DEFAULT_SYMMETRIES,
        )[0, 0].numpy()
    shape = corrupted.shape
    return {
        METHODS[1]: np.clip(from_working_grid(out, shape), 0, None),
        METHODS[2]: np.clip(normalised + from_working_grid(out - working, shape), 0, None),
        METHODS[3]: with_input_detail(out, working, normalised),
        METHODS[4]: np.clip(from_working_grid(working, shape), 0, None),
    }


def main() -> None:
    from mrmotion.learn import data
    from mrmotion.learn.correct import correct_image
    from mrmotion.learn.model import default_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=12, help="pairs per family and source")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = default_model()
    began = time.perf_counter()
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')} · command: python benchmarks/learned_correction_native.py "
        f"--pairs {args.pairs}",
        "slices at their own resolution (1 mm pixels), moderate motion simulated at that resolution; shipped VQ-VAE, "
        "prior 0, 4 flips; mean SSIM / PSNR dB / NRMSE (inside the object) against the clean slice",
        "",
    ]
    checked = False
    for source, slices in native_sources().items():
        for family in FAMILIES:
            rows: dict[str, list[dict]] = {method: [] for method in METHODS}
            for index in range(args.pairs):
                image = data.SliceImage(slices[index % len(slices)], 1.0, source)
                pair = data.make_pair(image, family, "moderate", 9000 + 97 * index + FAMILIES.index(family), False)
                outputs = {METHODS[0]: pair.corrupted, **corrected_ways(model, pair.corrupted)}
                if not checked:  # the library's path is the "now" one measured here (rounding can flip a code)
                    library = correct_image(pair.corrupted, 0.0, model)
                    np.testing.assert_allclose(library, outputs[METHODS[3]], atol=1e-3)
                    checked = True
                for method, out in outputs.items():
                    rows[method].append(quality(out[None], pair.clean[None]))
            lines.append(f"{source}, {family} ({args.pairs} pairs)")
            for method, values in rows.items():
                mean = {k: float(np.mean([v[k] for v in values])) for k in ("ssim", "psnr_db", "nrmse")}
                lines.append(
                    f"  {method:32} SSIM {mean['ssim']:.4f}  PSNR {mean['psnr_db']:6.2f} dB  NRMSE {mean['nrmse']:.4f}"
                )
            print("\n".join(lines[-len(METHODS) - 1 :]), flush=True)
    lines += ["", f"({time.perf_counter() - began:.0f} s)"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "learned_correction_native.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
