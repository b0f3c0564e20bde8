"""Training of the learned correction: the hierarchical VQ-VAE, the autoregressive priors over its codes, and the
same-size U-Net baseline, on pairs made by our simulator (:mod:`mrmotion.learn.data`).

Stages, each a fixed number of Adam steps with a cosine learning rate (:func:`learning_rate`; a run extended past
the end of a first cosine keeps that first part, ``CorrectConfig.extended_from``):

* ``vqvae``: corrupted → clean, L1 + the quantisers' commitment loss; code usage (perplexity, dead codes) logged;
* ``unet``: the baseline, corrupted → clean, L1, on exactly the same pairs and steps;
* ``prior``: cross-entropy of the top and bottom PixelCNN priors on the codes the trained VQ-VAE gives to the clean
  images (motion-free anatomy), so it needs the ``vqvae`` weights first.

Batches are drawn by a generator seeded with ``(seed, stage, step)`` and augmented with the eight flips/quarter
turns of the square, so a resumed run gives the same weights as an uninterrupted one. The training pairs are built
once (a few minutes) and cached as ``pairs.npz`` next to the weights. A checkpoint ``<output>.ckpt`` is written
every 100 steps and ``--resume`` continues from it. Weights are safetensors with their configuration in the metadata.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mrmotion.errors import MrMotionError
from mrmotion.io.weights import resume_checkpoint, save_checkpoint, truncate_log, write_weights
from mrmotion.learn import data
from mrmotion.learn.prior import CodePrior, PriorConfig
from mrmotion.learn.symmetry import dihedral
from mrmotion.learn.unet import UNet
from mrmotion.learn.vqvae import HierarchicalVQVAE, VQConfig, code_usage

STAGES = ("vqvae", "unet", "prior")
CHECKPOINT_EVERY = 100
#: held-out pairs (sudden, moderate) scored every CHECKPOINT_EVERY steps.
VALIDATION_COUNT = 48


@dataclass(frozen=True)
class CorrectConfig:
    """What a training run does; written into the weights' metadata and the card."""

    stage: str = "vqvae"
    steps: int = 5000
    #: steps of a first cosine schedule this run was extended from (what ``--resume`` with a larger ``--steps``
    #: does: the first ``extended_from`` steps followed a cosine over that many, the rest the cosine over ``steps``
    #: from there on); 0 or ≥ ``steps``: one cosine over ``steps``.
    extended_from: int = 0
    #: the last ``finetune_steps`` of ``steps`` start a fresh Adam with a cosine from ``finetune_learning_rate``;
    #: the VQ-VAE then trains its decoder side only (:meth:`~mrmotion.learn.vqvae.HierarchicalVQVAE.freeze_encoder`:
    #: codes fixed, detail path always on), the U-Net all of itself (the same extra budget). 0: none.
    finetune_steps: int = 0
    finetune_learning_rate: float = 3e-4
    batch: int = 8
    learning_rate: float = 1e-3
    seed: int = 0
    pairs: int = 6000
    clean_share: float = 0.1
    threads: int = 1
    vq: dict = field(default_factory=lambda: VQConfig().to_dict())
    unet_width: int = 16
    prior: dict = field(default_factory=lambda: PriorConfig().to_dict())


#: configuration keys added after some weights and checkpoints were written, with what those were trained with
ADDED_KEYS = {"extended_from": 0, "finetune_steps": 0, "finetune_learning_rate": 3e-4}


def finetune_problem(config: CorrectConfig) -> str | None:
    """Why ``config``'s fine-tuning steps cannot be run, or None when they can."""
    if not 0 <= config.finetune_steps < config.steps:
        return f"{config.finetune_steps} fine-tuning steps do not fit in {config.steps} steps (0 ≤ fine-tuning < steps)"
    if config.stage == "prior" and config.finetune_steps:
        return "the prior has no fine-tuning (finetune_steps must be 0)"
    return None


def main_steps(config: CorrectConfig) -> int:
    """The steps before the fine-tuning (all of them when there is none)."""
    return config.steps - config.finetune_steps


