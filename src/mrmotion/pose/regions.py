"""Head orientation from brain regions: segment regions that are the same on both sides of the head, then find the
rotation that carries their centroids onto an atlas's (Kabsch).

Why regions. The axis networks that regress the head's axes (or per-voxel head coordinates) did not learn on two
CPU cores within an hour (validation at chance, benchmarks/results/pose_run1.txt). Segmentation gives a dense,
per-voxel target that a small 3-D U-Net learns quickly, and a rotation follows from it in closed form:

1. :data:`REGIONS`: background; the cerebrum split into four quadrants by the head's anterior–posterior and
   superior–inferior axes through the brain's centroid; ventricles; cerebellum; brainstem; deep grey matter. None of
   them tells left from right, so mirror images of the head get the same labels: the left–right symmetry of the head
   cannot confuse the network. Averaging the network over a group of the voxel grid's symmetries
   (:func:`symmetrised_probabilities`: up to all 48, rotations and reflections; the shipped pose uses the
   identity and the 3 half-turns about the grid's axes) makes the segmentation exactly equivariant to them.
2. :func:`pose_from_regions`: the brain's principal axes (second moments of the segmented brain) give the head's
   axes up to sign — precisely, as the whole brain is easy to segment; each region's centroid relative to the
   brain's is a vector (it rotates with the head) and picks the signs. The reference (:class:`AtlasLayout`) holds
   the same quantities in the head frame, averaged over the training atlases, in units of the brain's size; one
   Kabsch fit combines both. All centroids lie near the mid-sagittal plane, so they fix the anterior and superior
   directions; the left–right axis follows as a pseudovector, its sign set by det = +1.

Frames: centroids and positions in scanner LPS mm; head frame axes left, posterior, superior (:mod:`frames`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import procrustes_rotation
from mrmotion.pose.frames import second_moments

#: the classes the region network segments (index = channel)
REGIONS = (
    "background",
    "cerebrum anterior-superior",
    "cerebrum anterior-inferior",
    "cerebrum posterior-superior",
    "cerebrum posterior-inferior",
    "ventricles",
    "cerebellum",
    "brainstem",
    "deep grey matter",
)
#: fetal atlas parcellation labels (1-based, Fidon et al. 2021) that make up each region; the cerebrum's are split
#: into quadrants. 1 white matter, 2 ventricles, 3 cerebellum, 4 extra-axial CSF, 5 cortical grey matter,
#: 6 deep grey matter, 7 brainstem, 8 corpus callosum.
FETAL_CEREBRUM = (1, 4, 5, 8)
FETAL_REGIONS = {"ventricles": (2,), "cerebellum": (3,), "brainstem": (7,), "deep grey matter": (6,)}


def region_fractions(fractions: np.ndarray, head_coordinates: np.ndarray) -> np.ndarray:
    """Soft region targets from fetal label fractions.

    fractions : (L ≥ 8, N) fraction of each fetal parcellation label (labels 1–8 first) at N points.
    head_coordinates : (3, N) the points in the head frame (mm; left, posterior, superior; origin at the brain's
        centroid), which splits the cerebrum into quadrants.

    Returns (len(REGIONS), N) float32 fractions summing to 1 (background = the rest).
    """
    if fractions.ndim != 2 or fractions.shape[0] < 8 or head_coordinates.shape != (3, fractions.shape[1]):
        raise MrMotionError(
            f"region targets need (≥8, N) label fractions and (3, N) head coordinates, got {fractions.shape} "
            f"and {head_coordinates.shape}"
        )
    out = np.zeros((len(REGIONS), fractions.shape[1]), np.float32)
    cerebrum = fractions[[label - 1 for label in FETAL_CEREBRUM]].sum(axis=0)
    posterior, superior = head_coordinates[1] > 0, head_coordinates[2] > 0
    for index, (is_posterior, is_superior) in enumerate(itertools.product((False, True), (True, False)), start=1):
        out[index] = cerebrum * ((posterior == is_posterior) & (superior == is_superior))
    for name, labels in FETAL_REGIONS.items():
        out[REGIONS.index(name)] = fractions[[label - 1 for label in labels]].sum(axis=0)
    out[0] = np.clip(1 - out[1:].sum(axis=0), 0, 1)
    return out


def region_centroids(probability: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroids of the brain regions relative to the brain's centroid.

    probability : (len(REGIONS), N) region probabilities (or fractions) at N points; points : (3, N) their positions.
    Returns (centroids (R, 3) relative to the brain centroid, region masses (R,), brain centroid (3,)), R = regions
    without the background, in the units of ``points``.
    """
    regions = np.asarray(probability, dtype=np.float64)[1:]
    mass = regions.sum(axis=1)
    total = mass.sum()
    if not np.isfinite(total) or total <= 0:
        raise MrMotionError("no brain region found: cannot take centroids")
    centre = points @ regions.sum(axis=0) / total
    centroids = (regions @ points.T) / np.maximum(mass, 1e-9)[:, None] - centre
    return centroids, mass, centre


