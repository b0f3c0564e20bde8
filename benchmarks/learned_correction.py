"""Learned motion correction on held-out images and held-out motion: ours vs a same-size U-Net vs no guidance.

Test images: the held-out slices of ``mrmotion.learn.data`` (fetal atlases never seen in training, and a band of
MNI152 axial slices), corrupted by our simulator with every family of ``TEST_FAMILIES`` and severity of
``TEST_SEVERITIES``. Training saw only sudden jumps, light and moderate: drift and periodic motion, and severe
motion of any family, are unseen. The pairs are drawn with a fixed seed, so every method gets the same inputs.

Methods, on the same pairs:
* corrupted: the input itself;
* U-Net: the conventional, artifact-specific baseline (same pairs, same steps, about as many weights);
* VQ-VAE, prior 0: our model without guidance (the ablation);
* VQ-VAE, guided: our model with the prior at ``--strength`` (default: the CLI's default);
* "4 flips": the U-Net and the VQ-VAE (prior 0) averaged over the four flips of each slice, as ``mrmotion correct``
  does by default (``learn.correct.DEFAULT_SYMMETRIES``; :mod:`mrmotion.learn.symmetry`), so that both networks
  get the same test-time average.

SSIM, PSNR and NRMSE against the clean slice (``mrmotion.report.metrics.image_quality``: NRMSE inside the head,
PSNR and SSIM over the whole field of view), mean per family and severity. For the unseen families at moderate
severity the same metrics also after each image is rigidly aligned (in-plane shift and rotation, least squares inside
the head) to the clean slice: the clean slice shows the head in the mean pose of the scan, each sample's pose
weighted by |k|²|s(k)|²
(``learn.data.REFERENCE``), but what a corrupted image shows is not exactly that, a small offset no image-only
method can know; the aligned numbers are the artefact that remains once that offset is set aside. Also seconds per
256 × 256 slice of ``correct_image`` (resampling included). ``--sweep`` first scores several prior strengths on
*training*-family validation pairs (sudden, moderate; other seeds) and, unless ``--strength`` is given, uses the
best positive strength for the guided column (so it always shows guidance; without a sweep: the CLI's default, or 1
when that is 0); the CLI's default is the sweep's best (0 included) unless it gains less than
``learn.correct.MEASURABLE_SSIM`` over strength 0 (then 0).
Writes ``benchmarks/results/learned_correction.{txt,json,png}``.

    python benchmarks/learned_correction.py            # 40 pairs per family and severity
    python benchmarks/learned_correction.py --pairs 8  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
#: processes simulating the test pairs (the same pairs with any number)
WORKERS = os.cpu_count() or 1
ATLASES = ROOT.parent / "shared" / "data" / "fetal_atlas_spina_bifida"
RESULTS = ROOT / "benchmarks" / "results"


def run_methods(model, unet, corrupted: np.ndarray, strength: float) -> dict[str, np.ndarray]:
    from mrmotion.learn.guided import correct_batch
    from mrmotion.learn.symmetry import symmetrised

    def vqvae(images: torch.Tensor, value: float = 0.0) -> torch.Tensor:
        return correct_batch(model.vqvae, model.prior, images, value)

    with torch.no_grad():
        tensor = torch.from_numpy(corrupted[:, None].astype(np.float32))
        return {
            "corrupted": corrupted,
            "U-Net": unet(tensor)[:, 0].numpy(),
            "U-Net, 4 flips": symmetrised(unet, tensor, 4)[:, 0].numpy(),
            "VQ-VAE, prior 0": vqvae(tensor)[:, 0].numpy(),
            "VQ-VAE, prior 0, 4 flips": symmetrised(vqvae, tensor, 4)[:, 0].numpy(),
            f"VQ-VAE, guided ({strength:g})": vqvae(tensor, strength)[:, 0].numpy(),
        }


def aligned(image: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """``image`` moved rigidly in-plane (shift in pixels, rotation about the centre; cubic) to best match ``clean``
    inside the head (voxels above 5% of its maximum), by Powell's method from no motion."""
    from scipy import ndimage, optimize

    inside = clean > 0.05 * clean.max()
    centre = (np.array(image.shape) - 1) / 2

    def moved(parameters: np.ndarray) -> np.ndarray:
        angle = np.deg2rad(parameters[2])
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        return ndimage.affine_transform(image, rotation, centre - rotation @ centre + parameters[:2], order=3)

    best = optimize.minimize(lambda p: float(np.sum((moved(p) - clean)[inside] ** 2)), np.zeros(3), method="Powell")
    return moved(best.x)


