"""Training and test pairs for learned motion correction: clean 2-D slices and their motion-corrupted scans.

Slices come from the adult MNI152 T1 template (shipped with nilearn) and, when given, the fetal atlases' T2
images (``srr.nii.gz``). Each slice is padded to a square field of view and resampled to the model's working
grid (:data:`WORKING_SIZE` pixels; the pixel size in mm follows from the field of view). Its contrast is
randomised (gamma, smooth bias field), then our own simulator
(:func:`mrmotion.physics.torchio_transform.corrupt`: exact in-plane rigid motion in multi-coil Cartesian
k-space, SENSE-1 combination with the true coil maps, complex Gaussian noise) makes the corrupted magnitude image
for a given motion family and severity (:func:`mrmotion.physics.motion_models.random_motion`).

The clean image shows the object in the pose the corrupted image shows: the mean of the poses of the k-space
samples, each weighted by the energy of the image's gradient at its frequency, |k|²|s(k)|² (:data:`REFERENCE`).
Both images of a pair are divided by the same scale, the 99.5th percentile of the *corrupted* image (what is
known at inference), so the network sees intensities around [0, 1]. :func:`normalise` is that rule.

Held out from training: the fetal atlases of :data:`HELD_OUT_ATLASES` and a band of MNI axial slices
(:data:`HELD_OUT_MNI_AXIAL`); the adult template is a single subject, so its held-out band is a weak test of
generalisation to new anatomy and is reported apart.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from mrmotion.errors import MrMotionError

#: side (pixels) of the square grid the correction model works on.
WORKING_SIZE = 128
#: motion families the learned correction is trained on; the others are held out to test generalisation.
TRAIN_FAMILIES = ("sudden",)
TEST_FAMILIES = ("sudden", "drift", "periodic")
TRAIN_SEVERITIES = ("light", "moderate")
TEST_SEVERITIES = ("light", "moderate", "severe")
HELD_OUT_ATLASES = ("fetal_SB_atlas_GA23_notoperated", "fetal_SB_atlas_GA28_operated", "fetal_SB_atlas_GA31_operated")
#: MNI152 axial slice indices (1 mm template, z) kept for testing.
HELD_OUT_MNI_AXIAL = range(80, 100)
ORDERS = ("linear", "centric", "interleaved", "random")
#: the clean image of a pair shows the object in the mean pose of the scan, each k-space sample's pose weighted by
#: |k|²|s(k)|² (the simulator's ``reference="gradient"``): to first order the pose the corrupted image shows
#: (``benchmarks/reference_pose.py``). With the first pose as reference, drift and periodic motion also shift the
#: corrupted image as a whole, an offset no image-only correction can know; the pose while the k-space centre was
#: sampled (``"centre"``, up to session 11) misses the pose when neighbouring lines of similar energy come from
#: other shots (interleaved, random order); weighting by the energy alone (``"energy"``, session 12) over-weighs
#: the low frequencies, which a pose offset hardly changes.
REFERENCE = "gradient"


@dataclass(frozen=True)
class SliceImage:
    """One clean 2-D slice on the working grid.

    pixels : (WORKING_SIZE, WORKING_SIZE) float64, ≥ 0, scaled so its 99.5th percentile is 1.
    pixel_mm : in-plane pixel size (mm).
    source : where it came from, e.g. ``"mni152:axial:92"``.
    """

    pixels: np.ndarray
    pixel_mm: float
    source: str


def to_working_grid(image: np.ndarray, pixel_mm: float, size: int = WORKING_SIZE) -> tuple[np.ndarray, float]:
    """Pad a 2-D image to a centred square and resample it (linear) to ``size`` × ``size``.

    Returns the resampled image and its pixel size (mm).
    """
    side = max(image.shape)
    square = np.zeros((side, side), dtype=np.float64)
    x0, y0 = (side - image.shape[0]) // 2, (side - image.shape[1]) // 2
    square[x0 : x0 + image.shape[0], y0 : y0 + image.shape[1]] = image
    zoomed = ndimage.zoom(square, size / side, order=1, grid_mode=True, mode="grid-constant")
    return np.clip(zoomed, 0.0, None), pixel_mm * side / size


def _slices(volume: np.ndarray, spacing_mm: float, name: str, keep: Callable[[str, int], bool], every: int):
    """Axial, coronal and sagittal slices of a RAS volume holding enough object (≥ 15% of the square)."""
    threshold = 0.05 * float(volume.max())
    for axis, plane in ((2, "axial"), (1, "coronal"), (0, "sagittal")):
        for index in range(0, volume.shape[axis], every):
            if not keep(plane, index):
                continue
            image = np.take(volume, index, axis=axis)
            if np.count_nonzero(image > threshold) < 0.15 * max(image.shape) ** 2:
                continue
            pixels, pixel_mm = to_working_grid(image, spacing_mm)
            scale = float(np.percentile(pixels, 99.5))
            if scale > 0:
                yield SliceImage(pixels / scale, pixel_mm, f"{name}:{plane}:{index}")


def mni_slices(split: str, every: int = 3) -> list[SliceImage]:
    """Slices of the MNI152 T1 template (nilearn, 1 mm): ``split`` "train" (all but the held-out axial band) or
    "test" (the held-out axial band only)."""
    from nilearn.datasets import load_mni152_template

    _check_split(split)
    volume = np.asarray(load_mni152_template(resolution=1).get_fdata(), dtype=np.float64)

    def keep(plane: str, index: int) -> bool:
        held = plane == "axial" and index in HELD_OUT_MNI_AXIAL
        return held if split == "test" else not held

    step = 2 if split == "test" else every
    return list(_slices(volume, 1.0, "mni152", keep, step))


def atlas_slices(root: str | Path, split: str, every: int = 4) -> list[SliceImage]:
    """Slices of the fetal atlases' T2 images under ``root`` (one folder per atlas with ``srr.nii.gz``): "train"
    takes every atlas but :data:`HELD_OUT_ATLASES`, "test" only those."""
    import nibabel as nib

    _check_split(split)
    root = Path(root)
    folders = sorted(p.parent for p in root.glob("*/srr.nii.gz")) if root.is_dir() else []
    if not folders:
        raise MrMotionError(f"{root}: no fetal atlas folders with srr.nii.gz")
    chosen = [f for f in folders if (f.name in HELD_OUT_ATLASES) == (split == "test")]
    slices: list[SliceImage] = []
    for folder in chosen:
        image = nib.load(folder / "srr.nii.gz")
        volume = np.asarray(image.get_fdata(), dtype=np.float64)
        spacing = float(np.abs(np.linalg.det(image.affine[:3, :3])) ** (1 / 3))
        slices += _slices(volume, spacing, folder.name, lambda plane, index: True, every)
    return slices


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise MrMotionError(f"split: expected 'train' or 'test', got {split!r}")


def randomise_contrast(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A gamma in [0.6, 1.7] and a smooth multiplicative bias field (±20%), then rescaled (99.5th pct = 1)."""
    size = pixels.shape[0]
    out = np.clip(pixels, 0, None) ** rng.uniform(0.6, 1.7)
    coarse = rng.normal(0.0, 0.1, (4, 4))
    field = np.exp(ndimage.zoom(coarse, size / 4, order=3, grid_mode=True, mode="nearest"))[:size, :size]
    out = out * field
    scale = float(np.percentile(out, 99.5))
    return out / scale if scale > 0 else out