def learning_rate(config: CorrectConfig, step: int) -> float:
    """Adam's learning rate at ``step`` (0-based): ``lr · (1 + cos(π step / L)) / 2``, with L = ``extended_from``
    for the steps before it when the run was extended past a first cosine of that length, else L = the steps before
    the fine-tuning (:func:`main_steps`); in the fine-tuning, ``finetune_learning_rate`` on a cosine over its steps."""
    main = main_steps(config)
    if step >= main:
        return config.finetune_learning_rate * 0.5 * (1 + math.cos(math.pi * (step - main) / config.finetune_steps))
    first = 0 < config.extended_from < main and step < config.extended_from
    length = config.extended_from if first else main
    return config.learning_rate * 0.5 * (1 + math.cos(math.pi * step / length))


def training_pairs(
    atlas_root: str | Path | None, config: CorrectConfig, cache: Path, progress: Callable[[int], None] | None = None
) -> dict[str, np.ndarray]:
    """The training pairs of ``config`` (adult MNI152 slices, plus the fetal atlases' when ``atlas_root`` is
    given), built with the training families and severities, or read from ``cache`` if it was built alike."""
    key = json.dumps({"atlases": atlas_root is not None, "pairs": config.pairs, "seed": config.seed,
                      "clean_share": config.clean_share, "families": data.TRAIN_FAMILIES,
                      "severities": data.TRAIN_SEVERITIES, "reference": data.REFERENCE})  # fmt: skip
    if cache.is_file():
        with np.load(cache) as stored:
            if str(stored["key"]) == key:
                return {name: stored[name] for name in stored.files if name != "key"}
    images = data.mni_slices("train") + (data.atlas_slices(atlas_root, "train") if atlas_root else [])
    pairs = data.make_pairs(
        images, config.pairs, data.TRAIN_FAMILIES, data.TRAIN_SEVERITIES, config.seed, config.clean_share, progress,
        workers=os.cpu_count() or 1,  # built once, before training: every core (the pairs do not depend on it)
    )  # fmt: skip
    temporary = cache.with_name(cache.name + ".tmp.npz")
    np.savez(temporary, key=np.array(key), **pairs)
    temporary.replace(cache)
    return pairs


def validation_pairs(
    atlas_root: str | Path | None, count: int = VALIDATION_COUNT, seed: int = 10_000
) -> dict[str, np.ndarray]:
    """Held-out images with the training motion (sudden, moderate): the number watched during training."""
    images = data.mni_slices("test") + (data.atlas_slices(atlas_root, "test") if atlas_root else [])
    return data.make_pairs(images, count, ("sudden",), ("moderate",), seed)


