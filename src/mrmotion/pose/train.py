"""Training of the pose networks on synthetic volumes made on the fly (see :mod:`mrmotion.pose.synth`).

Two stages, each a fixed number of Adam steps with a cosine learning rate: the brain localiser (soft Dice + BCE on
the brain fraction) and the region network (soft cross-entropy + Dice on the brain regions). Each step draws its
batch from a generator seeded with ``(seed, stage, step)`` (made in a second process while the previous step
trains), so a run stopped and resumed from its checkpoint gives the same weights as one that was not. Training data:
the fetal atlases except :data:`HELD_OUT` (kept for evaluation), plus the adult MNI152 template for ``adult_share``
of the samples (the localiser: its tissue maps, :func:`~mrmotion.pose.synth.adult_subject`; the region network: the
same labelled like the fetal atlases, :func:`~mrmotion.pose.synth.adult_region_subject`).

Weights are written as safetensors with their configuration in the metadata (the region network's also with the
training atlases' mean :class:`~mrmotion.pose.regions.AtlasLayout`, which poses are fitted to);
:mod:`mrmotion.pose.estimate` loads them.
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
from mrmotion.geometry.parameters import rotation_distance
from mrmotion.io.weights import resume_checkpoint, save_checkpoint, truncate_log, write_weights
from mrmotion.pose import synth
from mrmotion.pose.networks import Localiser, RegionNet, region_loss
from mrmotion.pose.regions import AtlasLayout, pose_from_regions

#: fetal atlases kept out of training, for the evaluation in benchmarks/pose.py (one early, one mid, one late).
HELD_OUT = ("fetal_SB_atlas_GA23_notoperated", "fetal_SB_atlas_GA28_operated", "fetal_SB_atlas_GA31_operated")


@dataclass(frozen=True)
class TrainConfig:
    """What a training run does; written into the weights' metadata and the card."""

    stage: str = "regions"  # "regions" or "localiser"
    steps: int = 1200
    batch: int = 8
    learning_rate: float = 3e-3
    seed: int = 0
    #: share of the samples made from the adult MNI152 template instead of a fetal atlas (localiser and regions). May
    #: change when a run is resumed: the shipped region network learned adult brains in its last go (:data:`SHIPPED`)
    adult_share: float = 0.2
    size: int = 32  # cube side in voxels (regions: 32, divisible by 8 for the U-Net's levels; localiser: 48)
    centre_jitter: float = 0.05  # region cubes: centre off the brain's by this share of the side (s.d. per axis)
    scale_jitter: float = 0.15  # region cubes: side off the nominal by a factor uniform in 1 ± this
    threads: int = 2  # may change when a run is resumed (the weights do not depend on it)
    #: share of the fetal samples rendered from the atlas's own T2 image (srr.nii.gz, real contrast)
    #: instead of label contrasts. May change when a run is resumed (:data:`MAY_CHANGE_ON_RESUME`).
    t2_share: float = 0.0
    #: share of the localiser's samples whose field of view is turned against the grid and zero outside the acquired
    #: box, as resampled volumes are (:func:`mrmotion.pose.synth.with_turned_field`; the draw comes after the sample's
    #: own, and none at share 0, so runs without it draw as before). May change when a run is resumed.
    zero_fill_share: float = 0.0


#: configuration keys a resumed run may change besides its length: the T2 and adult shares (the shipped localiser was
#: trained in two goes, the second with T2-image samples added; the region network in three, the third with adult
#: samples; see :data:`SHIPPED`), the threads, and ``arch``, a key of earlier versions (which network regressed the
#: axes) that the shipped checkpoints still carry
MAY_CHANGE_ON_RESUME = ("t2_share", "adult_share", "zero_fill_share", "threads", "arch")


def make_network(stage: str) -> torch.nn.Module:
    """A fresh network for a stage: the brain localiser or the region network."""
    if stage == "localiser":
        return Localiser()
    if stage == "regions":
        return RegionNet()
    raise MrMotionError(f"unknown stage {stage!r}: expected 'regions' or 'localiser'")


def training_atlas_folders(atlas_root: str | Path, held_out: tuple[str, ...] = HELD_OUT) -> list[Path]:
    """The fetal atlas folders under ``atlas_root`` except ``held_out``."""
    folders = [f for f in synth.fetal_atlas_folders(atlas_root) if f.name not in held_out]
    if not folders:
        raise MrMotionError(f"{atlas_root}: every atlas is held out; nothing left to train on")
    return folders