def quality(images: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    from mrmotion.report.metrics import image_quality

    rows = [image_quality(i, c) for i, c in zip(images, clean, strict=True)]
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def main() -> None:
    from mrmotion.learn import data
    from mrmotion.learn.correct import correct_image
    from mrmotion.learn.model import FILES, CorrectionModel, load_unet, weights_folder

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=40, help="pairs per family and severity")
    parser.add_argument("--strength", type=float, default=None, help="prior strength of the guided column")
    parser.add_argument("--sweep", action="store_true", help="also sweep the prior strength on validation pairs")
    parser.add_argument("--weights", type=Path, default=None, help="weights folder (default: shipped)")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    args = parser.parse_args()
    torch.set_num_threads(2)
    from mrmotion.learn.correct import DEFAULT_PRIOR_STRENGTH

    folder = args.weights or weights_folder()
    model = CorrectionModel.load(folder)
    unet = load_unet(folder / FILES["unet"])
    images = data.mni_slices("test") + (data.atlas_slices(ATLASES, "test") if ATLASES.is_dir() else [])
    results: dict = {"pairs": args.pairs, "table": [], "sweep": {}}
    sweep_lines = []
    if args.sweep:
        from mrmotion.learn.guided import correct_batch

        validation = data.make_pairs(images, args.pairs, ("sudden",), ("moderate",), 5000, workers=WORKERS)
        sweep_lines += ["", "prior-strength sweep (sudden, moderate: the training family; validation pairs, not the "
                        "test pairs above)"]  # fmt: skip
        for value in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0):
            with torch.no_grad():
                tensor = torch.from_numpy(validation["corrupted"][:, None])
                out = correct_batch(model.vqvae, model.prior, tensor, value)[:, 0].numpy()
            q = quality(out, validation["clean"])
            results["sweep"][str(value)] = q
            sweep_lines.append(f"  strength {value:4.2f}: SSIM {q['ssim']:.4f}  PSNR {q['psnr_db']:.2f} dB")
    best = max(results["sweep"], key=lambda k: results["sweep"][k]["ssim"]) if results["sweep"] else None
    # the guided column always guides: the best positive strength of the sweep (equal to 0's output otherwise)
    positive = [k for k in results["sweep"] if float(k) > 0]
    best_positive = max(positive, key=lambda k: results["sweep"][k]["ssim"]) if positive else None
    fallback = DEFAULT_PRIOR_STRENGTH if DEFAULT_PRIOR_STRENGTH > 0 else 1.0
    strength = args.strength if args.strength is not None else float(best_positive or fallback)
    results["strength"], results["best_strength"] = strength, float(best) if best is not None else None
    sources = f"{'fetal atlases + ' if ATLASES.is_dir() else ''}MNI152 band"
    machine = platform.processor() or platform.machine()
    lines = [f"held-out slices: {len(images)} ({sources}); {args.pairs} pairs per family and severity; {machine}"]
    examples = {}
    for family in data.TEST_FAMILIES:
        for severity in data.TEST_SEVERITIES:
            seed = 1000 + 10 * data.TEST_FAMILIES.index(family) + data.TEST_SEVERITIES.index(severity)
            pairs = data.make_pairs(images, args.pairs, (family,), (severity,), seed, workers=WORKERS)
            outputs = run_methods(model, unet, pairs["corrupted"], strength)
            seen = family in data.TRAIN_FAMILIES and severity in data.TRAIN_SEVERITIES
            for method, out in outputs.items():
                results["table"].append(
                    {"family": family, "severity": severity, "seen": seen, "method": method,
                     **quality(out, pairs["clean"])}
                )  # fmt: skip
            if severity == "moderate":
                examples[family] = (pairs["clean"][0], {m: o[0] for m, o in outputs.items()})
            if severity == "moderate" and family not in data.TRAIN_FAMILIES:
                for method, out in outputs.items():
                    moved = np.stack([aligned(o, c) for o, c in zip(out, pairs["clean"], strict=True)])
                    results.setdefault("aligned", []).append(
                        {"family": family, "method": method, **quality(moved, pairs["clean"])}
                    )
    header = f"{'family':9} {'severity':9} {'seen':5} {'method':26} {'SSIM':>6} {'PSNR dB':>8} {'NRMSE':>6}"
    lines += ["", header, "-" * len(header)]
    for row in results["table"]:
        lines.append(
            f"{row['family']:9} {row['severity']:9} {'yes' if row['seen'] else 'no':5} {row['method']:26} "
            f"{row['ssim']:6.3f} {row['psnr_db']:8.2f} {row['nrmse']:6.3f}"
        )
    unseen = [r for r in results["table"] if r["family"] not in data.TRAIN_FAMILIES and r["severity"] == "moderate"]
    for key, rows, title in (
        ("unseen_moderate", unseen, "unseen families (drift, periodic), moderate: mean over both"),
        ("unseen_moderate_aligned", results["aligned"], "the same after rigid alignment of each image to the clean "
         "slice (the artefact without the pose offset)"),
    ):  # fmt: skip
        lines += ["", title]
        for method in dict.fromkeys(r["method"] for r in rows):
            chosen = [r for r in rows if r["method"] == method]
            summary = {k: float(np.mean([r[k] for r in chosen])) for k in ("ssim", "psnr_db", "nrmse")}
            results.setdefault(key, {})[method] = summary
            lines.append(f"  {method:26} SSIM {summary['ssim']:.3f}  PSNR {summary['psnr_db']:.2f} dB  "
                         f"NRMSE {summary['nrmse']:.3f}")  # fmt: skip
    slice_256 = np.abs(np.random.default_rng(0).normal(size=(256, 256))) + 1.0
    for method, call in (
        ("VQ-VAE guided", lambda: correct_image(slice_256, strength, model, symmetries=1)),
        ("VQ-VAE prior 0", lambda: correct_image(slice_256, 0.0, model, symmetries=1)),
        ("VQ-VAE prior 0, 4 flips (the CLI default)", lambda: correct_image(slice_256, 0.0, model, symmetries=4)),
    ):
        call()
        began = time.perf_counter()
        for _ in range(5):
            call()
        seconds = (time.perf_counter() - began) / 5
        results[f"seconds_per_256_slice_{method}"] = seconds
        lines.append(f"seconds per 256×256 slice, {method} (correct_image, 2 threads): {seconds:.3f}")
    lines += sweep_lines
    if best is not None and args.strength is None:
        lines.append(
            f"  best of the sweep: {float(best):g}; the guided column above uses the best positive, {strength:g}"
        )
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"learned_correction{args.tag}"
    stem.with_suffix(".txt").write_text(text + "\n")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    figure(examples, stem.with_suffix(".png"))


def figure(examples: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(examples)
    methods = list(next(iter(examples.values()))[1])
    fig, axes = plt.subplots(rows, len(methods) + 1, figsize=(2.6 * (len(methods) + 1), 2.8 * rows), squeeze=False)
    for row, (family, (clean, outputs)) in enumerate(examples.items()):
        for column, (title, image) in enumerate([("clean", clean), *outputs.items()]):
            axis = axes[row, column]
            axis.imshow(np.asarray(image).T, cmap="gray", origin="lower", vmin=0, vmax=1.1)
            axis.set_title(f"{title}" if row else title, fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(f"{family}, moderate", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
