"""Training of the pose networks on synthetic volumes made on the fly (see :mod:`mrmotion.pose.synth`).

Two stages, each a fixed number of Adam steps with a cosine learning rate: the brain localiser (soft Dice + BCE on
the brain fraction) and the axis network (E(3)-Pose loss). Each step draws its batch from a generator seeded with
``(seed, stage, step)``, so a run stopped and resumed from its checkpoint gives the same weights as one that was not.
Training data: the fetal atlases except :data:`HELD_OUT` (kept for evaluation), plus the adult MNI152 template for
``adult_share`` of the samples.

Weights are written as safetensors with their configuration in the metadata; :mod:`mrmotion.pose.model` loads them.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from mrmotion.errors import MrMotionError
from mrmotion.io.weights import resume_checkpoint, save_checkpoint, truncate_log, write_weights
from mrmotion.pose import synth
from mrmotion.pose.networks import CnnAxesNet, EquivariantAxesNet, Localiser, axes_loss, coordinate_loss

#: fetal atlases kept out of training, for the evaluation in benchmarks/pose.py (one early, one mid, one late).
HELD_OUT = ("fetal_SB_atlas_GA23_notoperated", "fetal_SB_atlas_GA28_operated", "fetal_SB_atlas_GA31_operated")


@dataclass(frozen=True)
class TrainConfig:
    """What a training run does; written into the weights' metadata and the card."""

    stage: str = "axes"  # "axes" or "localiser"
    arch: str = "equivariant"  # axes network: "equivariant" or "cnn"
    steps: int = 1200
    batch: int = 8
    learning_rate: float = 3e-3
    seed: int = 0
    adult_share: float = 0.2
    size: int = 17  # cube side in voxels (axes: 17 = 2⁴+1, so stride-2 levels stay centred; localiser: 48)
    curriculum: float = 0.0  # share of the steps over which the difficulty of the axes samples rises from 0 to 1
    centre_jitter: float = 0.05  # axes cubes: centre off the brain's by this share of the side (s.d. per axis)
    scale_jitter: float = 0.15  # axes cubes: side off the nominal by a factor uniform in 1 ± this
    threads: int = 2


def make_network(stage: str, arch: str = "equivariant") -> torch.nn.Module:
    """A fresh network for a stage: the localiser, or the axis network of the given architecture."""
    if stage == "localiser":
        return Localiser()
    if stage != "axes":
        raise MrMotionError(f"unknown stage {stage!r}: expected 'axes' or 'localiser'")
    if arch == "equivariant":
        return EquivariantAxesNet()
    if arch == "cnn":
        return CnnAxesNet()
    raise MrMotionError(f"unknown architecture {arch!r}: expected 'equivariant' or 'cnn'")


def load_training_subjects(atlas_root: str | Path, held_out: tuple[str, ...] = HELD_OUT) -> list[synth.Subject]:
    """The fetal atlases under ``atlas_root`` except ``held_out``."""
    folders = [f for f in synth.fetal_atlas_folders(atlas_root) if f.name not in held_out]
    if not folders:
        raise MrMotionError(f"{atlas_root}: every atlas is held out; nothing left to train on")
    return [synth.fetal_subject(folder) for folder in folders]


def _batch(config: TrainConfig, fetal: list[synth.Subject], adult: synth.Subject | None, step: int):
    rng = np.random.default_rng([config.seed, 0 if config.stage == "axes" else 1, step])
    samples = []
    for _ in range(config.batch):
        use_adult = adult is not None and rng.random() < config.adult_share
        subject = adult if use_adult else fetal[rng.integers(len(fetal))]
        if config.stage == "axes":
            ramp = config.curriculum * config.steps
            difficulty = min(1.0, step / ramp) if ramp > 0 else 1.0
            samples.append(
                synth.rotation_sample(
                    subject, rng, config.size, not use_adult, difficulty, config.centre_jitter, config.scale_jitter
                )
            )
        else:
            samples.append(synth.localiser_sample(subject, rng, size=config.size, fetal=not use_adult))
    volume = torch.from_numpy(np.stack([s.volume for s in samples])[:, None])
    if config.stage == "axes":
        targets = [
            torch.from_numpy(np.stack([getattr(s, k) for s in samples])).float()
            for k in ("left", "anterior", "superior", "brain", "coordinates")
        ]
    else:
        targets = [torch.from_numpy(np.stack([s.brain for s in samples])[:, None])]
    return volume, targets


