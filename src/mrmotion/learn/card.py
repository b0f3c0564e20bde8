"""The card of the learned-correction weights (``weights/correct_card.md``): data, steps, time, code usage, metrics.

Written from what the files hold — each safetensors file's configuration and summary, its training log, and the
last ``benchmarks/learned_correction.py`` results if given — so the card cannot drift from the weights.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mrmotion.io.files import write_text_atomic
from mrmotion.io.weights import weights_metadata
from mrmotion.learn import data
from mrmotion.learn.train import SHIPPED

ROLES = {
    "vqvae": "hierarchical VQ-VAE: corrupted slice → top (1/8) and bottom (1/4) codes (+ a 5-pixel detail path) → "
    "clean slice",
    "prior": "autoregressive PixelCNN priors p(top) · p(bottom | top) over the codes of motion-free slices",
    "unet": "baseline: U-Net of about the same size, trained directly corrupted → clean (same pairs, same steps)",
}
VALIDATION = {"vqvae": "SSIM", "unet": "SSIM", "prior": "NLL, nats per code"}


def _log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open() as handle:
        return [row for row in csv.DictReader(handle) if row["validation"]]


def card_text(folder: Path, benchmark: Path | None = None) -> str:
    """The card as Markdown, from the weights in ``folder`` and an optional benchmark JSON."""
    lines = [
        "# Learned-correction weights",
        "",
        "Trained on 2-D slices (128 × 128) corrupted by our own simulator (`mrmotion.learn.data`): axial, coronal",
        "and sagittal slices of the adult MNI152 T1 template (nilearn) and of the fetal spina bifida atlases' T2",
        "images (Fidon et al. 2021, CC0), contrast randomised (gamma, bias field), scanned in multi-coil Cartesian",
        "k-space (1–8 coils; linear, centric, interleaved 2–8 shots or random order; SNR 20–40 dB) with exact",
        "in-plane rigid motion, coil-combined (SENSE-1). 10% of the pairs are motion-free. The clean image of a pair",
        "shows the head in the mean pose of the scan, each k-space sample's pose weighted by |k|²|s(k)|²",
        '(`reference="gradient"` of the simulator): to first order the pose the corrupted image shows. With the',
        "first pose as reference the network would also have to guess a global shift it cannot see.",
        f"Training motion: {', '.join(data.TRAIN_FAMILIES)} ({', '.join(data.TRAIN_SEVERITIES)}). Unseen in training,",
        "for the evaluation: drift and periodic motion, and severe motion of every family.",
        f"Held-out images: fetal atlases {', '.join(data.HELD_OUT_ATLASES)} and MNI152 axial slices",
        f"{data.HELD_OUT_MNI_AXIAL.start}–{data.HELD_OUT_MNI_AXIAL.stop - 1} (the adult template is one subject, so",
        "the adult part of the test is a weak test of new anatomy).",
        "",
        "Reproduce: `mrmotion train-correct --atlases ../shared/data/fetal_atlas_spina_bifida -o DIR` (stages vqvae,",
        'unet, prior; the prior needs the VQ-VAE). A stage "extended" below ran a cosine schedule to its first',
        "step count, then was resumed with more steps (`--steps N --resume`, the cosine over N continuing from there);",
        "the command's default schedule does the same in one run. The VQ-VAE's last steps fine-tune its decoder side",
        "with the encoder and codebooks fixed and the detail path always on (the codes, and so the prior, unchanged);",
        "the U-Net gets the same extra steps. Evaluate: `python benchmarks/learned_correction.py`.",
        "",
        "Times are wall times with the stage's threads (stages may have run side by side). Validation: 48 held-out",
        "pairs with sudden, moderate motion (SSIM and PSNR).",
        "",
        "| file | role | parameters | size | steps × batch | lr | wall time (threads) | last validation |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, (config, filename) in SHIPPED.items():
        path = folder / filename
        if not path.is_file():
            lines.append(f"| {filename} | {ROLES[name]} | not trained yet | | {config.steps} × {config.batch} | | | |")
            continue
        meta = weights_metadata(path)
        summary, used = meta["summary"], meta["config"]
        history = _log(path.with_suffix(".log.csv"))
        steps = f"{summary.get('steps', '?')} × {used.get('batch', '?')}"
        finetune = used.get("finetune_steps", 0)
        if 0 < used.get("extended_from", 0) < used.get("steps", 0) - finetune:
            steps += f" (a cosine to {used['extended_from']}, then extended)"
        if finetune:
            part = "the decoder side only, codes fixed" if name == "vqvae" else "all weights"
            rate = used["finetune_learning_rate"]
            steps += f"; its last {finetune} fine-tune {part} (a fresh cosine from {rate:g})"
        last = "—"
        if history:
            last = f"{float(history[-1]['validation']):.3f} ({VALIDATION[name]}, step {history[-1]['step']})"
            if history[-1].get("validation_psnr"):
                last += f", {float(history[-1]['validation_psnr']):.2f} dB PSNR"
        lines.append(
            f"| {filename} | {ROLES[name]} | {meta['parameters']:,} | {meta['bytes'] / 1e6:.1f} MB | "
            f"{steps} | {used.get('learning_rate', '?')} | "
            f"{summary.get('seconds', 0) / 60:.0f} min ({used.get('threads', '?')}) | {last} |"
        )
    vq_history = _log((folder / SHIPPED["vqvae"][1]).with_suffix(".log.csv"))
    if vq_history:
        lines += ["", "VQ-VAE code usage in training (last 50 batches; perplexity = effective number of codes):", ""]
        lines += ["| step | top perplexity | top dead | bottom perplexity | bottom dead | validation SSIM |"]
        lines += ["| --- | --- | --- | --- | --- | --- |"]
        shown = vq_history[:: max(1, len(vq_history) // 8)] + ([vq_history[-1]] if len(vq_history) > 1 else [])
        for row in dict((r["step"], r) for r in shown).values():
            lines.append(
                f"| {row['step']} | {float(row['top_perplexity']):.0f} | {100 * float(row['top_dead']):.0f}% | "
                f"{float(row['bottom_perplexity']):.0f} | {100 * float(row['bottom_dead']):.0f}% | "
                f"{float(row['validation']):.3f} |"
            )
    if benchmark is not None and benchmark.is_file():
        results = json.loads(benchmark.read_text())
        lines += [
            "",
            f"Held-out evaluation, unseen motion families (drift, periodic), moderate (`{benchmark.name}`, "
            f"{results['pairs']} pairs per family):",
            "",
            "| method | SSIM | PSNR (dB) | NRMSE |",
            "| --- | --- | --- | --- |",
        ]
        for method, s in results.get("unseen_moderate", {}).items():
            lines.append(f"| {method} | {s['ssim']:.3f} | {s['psnr_db']:.2f} | {s['nrmse']:.3f} |")
        if results.get("sweep"):
            from mrmotion.learn.correct import DEFAULT_PRIOR_STRENGTH, MEASURABLE_SSIM

            sweep = results["sweep"]
            gain = max(v["ssim"] for v in sweep.values()) - sweep["0.0"]["ssim"]
            best = results.get("best_strength", results["strength"])
            lines += ["", "Prior strength on training-family validation pairs (SSIM): " + ", ".join(
                f"{float(k):g}: {v['ssim']:.4f}" for k, v in sweep.items()
            ) + f". The best, {best:g}, gains {gain:.5f} SSIM over 0; `mrmotion correct` uses "
                f"{DEFAULT_PRIOR_STRENGTH:g} (the best unless it gains less than {MEASURABLE_SSIM:g})."]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_card(folder: Path, benchmark: Path | None = None) -> Path:
    """Write ``folder/correct_card.md`` (atomically)."""
    return write_text_atomic(folder / "correct_card.md", card_text(folder, benchmark))