def normalise(image: np.ndarray) -> tuple[np.ndarray, float]:
    """``image / s`` with ``s`` its 99.5th percentile (1 for an all-zero image): the intensity rule of the model."""
    scale = float(np.percentile(image, 99.5))
    scale = scale if scale > 0 else float(np.max(image)) or 1.0
    return image / scale, scale


@dataclass(frozen=True)
class Pair:
    """A clean slice and its motion-corrupted scan, both divided by the corrupted image's scale (float32)."""

    clean: np.ndarray
    corrupted: np.ndarray
    family: str
    severity: str
    source: str


def corrupt_slice(
    pixels: np.ndarray,
    pixel_mm: float,
    family: str,
    severity: str,
    seed: int,
    order: str | None = None,
    shots: int | None = None,
    coils: int | None = None,
    snr_db: float | None = None,
) -> tuple[np.ndarray, dict]:
    """The magnitude image of a simulated multi-coil scan of ``pixels`` under random motion.

    Scan settings left as None are drawn from ``seed``: phase-encode order from :data:`ORDERS`, 2–8 shots for
    interleaved, 1–8 coils, SNR 20–40 dB. Returns the image and the settings used.
    """
    from mrmotion.physics.torchio_transform import corrupt

    rng = np.random.default_rng(seed)
    order = order or ORDERS[int(rng.integers(len(ORDERS)))]
    shots = shots or (int(rng.choice([2, 4, 8])) if order == "interleaved" else 1)
    coils = coils or int(rng.choice([1, 2, 4, 8]))
    snr_db = snr_db if snr_db is not None else float(rng.uniform(20.0, 40.0))
    affine = np.diag([pixel_mm, pixel_mm, pixel_mm, 1.0])
    out, applied = corrupt(
        pixels[None, :, :, None], affine, severity, family, order, shots, coils, snr_db, "exact", "magnitude",
        int(rng.integers(2**31)), None, reference=REFERENCE,
    )  # fmt: skip
    settings = {"order": order, "shots": shots, "coils": coils, "snr_db": snr_db, "states": applied["states"]}
    return out[0, :, :, 0].astype(np.float64), settings


