"""Small synthetic heads for the pose tests: no atlas needed, seconds to build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mrmotion.pose import synth
from mrmotion.pose.frames import brain_size_mm, canonical_head_pose
from mrmotion.pose.synth import Subject

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ATLASES = SHARED / "fetal_atlas_spina_bifida"


def toy_labels(shape=(48, 56, 44)) -> np.ndarray:
    """An asymmetric toy 'brain' (RAS voxel axes): an ellipsoid, a bump at the back, a lobe up front (labels 1–3)."""
    index = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    x, y, z = ((index[i] - centre[i]) for i in range(3))
    brain = (x / 14) ** 2 + (y / 20) ** 2 + (z / 12) ** 2 <= 1
    labels = np.where(brain, 1, 0)
    labels[brain & ((x / 8) ** 2 + ((y + 14) / 6) ** 2 + ((z + 4) / 6) ** 2 <= 1)] = 2  # posterior (y < 0 in RAS)
    labels[brain & ((x / 10) ** 2 + ((y - 10) / 8) ** 2 + ((z - 6) / 5) ** 2 <= 1)] = 3  # anterior, superior
    return labels


@pytest.fixture(scope="session")
def toy_subject() -> Subject:
    labels = toy_labels()
    ras = np.diag([2.0, 2.0, 2.0, 1.0])
    ras[:3, 3] = -(np.array(labels.shape) - 1)  # centred on the origin
    scanner_from_voxel = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras
    fractions = np.stack([(labels == k).astype(np.float32) for k in (1, 2, 3)])
    brain = fractions.sum(axis=0)
    return Subject(
        "toy",
        fractions,
        3,
        scanner_from_voxel,
        canonical_head_pose(brain, scanner_from_voxel),
        brain_size_mm(brain, scanner_from_voxel),
    )


def atlas_folder(name: str = "fetal_SB_atlas_GA28_operated") -> Path:
    folder = ATLASES / name
    if not folder.is_dir():
        pytest.skip(f"fetal atlases not found at {ATLASES}")
    return folder


@pytest.fixture(scope="session")
def held_out_t2():
    """The T2 subject of the held-out GA23 atlas (never seen in training)."""
    return synth.fetal_t2_subject(atlas_folder("fetal_SB_atlas_GA23_notoperated"))[1]


def turned_scout(t2, seed: int):
    """A 3 mm scout of ``t2`` at a random pose whose voxels are turned by a random rotation about the brain centre
    and resampled onto the same grid, zero outside the turned field of view: (voxels, scanner_from_voxel, the pose
    before the turn, the turn)."""
    rng = np.random.default_rng(seed)
    pose = np.eye(4)
    pose[:3, :3] = synth.random_rotation(rng)
    pose[:3, 3] = rng.uniform(-30, 30, 3)
    data, grid = synth.scout_volume(t2, pose, rng, 3.0)
    motion = np.eye(4)
    motion[:3, :3] = synth.random_rotation(rng)
    motion[:3, 3] = pose[:3, 3] - motion[:3, :3] @ pose[:3, 3]
    return synth.moved_voxels(data, grid, motion), grid, pose, motion