def localiser_loss(logits: torch.Tensor, brain: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice against the brain fraction (both in [0, 1])."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, brain)
    probability = torch.sigmoid(logits)
    overlap = (probability * brain).sum(dim=(1, 2, 3, 4))
    dice = (2 * overlap + 1) / (probability.sum(dim=(1, 2, 3, 4)) + brain.sum(dim=(1, 2, 3, 4)) + 1)
    return bce + (1 - dice).mean()


def angle_errors_deg(pooled: dict[str, torch.Tensor], left, anterior, superior) -> np.ndarray:
    """Geodesic angle (degrees) between the predicted and true head rotations, per volume."""
    from mrmotion.pose.frames import rotation_from_axes

    predicted = rotation_from_axes(*(pooled[k].detach().numpy() for k in ("left", "anterior", "superior")))
    truth = rotation_from_axes(left.numpy(), anterior.numpy(), superior.numpy())
    cosine = (np.einsum("...ij,...ij->...", predicted, truth) - 1) / 2
    return np.degrees(np.arccos(np.clip(cosine, -1, 1)))


def train(
    config: TrainConfig,
    atlas_root: str | Path,
    output: str | Path,
    log_path: str | Path | None = None,
    resume: bool = False,
    progress: Callable[[int, int, dict], None] | None = None,
) -> dict:
    """Train one stage and write ``output`` (safetensors). Returns a summary for the card.

    A checkpoint ``<output>.ckpt`` is written every 25 steps; with ``resume`` training continues from it.
    """
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    output = Path(output)
    checkpoint = output.with_suffix(".ckpt")
    fetal = load_training_subjects(atlas_root)
    adult = synth.adult_subject() if config.adult_share > 0 else None
    network = make_network(config.stage, config.arch)
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    start, elapsed = 0, 0.0
    resumed = resume and checkpoint.is_file()
    if resumed:
        start, elapsed = resume_checkpoint(checkpoint, network, optimiser, asdict(config))
    validation = [
        _batch(TrainConfig(**{**asdict(config), "seed": config.seed + 10_000}), fetal, adult, i) for i in range(3)
    ]
    log_path = Path(log_path) if log_path else output.with_suffix(".log.csv")
    new_log = not (resumed and log_path.is_file())
    if not new_log:
        truncate_log(log_path, start)
    log = log_path.open("w" if new_log else "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "seconds", "learning_rate", "loss", "validation"])
    began = time.perf_counter() - elapsed
    summary: dict = {}
    for step in range(start, config.steps):
        rate = config.learning_rate * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        for group in optimiser.param_groups:
            group["lr"] = rate
        network.train()
        volume, targets = _batch(config, fetal, adult, step)
        output_tensor = network(volume)
        if config.stage == "axes":
            loss = coordinate_loss(output_tensor["output"], *targets[3:]) + axes_loss(output_tensor, *targets[:3])
        else:
            loss = localiser_loss(output_tensor, targets[0])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        done = step + 1
        row = {"step": done, "loss": loss.item()}
        if done % 100 == 0 or done == config.steps:
            row["validation"] = evaluate(network, config.stage, validation)
        seconds = time.perf_counter() - began
        writer.writerow([done, f"{seconds:.1f}", f"{rate:.3g}", f"{loss.item():.4f}", row.get("validation", "")])
        log.flush()
        if done % 25 == 0 or done == config.steps:
            save_checkpoint(checkpoint, network, optimiser, done, seconds, asdict(config))
        if progress:
            progress(done, config.steps, row)
        summary = {"steps": done, "seconds": round(seconds, 1), "final_loss": loss.item(), **row}
    log.close()
    write_weights(output, network, {"config": asdict(config), "summary": summary})
    return summary


@torch.no_grad()
def evaluate(network: torch.nn.Module, stage: str, batches: list) -> float:
    """Validation number: median rotation error (deg) for the axes stage, mean Dice for the localiser."""
    network.eval()
    values = []
    for volume, targets in batches:
        out = network(volume)
        if stage == "axes":
            values.extend(angle_errors_deg(out, *targets[:3]))
        else:
            predicted = torch.sigmoid(out) > 0.5
            truth = targets[0] > 0.5
            overlap = (predicted & truth).sum(dim=(1, 2, 3, 4)).float()
            values.extend(
                (2 * overlap / (predicted.sum(dim=(1, 2, 3, 4)) + truth.sum(dim=(1, 2, 3, 4)) + 1e-6)).tolist()
            )
    network.train()
    return float(np.median(values) if stage == "axes" else np.mean(values))


#: the configuration and file name of each shipped network (``mrmotion train-pose`` reproduces them).
SHIPPED = {
    "localiser": (
        TrainConfig(stage="localiser", steps=1200, batch=4, size=48, threads=2),
        "pose_localiser.safetensors",
    ),
    "axes": (
        TrainConfig(
            stage="axes",
            arch="equivariant",
            steps=1000,
            batch=8,
            learning_rate=1e-2,
            size=17,
            curriculum=0.4,
            adult_share=0.1,
            threads=2,
        ),
        "pose_axes.safetensors",
    ),
    "cnn": (
        TrainConfig(
            stage="axes",
            arch="cnn",
            steps=300,
            batch=8,
            learning_rate=1e-2,
            size=17,
            curriculum=0.4,
            adult_share=0.1,
            threads=2,
        ),
        "pose_axes_cnn.safetensors",
    ),
}