def _batch(pairs: dict[str, np.ndarray], config: CorrectConfig, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng([config.seed, STAGES.index(config.stage), step])
    chosen = rng.integers(len(pairs["clean"]), size=config.batch)
    which = int(rng.integers(8))
    corrupted = torch.from_numpy(pairs["corrupted"][chosen][:, None].astype(np.float32))
    clean = torch.from_numpy(pairs["clean"][chosen][:, None].astype(np.float32))
    return dihedral(corrupted, which), dihedral(clean, which)


def make_network(config: CorrectConfig) -> torch.nn.Module:
    """A fresh network for ``config.stage``."""
    if config.stage == "vqvae":
        return HierarchicalVQVAE(VQConfig(**config.vq))
    if config.stage == "unet":
        return UNet(config.unet_width)
    if config.stage == "prior":
        vq = VQConfig(**config.vq)
        return CodePrior(PriorConfig(**config.prior), vq.top_codes, vq.bottom_codes)
    raise MrMotionError(f"unknown stage {config.stage!r}: expected one of {', '.join(STAGES)}")


@torch.no_grad()
def encode_clean(vqvae: HierarchicalVQVAE, clean: np.ndarray, batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Top and bottom codes the VQ-VAE gives to clean images (N, S, S): the prior's training data."""
    vqvae.eval()
    tops, bottoms = [], []
    for start in range(0, len(clean), batch):
        images = torch.from_numpy(clean[start : start + batch][:, None].astype(np.float32))
        out = vqvae(images)
        tops.append(out.top)
        bottoms.append(out.bottom)
    return torch.cat(tops), torch.cat(bottoms)


def _loss(network, config: CorrectConfig, corrupted, clean, codes=None) -> tuple[torch.Tensor, dict]:
    """The stage's loss, and (VQ-VAE) the batch's codes for the code-usage log."""
    if config.stage == "vqvae":
        out = network(corrupted)
        return F.l1_loss(out.image, clean) + out.vq_loss, {"top": out.top, "bottom": out.bottom}
    if config.stage == "unet":
        return F.l1_loss(network(corrupted), clean), {}
    top, bottom = codes
    top_logits, bottom_logits = network(top, bottom)
    return F.cross_entropy(top_logits, top) + F.cross_entropy(bottom_logits, bottom), {}


def train(
    config: CorrectConfig,
    atlas_root: str | Path | None,
    output: str | Path,
    vqvae_weights: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[int, int, dict], None] | None = None,
    pairs_progress: Callable[[int], None] | None = None,
) -> dict:
    """Train one stage and write ``output`` (safetensors); returns a summary for the card.

    ``vqvae_weights`` (the trained VQ-VAE) is required for the ``prior`` stage.
    """
    from mrmotion.learn.model import load_vqvae

    if config.stage not in STAGES:
        raise MrMotionError(f"unknown stage {config.stage!r}: expected one of {', '.join(STAGES)}")
    if problem := finetune_problem(config):
        raise MrMotionError(f"finetune_steps: {problem}")
    if config.stage == "prior" and (vqvae_weights is None or not Path(vqvae_weights).is_file()):
        raise MrMotionError(f"the prior stage needs the trained VQ-VAE weights; not found: {vqvae_weights}")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    output = Path(output)
    checkpoint = output.with_suffix(".ckpt")
    pairs = training_pairs(atlas_root, config, output.parent / "pairs.npz", pairs_progress)
    validation = validation_pairs(atlas_root, VALIDATION_COUNT)
    network = make_network(config)
    codes = None
    if config.stage == "prior":
        vqvae = load_vqvae(vqvae_weights)
        codes = encode_clean(vqvae, pairs["clean"])
        validation_codes = encode_clean(vqvae, validation["clean"])
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    start, elapsed = 0, 0.0
    resumed = resume and checkpoint.is_file()
    if resumed:
        # the added keys may differ: a finished run extended (its steps so far followed the first cosine) or fine-tuned
        first_steps = torch.load(checkpoint, weights_only=False)["config"]["steps"]
        start, elapsed = resume_checkpoint(
            checkpoint, network, optimiser, asdict(config),
            may_change=tuple(ADDED_KEYS), defaults=ADDED_KEYS,
        )  # fmt: skip
        if config.extended_from == 0 and start == first_steps < main_steps(config):
            config = replace(config, extended_from=start)  # recorded in the weights and the card
        if start > main_steps(config) and isinstance(network, HierarchicalVQVAE):
            network.freeze_encoder()  # stopped during the fine-tuning: its optimiser state was just loaded
    log_path = output.with_suffix(".log.csv")
    columns = ["step", "seconds", "learning_rate", "loss", "validation", "validation_psnr", "top_perplexity",
               "top_dead", "bottom_perplexity", "bottom_dead"]  # fmt: skip
    if resumed and log_path.is_file():
        truncate_log(log_path, start)
    else:
        log_path.write_text(",".join(columns) + "\n")
    began = time.perf_counter() - elapsed
    recent_top: list[torch.Tensor] = []
    recent_bottom: list[torch.Tensor] = []
    summary: dict = {}
    with log_path.open("a", newline="") as log:
        writer = csv.writer(log, lineterminator="\n")  # as truncate_log writes them: one line ending throughout
        for step in range(start, config.steps):
            if step == main_steps(config):  # the fine-tuning begins: a fresh Adam (and the VQ-VAE's codes fixed)
                optimiser.state.clear()
                if isinstance(network, HierarchicalVQVAE):
                    network.freeze_encoder()
            rate = learning_rate(config, step)
            for group in optimiser.param_groups:
                group["lr"] = rate
            network.train()
            if config.stage == "prior":
                rng = np.random.default_rng([config.seed, 2, step])
                chosen = torch.from_numpy(rng.integers(len(codes[0]), size=config.batch))
                loss, parts = _loss(network, config, None, None, (codes[0][chosen], codes[1][chosen]))
            else:
                corrupted, clean = _batch(pairs, config, step)
                loss, parts = _loss(network, config, corrupted, clean)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            done = step + 1
            row = {"step": done, "loss": loss.item()}
            if config.stage == "vqvae":
                recent_top, recent_bottom = recent_top[-49:] + [parts["top"]], recent_bottom[-49:] + [parts["bottom"]]
            if done % CHECKPOINT_EVERY == 0 or done == config.steps:
                if config.stage == "prior":
                    row["validation"] = evaluate_prior(network, validation_codes)
                else:
                    row["validation"], row["validation_psnr"] = evaluate(network, validation)
                if config.stage == "vqvae":
                    vq = VQConfig(**config.vq)
                    for name, recent, count in (("top", recent_top, vq.top_codes),
                                                ("bottom", recent_bottom, vq.bottom_codes)):  # fmt: skip
                        usage = code_usage(torch.cat(recent), count)
                        row[f"{name}_perplexity"], row[f"{name}_dead"] = usage["perplexity"], usage["dead"]
            seconds = time.perf_counter() - began
            writer.writerow(
                [done, f"{seconds:.1f}", f"{rate:.3g}", f"{loss.item():.5f}"]
                + [f"{row[c]:.4f}" if c in row else "" for c in columns[4:]]
            )
            log.flush()
            if done % CHECKPOINT_EVERY == 0 or done == config.steps:
                save_checkpoint(checkpoint, network, optimiser, done, seconds, asdict(config))
            if progress:
                progress(done, config.steps, row)
            summary = {**summary, **row, "steps": done, "seconds": round(seconds, 1)}
    write_weights(output, network, {"config": asdict(config), "summary": summary})
    return summary


@torch.no_grad()
def evaluate(network: torch.nn.Module, validation: dict[str, np.ndarray]) -> tuple[float, float]:
    """Mean SSIM and PSNR (dB) of the network's output against the clean images of the validation pairs."""
    from mrmotion.report.metrics import image_quality

    network.eval()
    corrupted = torch.from_numpy(validation["corrupted"][:, None].astype(np.float32))
    out = network(corrupted)
    images = (out.image if hasattr(out, "image") else out)[:, 0].numpy()
    network.train()
    scores = [image_quality(i, c) for i, c in zip(images, validation["clean"], strict=True)]
    return float(np.mean([s["ssim"] for s in scores])), float(np.mean([s["psnr_db"] for s in scores]))


@torch.no_grad()
def evaluate_prior(network: torch.nn.Module, codes: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Mean negative log-likelihood (nats per code, top and bottom averaged) of held-out clean images' codes."""
    network.eval()
    top_logits, bottom_logits = network(*codes)
    network.train()
    return float((F.cross_entropy(top_logits, codes[0]) + F.cross_entropy(bottom_logits, codes[1])) / 2)


#: the configuration and file name of each shipped network (``mrmotion train-correct`` reproduces them).
SHIPPED = {
    # trained to 5000 steps, then extended to 10000 (validation PSNR was still rising at 5000: the card's curve),
    # then fine-tuned for 3000 (the VQ-VAE's decoder side with its codes fixed; the U-Net all of it)
    "vqvae": (
        CorrectConfig(stage="vqvae", steps=13_000, extended_from=5000, finetune_steps=3000),
        "correct_vqvae.safetensors",
    ),
    "unet": (
        CorrectConfig(stage="unet", steps=13_000, extended_from=5000, finetune_steps=3000),
        "correct_unet.safetensors",
    ),
    "prior": (CorrectConfig(stage="prior", steps=1500, batch=16, threads=2), "correct_prior.safetensors"),
}