def make_pair(image: SliceImage, family: str, severity: str, seed: int, contrast: bool = True) -> Pair:
    """One training or test pair from a clean slice (seeded: the same arguments give the same pair)."""
    rng = np.random.default_rng(seed)
    clean = randomise_contrast(image.pixels, rng) if contrast else image.pixels
    corrupted, _ = corrupt_slice(clean, image.pixel_mm, family, severity, int(rng.integers(2**31)))
    corrupted, scale = normalise(corrupted)
    return Pair((clean / scale).astype(np.float32), corrupted.astype(np.float32), family, severity, image.source)


def make_pairs(
    images: list[SliceImage],
    count: int,
    families: tuple[str, ...],
    severities: tuple[str, ...],
    seed: int,
    clean_share: float = 0.0,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """``count`` pairs drawn from ``images`` with families and severities cycled, as stacked arrays.

    ``clean_share`` of them are motion-free (the corrupted image is the clean one with scan noise only), so the
    model also learns to leave a good image alone. ``workers`` > 1 simulates in that many processes (the same
    pairs as one). Returns ``clean``, ``corrupted`` (count, S, S) float32 and ``family``, ``severity``,
    ``source`` string arrays.
    """
    if not images:
        raise MrMotionError("no slices to make training pairs from")
    if not isinstance(workers, int) or workers < 1:
        raise MrMotionError(f"workers: expected an integer ≥ 1, got {workers!r}")
    rng = np.random.default_rng(seed)
    jobs = []
    for index in range(count):
        image = images[int(rng.integers(len(images)))]
        family, severity = families[index % len(families)], severities[(index // len(families)) % len(severities)]
        pair_seed = int(rng.integers(2**31))
        jobs.append((image, family, severity, pair_seed, bool(rng.uniform() < clean_share)))
    pairs: list[Pair] = []
    # "spawn": a forked worker can inherit a lock another thread (torch, the NUFFT's OpenMP) held, and hang
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn) if workers > 1 else nullcontext() as pool:
        for pair in pool.map(_make_job, jobs, chunksize=4) if pool else map(_make_job, jobs):
            pairs.append(pair)
            if progress is not None:
                progress(1)
    return {
        "clean": np.stack([p.clean for p in pairs]),
        "corrupted": np.stack([p.corrupted for p in pairs]),
        "family": np.array([p.family for p in pairs]),
        "severity": np.array([p.severity for p in pairs]),
        "source": np.array([p.source for p in pairs]),
    }


def _make_job(job: tuple[SliceImage, str, str, int, bool]) -> Pair:
    image, family, severity, seed, motion_free = job
    return _motion_free(image, seed) if motion_free else make_pair(image, family, severity, seed)


def _motion_free(image: SliceImage, seed: int) -> Pair:
    rng = np.random.default_rng(seed)
    clean = randomise_contrast(image.pixels, rng)
    noisy = np.abs(clean + rng.normal(0, rng.uniform(0.003, 0.03), clean.shape))
    noisy, scale = normalise(noisy)
    return Pair((clean / scale).astype(np.float32), noisy.astype(np.float32), "none", "none", image.source)
