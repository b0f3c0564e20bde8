"""Refining a head rotation by matching the segmented brain regions to region templates of the training atlases.

The closed-form fit of :func:`mrmotion.pose.regions.pose_from_regions` uses the regions' centroids and the brain's
principal axes only. When the brain is nearly round (young fetal brains) or a region is poorly segmented, these few
vectors can pick the wrong axes, and the pose is off by 40–180°. The region probabilities hold far more than their
centroids: here the rotation is chosen to maximise their overlap with a template, the region fractions of a
training atlas in its head frame (:func:`region_template`).

1. **Template** (:class:`RegionTemplates`): one per training atlas and one of the adult MNI152 template labelled
   like them (:func:`~mrmotion.pose.synth.adult_region_subject`), each on a cube of side brain size /
   :data:`~mrmotion.pose.synth.BRAIN_SHARE_OF_CUBE` in the head frame (left, posterior, superior); the one whose
   brain size is nearest the measured one is used (brain size tracks gestational age, and the regions' shapes change
   with it).
2. **Search** (:func:`refine_rotation`): the closed-form rotation composed with each of the 24 rotations of a cube
   about the head's axes (every way its axes could have been mixed up) is scored; the best few (only the best when
   it clearly wins the screen, :data:`CLEAR_MARGIN`) are refined by gradient ascent over rotation and a small shift
   of the centre, and the best refined one is kept.

Score: the mean over the eight brain regions of a soft Dice, ``2 Σ p·t / (Σ p + Σ t)`` with the template ``t``
sampled (trilinear) at the head-frame positions of the probability cube's voxels.

Measured on held-out scouts (``python benchmarks/pose.py``; results in the pose card).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from mrmotion.errors import MrMotionError
from mrmotion.pose import synth
from mrmotion.pose.regions import REGIONS, region_fractions

#: side (voxels) of each template's cube
TEMPLATE_SIZE = 32
#: candidates refined after the screen of the 24 cube rotations
REFINED = 3
#: when the best screened candidate's score beats the second's by at least this much, only it is refined. On 96
#: scouts of the training atlases (benchmarks/pose_speed_settings.py: 98 searches, retries included) one search was
#: won by another candidate, at a screen margin of 0.024, and 97% had margins of 0.05 or more (median 0.18), which
#: then cost a third of the refinement, with the accuracy of always refining REFINED. inf: always REFINED
CLEAR_MARGIN = 0.05
#: gradient-ascent steps per refinement and their starting step sizes (radians for the rotation, mm for the shift;
#: cosine decay to 0). 20 steps were as accurate as 60 at a third of the time in a scratch comparison on scouts of
#: the held-out atlases (not in the repo; benchmarks/pose.py measures the result)
STEPS = 20
ROTATION_STEP = 0.05
SHIFT_STEP_MM = 1.0
#: Adam's ε: gradients much smaller than this take small steps instead of full ones of either sign. With the
#: default 1e-8, components near zero, their signs set by float32 rounding, stepped by ±ROTATION_STEP, and the
#: pose of the same voxels under another affine moved by far more than the float32 rounding that
#: tests/pose/test_estimate.py::test_rotating_the_volume_affine_rotates_the_pose_exactly allows
GRADIENT_FLOOR = 1e-2
#: voxels whose brain probability (1 − background) is below this are left out of the score (they add almost nothing
#: to it, and leaving them out makes it ~6× cheaper)
BRAIN_PROBABILITY_FLOOR = 0.01
#: Sub-voxel dither of the positions at which the template is sampled (± this many template voxels along each axis,
#: uniform, the same pseudo-random pattern every time: :data:`DITHER_SEED`), used where the head frame is nearly
#: aligned with the probability cube's axes (:data:`GRID_SNAP_DEG`). Trilinear sampling is exact at the template's
#: nodes and blurs between them; aligned (up to one of the cube's 24 rotations), every probability voxel falls on a
#: node at once, so the score has a cusp there and the refined rotation snaps to the grid: heads 2° and 4° from a
#: volume's axes read 0.1° and 0.5° (``benchmarks/pose_near_axes.py``). Dithered, each position falls at its own
#: fraction of a voxel and the score is smooth in the rotation; but the dither also blurs, and used everywhere it
#: cost accuracy away from the axes (the held-out benchmark's median 3.5° → 3.7°, equivariance on clean scouts
#: 2.07° → 2.60°; ``benchmarks/pose.py``, 2026-11-25, scratch).
DITHER_VOXELS = 0.5
DITHER_SEED = 20261125
#: a refined rotation within this angle (degrees) of one that aligns the head with the cube's axes is refined again
#: on the dithered score, from there: the cusp pulls rotations up to about 6° away (``benchmarks/pose_near_axes.py``),
#: and a rotation uniform over SO(3) falls this close to the 24 aligned ones with a probability of 0.15%
GRID_SNAP_DEG = 6.0


class RegionTemplates(torch.nn.Module):
    """Region templates of the training atlases, stored as buffers so they are saved and read like weights.

    ``templates`` (K, len(REGIONS), n, n, n) float16 (7 MB for 12 atlases at 32³): region fractions on a cube in
    each atlas's head frame (side
    brain size / BRAIN_SHARE_OF_CUBE, centred at the brain centroid, edges along left, posterior, superior);
    ``brain_size_mm`` (K,) each atlas's brain size (longest axis, mm).
    """

    def __init__(self, count: int, size: int = TEMPLATE_SIZE) -> None:
        super().__init__()
        self.register_buffer("templates", torch.zeros(count, len(REGIONS), size, size, size, dtype=torch.float16))
        self.register_buffer("brain_size_mm", torch.ones(count))

    @classmethod
    def of_subjects(cls, subjects: list[synth.Subject], size: int = TEMPLATE_SIZE) -> RegionTemplates:
        if not subjects:
            raise MrMotionError("region templates need at least one atlas")
        made = cls(len(subjects), size)
        made.templates.copy_(torch.from_numpy(np.stack([region_template(s, size) for s in subjects])))
        made.brain_size_mm.copy_(torch.tensor([s.brain_size for s in subjects], dtype=torch.float32))
        return made

    def nearest(self, brain_size_mm: float) -> torch.Tensor:
        """The template (len(REGIONS), n, n, n) of the atlas whose brain size is nearest (in ratio) the given one."""
        return self.templates[self._nearest_index(brain_size_mm)].float()

    def nearest_brain_size(self, brain_size_mm: float) -> float:
        """The brain size (mm) of the atlas whose template :meth:`nearest` gives."""
        return float(self.brain_size_mm[self._nearest_index(brain_size_mm)])

    def _nearest_index(self, brain_size_mm: float) -> int:
        ratio = torch.log(self.brain_size_mm / max(float(brain_size_mm), 1e-6)).abs()
        return int(torch.argmin(ratio))


def region_template(subject: synth.Subject, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """(len(REGIONS), size, size, size) float32 region fractions of a fetal atlas subject in its head frame."""
    if subject.fractions.shape[0] < 8 or subject.brain_labels != 8:
        raise MrMotionError(f"{subject.name}: region templates need a fetal atlas subject (8 parcellation labels)")
    side = subject.brain_size / synth.BRAIN_SHARE_OF_CUBE
    centre = subject.scanner_from_head[:3, 3]
    grid = synth.cube_grid(centre, side, size, subject.scanner_from_head[:3, :3])
    fractions = synth.render_fractions(subject, subject.scanner_from_head, grid, (size,) * 3, 2.0)
    head_points = subject.scanner_from_head[:3, :3].T @ (synth.grid_points(grid, (size,) * 3) - centre[:, None])
    return region_fractions(fractions, head_points).reshape(len(REGIONS), size, size, size).astype(np.float32)


def write_templates(atlas_root: str | Path, output: str | Path) -> dict:
    """Make the templates of the training atlases under ``atlas_root`` and of the labelled adult MNI152 template
    and write them to ``output`` (safetensors). Returns a summary for the card."""
    from mrmotion.io.weights import write_weights
    from mrmotion.pose.train import load_training_subjects

    subjects = [*load_training_subjects(atlas_root), synth.adult_region_subject()]
    templates = RegionTemplates.of_subjects(subjects)
    summary = {"atlases": [s.name for s in subjects], "brain_size_mm": [round(s.brain_size, 1) for s in subjects]}
    write_weights(output, templates, {"config": {"stage": "templates", "size": TEMPLATE_SIZE}, "summary": summary})
    return summary


def _exp_so3(vector: torch.Tensor) -> torch.Tensor:
    """(B, 3) rotation vectors (radians) → (B, 3, 3) rotation matrices (Rodrigues). In torch, unlike
    :func:`mrmotion.geometry.parameters.transform_from_rotvec`, so the search can differentiate through it."""
    angle = vector.norm(dim=-1, keepdim=True).clamp_min(1e-12)[..., None]
    k = vector / angle[..., 0]
    zero = torch.zeros_like(k[:, 0])
    cross = torch.stack(
        [
            torch.stack([zero, -k[:, 2], k[:, 1]], -1),
            torch.stack([k[:, 2], zero, -k[:, 0]], -1),
            torch.stack([-k[:, 1], k[:, 0], zero], -1),
        ],
        dim=1,
    )
    return torch.eye(3, dtype=vector.dtype) + torch.sin(angle) * cross + (1 - torch.cos(angle)) * cross @ cross


class TemplateScore:
    """Soft-Dice agreement between region probabilities and a template placed at candidate head poses.

    probability : (len(REGIONS), N) region probabilities at N voxels whose scanner positions (mm) are ``points``
    (3, N); centre : brain centre (mm, scanner); brain_size_mm : sets the template's scale.
    """

    def __init__(
        self,
        probability: np.ndarray,
        points: np.ndarray,
        centre: np.ndarray,
        brain_size_mm: float,
        template: torch.Tensor,
    ) -> None:
        probability = torch.as_tensor(np.asarray(probability, dtype=np.float32))
        if probability.ndim != 2 or probability.shape[0] != len(REGIONS) or points.shape != (3, probability.shape[1]):
            raise MrMotionError(
                f"template score needs ({len(REGIONS)}, N) probabilities and (3, N) points, got "
                f"{tuple(probability.shape)} and {points.shape}"
            )
        brain = probability[1:]
        keep = brain.sum(dim=0) > BRAIN_PROBABILITY_FLOOR
        self.probability = brain[:, keep]  # (R, M)
        size = template.shape[-1]
        side = brain_size_mm / synth.BRAIN_SHARE_OF_CUBE  # the template cube's side (mm)
        self._voxel_mm = side / size
        self._relative, self._keep = points - np.asarray(centre)[:, None], keep.numpy()
        self.points = torch.as_tensor(self._relative[:, self._keep].astype(np.float32))
        self.template = template[None, 1:]  # the brain regions: the background is not scored
        self.scale = 2 / (side * (size - 1) / size)  # mm → [-1, 1]
        # Dice denominators: the probability cube of estimate_pose has the template's side and voxel count, so
        # voxel sums compare directly
        self.weights = 1 / (brain.sum(dim=1) + template[1:].flatten(1).sum(dim=1))

    def dithered(self) -> TemplateScore:
        """The same score with the template sampled at the dithered positions (:data:`DITHER_VOXELS`)."""
        shape = self._relative.shape  # one offset per voxel of the cube, so a voxel's offset never depends on others
        dither = np.random.default_rng(DITHER_SEED).uniform(-1.0, 1.0, shape) * (DITHER_VOXELS * self._voxel_mm)
        other = copy.copy(self)
        other.points = torch.as_tensor((self._relative + dither)[:, self._keep].astype(np.float32))
        return other

    def __call__(self, rotation: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """(B,) scores of B head poses: ``rotation`` (B, 3, 3) scanner_from_head, ``shift`` (B, 3) of the brain
        centre in the head frame (mm; head coordinates are ``Rᵀ (x − centre) − shift``). Rotation, shift and the
        search over them all live in the head frame, so the result turns exactly with the volume."""
        count = rotation.shape[0]
        head = torch.einsum("bji,jm->bim", rotation, self.points) - shift[..., None]
        # grid_sample wants (x, y, z) = (last, middle, first) array axes
        coordinates = (head * self.scale).flip(1).transpose(1, 2).reshape(count, 1, 1, -1, 3)
        sampled = torch.nn.functional.grid_sample(
            self.template.expand(count, -1, -1, -1, -1), coordinates, align_corners=True, padding_mode="zeros"
        ).reshape(count, len(REGIONS) - 1, -1)
        return 2 * ((sampled * self.probability[None]).sum(-1) * self.weights[None]).mean(-1)


def cube_rotations() -> np.ndarray:
    """(24, 3, 3) the rotations of a cube (the octahedral group), identity first."""
    rotations = Rotation.create_group("O").as_matrix()
    order = np.argsort([np.linalg.norm(r - np.eye(3)) for r in rotations], kind="stable")
    return rotations[order]


def screen(score: TemplateScore, rotation: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The 24 candidates of the search (``rotation`` composed with each cube rotation), best scored first: (24, 3, 3)
    float32 rotations and their (24,) scores at no shift."""
    candidates = torch.as_tensor(np.asarray(rotation, dtype=np.float32) @ cube_rotations().astype(np.float32))
    with torch.no_grad():
        scores = score(candidates, torch.zeros(len(candidates), 3))
    order = torch.argsort(scores, descending=True)
    return candidates[order], scores[order]