@dataclass(frozen=True)
class AtlasLayout:
    """Where the regions lie in a canonical brain, in the head frame (left, posterior, superior) and in units of the
    brain's size (longest axis): region ``centroids`` (R, 3) relative to the brain centroid, and the brain's second
    moments ``covariance`` (3, 3). Poses are fitted to it (:func:`pose_from_regions`)."""

    centroids: np.ndarray
    covariance: np.ndarray

    def __post_init__(self) -> None:
        centroids, covariance = np.asarray(self.centroids, float), np.asarray(self.covariance, float)
        if centroids.shape != (len(REGIONS) - 1, 3) or covariance.shape != (3, 3):
            raise MrMotionError(
                f"an atlas layout needs ({len(REGIONS) - 1}, 3) region centroids and a (3, 3) covariance, got "
                f"{centroids.shape} and {covariance.shape}"
            )
        if not (np.all(np.isfinite(centroids)) and np.all(np.isfinite(covariance))):
            raise MrMotionError("the atlas layout has NaN or infinite entries")
        object.__setattr__(self, "centroids", centroids)
        object.__setattr__(self, "covariance", covariance)

    @classmethod
    def of_atlas(cls, fractions: np.ndarray, points_head: np.ndarray, brain_size_mm: float) -> AtlasLayout:
        """The layout of one canonical atlas: fetal label fractions (L ≥ 8, N) at head-frame points (3, N) mm."""
        regions = region_fractions(fractions, points_head)
        centroids, _, _ = region_centroids(regions, points_head)
        return cls(centroids / brain_size_mm, second_moments(regions[1:].sum(axis=0), points_head) / brain_size_mm**2)

    @classmethod
    def mean(cls, layouts: list[AtlasLayout]) -> AtlasLayout:
        return cls(np.mean([x.centroids for x in layouts], axis=0), np.mean([x.covariance for x in layouts], axis=0))

    def to_dict(self) -> dict:
        return {"centroids": np.round(self.centroids, 6).tolist(), "covariance": np.round(self.covariance, 8).tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> AtlasLayout:
        try:
            return cls(np.asarray(values["centroids"], float), np.asarray(values["covariance"], float))
        except (KeyError, TypeError, ValueError) as error:
            raise MrMotionError(f"not an atlas layout ({type(error).__name__}: {error})") from None


#: weight of the signed principal axes against the region centroids in the combined fit (pose_from_regions).
#: Chosen on scouts of the training atlases, never the held-out ones (benchmarks/pose_fit_settings.py): with the
#: shipped weights and the tetrahedral average the median error is 5.1° at weight 1 and 4.1–4.7° for 3–100.
AXES_WEIGHT = 10.0


def pose_from_regions(
    probability: np.ndarray, points: np.ndarray, layout: AtlasLayout, brain_size_mm: float | None = None
) -> dict:
    """Head rotation and brain centre from region probabilities.

    probability : (len(REGIONS), N) at N points whose scanner positions (mm) are ``points`` (3, N).
    layout : the atlas's :class:`AtlasLayout`. brain_size_mm : scales it for the fit residual (default: the scale
    that fits best).

    Two pieces of evidence, combined in one Kabsch fit:

    * the brain's principal axes (its second moments; longest ≈ anterior–posterior, then left–right, shortest
      superior–inferior in the fetal atlases). They are precise but carry no sign: of the four proper rotations
      they allow, the one under which the region centroids agree best with the atlas's is kept;
    * the region centroids (vectors), which carry the signs.

    The cross-covariance sums the centroids' (mass-weighted, normalised) and the signed principal axes' (each
    weighted by how far its eigenvalue is from the others', so a nearly round cross-section does not pull), the
    latter scaled by :data:`AXES_WEIGHT`.

    Returns ``rotation`` (3, 3, scanner_from_head; columns left, posterior, superior), ``centre`` (3, mm),
    ``residual`` (RMS distance between measured and fitted centroids over the brain size, mass-weighted)
    and ``sign_margin`` (how much better the chosen signs fit the centroids than the next best, in [0, 2]).
    """
    centroids, mass, centre = region_centroids(probability, points)
    weights = mass / mass.sum()
    from_centroids = (centroids * weights[:, None]).T @ layout.centroids
    from_centroids /= max(np.linalg.norm(from_centroids), 1e-12)
    values, vectors = np.linalg.eigh(second_moments(np.asarray(probability, float)[1:].sum(axis=0), points))
    _, reference_vectors = np.linalg.eigh(layout.covariance)
    gaps = np.array([min(abs(values[i] - values[j]) for j in range(3) if j != i) for i in range(3)])
    gaps = gaps / max(values.max(), 1e-12)
    scores = []
    for signs in itertools.product((1.0, -1.0), repeat=3):
        rotation = (vectors * signs) @ reference_vectors.T
        if np.linalg.det(rotation) > 0:
            scores.append((float(np.sum(from_centroids * rotation)), signs))
    scores.sort(key=lambda item: -item[0])
    from_axes = (vectors * np.array(scores[0][1]) * gaps) @ reference_vectors.T
    from_axes *= AXES_WEIGHT / max(np.linalg.norm(gaps), 1e-12)
    rotation = procrustes_rotation(from_centroids + from_axes)
    fitted = layout.centroids @ rotation.T
    scale = float(np.sum(weights[:, None] * centroids * fitted) / max(np.sum(weights[:, None] * fitted**2), 1e-12))
    size = brain_size_mm if brain_size_mm is not None else max(scale, 1e-9)
    residual = float(np.sqrt(np.sum(weights * np.sum((centroids - scale * fitted) ** 2, axis=1))) / size)
    return {
        "rotation": rotation,
        "centre": centre,
        "residual": residual,
        "sign_margin": scores[0][0] - scores[1][0],
    }


Symmetry = tuple[tuple[int, ...], tuple[int, ...]]
#: the symmetry groups of the voxel grid that :func:`grid_symmetries` knows, and their sizes
GROUP_SIZES = {"full": 48, "rotations": 24, "tetrahedral": 12, "klein": 4, "half-turn": 2, "identity": 1}


def grid_symmetries(group: str = "full") -> list[Symmetry]:
    """Symmetries of a cubic voxel grid as (axis permutation, flipped axes), identity first.

    ``group``: "full" (all 48: rotations and reflections), "rotations" (the 24 with det = +1), "tetrahedral" (the
    12 rotations that also map a regular tetrahedron inscribed in the cube onto itself: even permutations of the
    axes with an even number of flips), "klein" (the identity and the 3 half-turns about the grid's axes: no
    permutation, an even number of flips), "half-turn" (the identity and the half-turn about the first axis) or
    "identity"."""
    if group not in GROUP_SIZES:
        raise MrMotionError(f"unknown symmetry group {group!r}: expected one of {', '.join(GROUP_SIZES)}")
    elements = []
    for permutation in itertools.permutations(range(3)):
        parity = np.linalg.det(np.eye(3)[list(permutation)])
        for flips in itertools.product((False, True), repeat=3):
            proper = parity * (-1) ** sum(flips) > 0
            if group in ("rotations", "tetrahedral") and not proper:
                continue
            if group == "tetrahedral" and parity < 0:
                continue
            if group == "klein" and (permutation != (0, 1, 2) or sum(flips) % 2):
                continue
            if group == "half-turn" and (permutation != (0, 1, 2) or flips not in ((0, 0, 0), (0, 1, 1))):
                continue
            elements.append((permutation, tuple(axis for axis in range(3) if flips[axis])))
    return elements[:1] if group == "identity" else elements


@torch.no_grad()
def symmetrised_probabilities(
    network: torch.nn.Module, volume: torch.Tensor, group: str = "full", chunk: int = 8
) -> torch.Tensor:
    """Region probabilities averaged over symmetries of the grid: (1, 1, n, n, n) → (len(REGIONS), n, n, n).

    Each symmetry g of ``group`` (:func:`grid_symmetries`) is applied to the volume, the network run, and g undone
    on its output; the average is therefore exactly equivariant to every element of the group (the regions do not
    tell left from right, so a mirrored head has the same labels and reflections may be included). ``chunk``
    symmetries go through the network at once.
    """
    if volume.ndim != 5 or volume.shape[:2] != (1, 1) or len(set(volume.shape[2:])) != 1:
        raise MrMotionError(f"region probabilities need one cubic volume (1, 1, n, n, n), got {tuple(volume.shape)}")
    symmetries = grid_symmetries(group)
    total = None
    for start in range(0, len(symmetries), chunk):
        some = symmetries[start : start + chunk]
        probability = torch.softmax(network(torch.cat([_apply(volume, *g) for g in some])).float(), dim=1)
        undone = sum(_undo(probability[i : i + 1], *g) for i, g in enumerate(some))
        total = undone if total is None else total + undone
    return (total / len(symmetries))[0]


def _apply(x: torch.Tensor, permutation: tuple[int, ...], flips: tuple[int, ...]) -> torch.Tensor:
    x = x.permute(0, 1, *(2 + p for p in permutation))
    return x.flip([2 + a for a in flips]) if flips else x


def _undo(x: torch.Tensor, permutation: tuple[int, ...], flips: tuple[int, ...]) -> torch.Tensor:
    if flips:
        x = x.flip([2 + a for a in flips])
    inverse = np.argsort(permutation)
    return x.permute(0, 1, *(2 + int(p) for p in inverse))