def load_training_subjects(atlas_root: str | Path, held_out: tuple[str, ...] = HELD_OUT) -> list[synth.Subject]:
    """The fetal atlases under ``atlas_root`` except ``held_out``."""
    return [synth.fetal_subject(folder) for folder in training_atlas_folders(atlas_root, held_out)]


def _batch(
    config: TrainConfig,
    fetal: list[synth.Subject],
    adult: synth.Subject | None,
    step: int,
    t2: list[synth.Subject] | None = None,
):
    """The batch of one step: (volumes (B, 1, n, n, n), targets), drawn from a generator seeded by the step.

    Fetal or, for ``adult_share`` of the samples, adult (``adult``: the localiser's or the region network's adult
    subject; for the regions no random draw at share 0, so runs without adult samples draw as before). Regions:
    targets are the region fractions, the true poses and the cubes' grids; localiser: the brain.
    A fetal sample (localiser or regions) is rendered from the atlas's T2 image (``t2``, same order as ``fetal``)
    with probability ``t2_share`` (no random draw at share 0, so runs without T2 samples draw as before).
    """
    rng = np.random.default_rng([config.seed, {"localiser": 1, "regions": 2}[config.stage], step])
    samples = []
    for _ in range(config.batch):
        if config.stage == "regions":
            if adult is not None and config.adult_share > 0 and rng.random() < config.adult_share:
                samples.append(
                    synth.region_sample(adult, rng, config.size, 1.0, config.centre_jitter, config.scale_jitter)
                )
                continue
            index = int(rng.integers(len(fetal)))
            image = t2[index] if config.t2_share > 0 and rng.random() < config.t2_share else None
            samples.append(
                synth.region_sample(
                    fetal[index], rng, config.size, 1.0, config.centre_jitter, config.scale_jitter, t2=image
                )
            )
        else:
            use_adult = adult is not None and rng.random() < config.adult_share
            index = None if use_adult else int(rng.integers(len(fetal)))
            subject = adult if index is None else fetal[index]
            image = None
            if index is not None and config.t2_share > 0 and rng.random() < config.t2_share:
                image = t2[index]
            sample = synth.localiser_sample(subject, rng, size=config.size, fetal=not use_adult, t2=image)
            if config.zero_fill_share > 0 and rng.random() < config.zero_fill_share:
                sample = synth.with_turned_field(sample, rng)
            samples.append(sample)
    volume = torch.from_numpy(np.stack([s.volume for s in samples])[:, None])
    if config.stage == "regions":
        targets = [
            torch.from_numpy(np.stack([s.regions for s in samples])),
            np.stack([s.scanner_from_head for s in samples]),
            np.stack([s.scanner_from_voxel for s in samples]),
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
    t2 = None
    if config.t2_share > 0:  # each atlas's labels and T2 image, read once
        pairs = [synth.fetal_t2_subject(folder) for folder in training_atlas_folders(atlas_root)]
        fetal, t2 = [labels for labels, _ in pairs], [image for _, image in pairs]
    else:
        fetal = load_training_subjects(atlas_root)
    adult = None
    if config.adult_share > 0:
        adult = synth.adult_subject() if config.stage == "localiser" else synth.adult_region_subject()
    network = make_network(config.stage)
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    start, elapsed = 0, 0.0
    resumed = resume and checkpoint.is_file()
    if resumed:
        start, elapsed = resume_checkpoint(
            checkpoint, network, optimiser, asdict(config), MAY_CHANGE_ON_RESUME, asdict(TrainConfig())
        )
    validation = [
        _batch(TrainConfig(**{**asdict(config), "seed": config.seed + 10_000}), fetal, adult, i, t2) for i in range(3)
    ]
    layout = None
    if config.stage == "regions":  # the atlas layout poses are fitted to: shipped in the weights' metadata
        layout = AtlasLayout.mean([synth.subject_layout(subject) for subject in fetal])
    log_path = Path(log_path) if log_path else output.with_suffix(".log.csv")
    new_log = not (resumed and log_path.is_file())
    if not new_log:
        truncate_log(log_path, start)
    log = log_path.open("w" if new_log else "a", newline="")
    writer = csv.writer(log, lineterminator="\n")  # as truncate_log writes them: one line ending throughout
    if new_log:
        writer.writerow(["step", "seconds", "learning_rate", "loss", "validation"])
    began = time.perf_counter() - elapsed
    summary: dict = {}
    batches = torch.utils.data.DataLoader(  # the next batches are made in a second process while this one trains
        _Batches(config, fetal, adult, start, t2), batch_size=None, num_workers=1, prefetch_factor=2
    )
    for step, (volume, targets) in zip(range(start, config.steps), batches, strict=False):
        rate = config.learning_rate * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        for group in optimiser.param_groups:
            group["lr"] = rate
        network.train()
        output_tensor = network(volume)
        if config.stage == "regions":
            loss = region_loss(output_tensor, targets[0])
        else:
            loss = localiser_loss(output_tensor, targets[0])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        done = step + 1
        row = {"step": done, "loss": loss.item()}
        if done % 100 == 0 or done == config.steps:
            row["validation"] = evaluate(network, config.stage, validation, layout)
        seconds = time.perf_counter() - began
        writer.writerow([done, f"{seconds:.1f}", f"{rate:.3g}", f"{loss.item():.4f}", row.get("validation", "")])
        log.flush()
        if done % 25 == 0 or done == config.steps:
            save_checkpoint(checkpoint, network, optimiser, done, seconds, asdict(config))
        if progress:
            progress(done, config.steps, row)
        summary = {"steps": done, "seconds": round(seconds, 1), "final_loss": loss.item(), **row}
    log.close()
    metadata = {"config": asdict(config), "summary": summary}
    if layout is not None:
        metadata["layout"] = layout.to_dict()
    write_weights(output, network, metadata)
    return summary


class _Batches(torch.utils.data.Dataset):
    """Training batch of each step from ``start`` on (deterministic per step, see :func:`_batch`)."""

    def __init__(self, config: TrainConfig, fetal: list, adult, start: int, t2: list | None = None) -> None:
        self.config, self.fetal, self.adult, self.start, self.t2 = config, fetal, adult, start, t2

    def __len__(self) -> int:
        return max(self.config.steps - self.start, 0)

    def __getitem__(self, index: int):
        return _batch(self.config, self.fetal, self.adult, self.start + index, self.t2)


@torch.no_grad()
def evaluate(network: torch.nn.Module, stage: str, batches: list, layout: AtlasLayout | None = None) -> float:
    """Validation number: median rotation error (deg) of the region network's poses (fitted to ``layout``), mean
    Dice for the localiser."""
    network.eval()
    values = []
    for volume, targets in batches:
        out = network(volume)
        if stage == "regions":
            probability = torch.softmax(out, dim=1).flatten(2).double().numpy()
            for p, pose, grid in zip(probability, targets[1], targets[2], strict=True):
                points = synth.grid_points(grid, volume.shape[-3:])
                estimate = np.eye(4)
                estimate[:3, :3] = pose_from_regions(p, points, layout)["rotation"]
                values.append(float(np.degrees(rotation_distance(estimate, pose))))
        else:
            predicted = torch.sigmoid(out) > 0.5
            truth = targets[0] > 0.5
            overlap = (predicted & truth).sum(dim=(1, 2, 3, 4)).float()
            values.extend(
                (2 * overlap / (predicted.sum(dim=(1, 2, 3, 4)) + truth.sum(dim=(1, 2, 3, 4)) + 1e-6)).tolist()
            )
    network.train()
    return float(np.mean(values) if stage == "localiser" else np.median(values))


#: the configuration and file name of each shipped network (``mrmotion train-pose`` reproduces them). Both were
#: trained in goes: the localiser 1200 steps with ``t2_share=0`` (``--steps 1200 --t2-share 0 --zero-fill-share 0``),
#: then resumed to 2400 with T2-image samples (``--resume --steps 2400 --zero-fill-share 0``), then to 3000 with
#: turned, zero-filled fields of view too (``--resume``); the regions 2400 steps and resumed to 3600, both without adult
#: samples (``--adult-share 0``), then resumed to 4800 with them (``--resume``; pose_card.md).
SHIPPED = {
    "localiser": (
        TrainConfig(stage="localiser", steps=3000, batch=4, size=48, threads=2, t2_share=0.4, zero_fill_share=0.25),
        "pose_localiser.safetensors",
    ),
    "regions": (
        TrainConfig(stage="regions", steps=4800, batch=8, learning_rate=2e-3, size=32, adult_share=0.15, threads=2),
        "pose_regions.safetensors",
    ),
}