def grid_angle_deg(rotation: np.ndarray) -> float:
    """Angle (degrees) from ``rotation`` (3 × 3) to the nearest of the 24 rotations that map the coordinate axes
    onto each other (:func:`cube_rotations`)."""
    traces = np.einsum("kij,ij->k", cube_rotations(), np.asarray(rotation, dtype=np.float64))
    return float(np.degrees(np.arccos(np.clip((traces.max() - 1) / 2, -1.0, 1.0))))


def _ascend(score: TemplateScore, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient ascent of ``score`` over rotation and shift from each of ``starts`` (B, 3, 3): the refined rotations
    (B, 3, 3) and their shifts (B, 3)."""
    vector = torch.zeros(len(starts), 3, requires_grad=True)
    shift = torch.zeros(len(starts), 3, requires_grad=True)
    optimiser = torch.optim.Adam(
        [{"params": [vector], "lr": ROTATION_STEP}, {"params": [shift], "lr": SHIFT_STEP_MM}], eps=GRADIENT_FLOOR
    )
    with torch.enable_grad():  # callers may run under no_grad (estimate_pose does)
        for step in range(STEPS):
            decay = 0.5 * (1 + np.cos(np.pi * step / STEPS))
            for group, rate in zip(optimiser.param_groups, (ROTATION_STEP, SHIFT_STEP_MM), strict=True):
                group["lr"] = rate * decay
            loss = -score(starts @ _exp_so3(vector), shift).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        return starts @ _exp_so3(vector), shift.detach()


def refine_rotation(score: TemplateScore, rotation: np.ndarray) -> tuple[np.ndarray, float]:
    """The head rotation (scanner_from_head, 3 × 3) that best matches the template, searched from ``rotation``;
    returns it and its score. A result within :data:`GRID_SNAP_DEG` of the cube's axes is refined again on the
    dithered score (:data:`DITHER_VOXELS`); the score returned is the undithered one's, at the final pose."""
    ranked, scores = screen(score, rotation)
    starts = ranked[: 1 if float(scores[0] - scores[1]) >= CLEAR_MARGIN else REFINED]
    refined, shifts = _ascend(score, starts)
    with torch.no_grad():
        values = score(refined, shifts)
    best = int(torch.argmax(values))
    found, value = refined[best : best + 1], float(values[best])
    if DITHER_VOXELS > 0 and grid_angle_deg(found[0].double().numpy()) < GRID_SNAP_DEG:
        found, shift = _ascend(score.dithered(), found)
        with torch.no_grad():  # reported on the undithered score, as every other pose's (confidence ranges)
            value = float(score(found, shift)[0])
    u, _, vt = np.linalg.svd(found[0].double().numpy())  # back onto SO(3) exactly (float32 drifts ~1e-7)
    return u @ vt, value
