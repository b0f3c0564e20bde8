"""Motion over acquisition time: a piecewise-constant sequence of rigid (or affine) motion states.

A :class:`MotionTrajectory` holds T states, each a 4×4 transform that **moves the object away from where it is in
the input image**, in scanner LPS mm about the isocentre (the world origin of the image's affine), and the time
(s) from which it holds. State t holds on ``[times_s[t], times_s[t+1])``; the last state holds up to ``end_s``.
Asking for a time outside ``[times_s[0], end_s]`` is an error, never a silent extrapolation. A single state with
``end_s = inf`` is one constant pose for the whole scan.

Smooth motion (drift, periodic) is represented by sampling it finely (e.g. once per TR); simulators work per state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import FloatArray, as_rigid, as_transform


@dataclass(frozen=True, eq=False)
class MotionTrajectory:
    """Piecewise-constant motion: ``transforms`` (T, 4, 4) holding from ``times_s`` (T,) until ``end_s``.

    ``rigid=True`` (default) requires proper rigid transforms; ``rigid=False`` admits affine motion
    (e.g. respiratory-like scaling), which only some simulators support.
    """

    times_s: FloatArray
    transforms: FloatArray
    end_s: float = float("inf")
    rigid: bool = True

    def __post_init__(self) -> None:
        times = np.asarray(self.times_s, dtype=np.float64)
        if times.ndim != 1 or times.size == 0:
            raise MrMotionError(f"motion times: expected a non-empty 1-D array, got shape {times.shape}")
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise MrMotionError("motion times must be finite and strictly increasing")
        check = as_rigid if self.rigid else as_transform
        transforms = check(self.transforms, "motion state")
        if transforms.shape != (times.size, 4, 4):
            raise MrMotionError(f"motion: {times.size} times but transforms of shape {transforms.shape}")
        if not (self.end_s >= times[-1]):
            raise MrMotionError(f"motion end {self.end_s} s is before its last state at {times[-1]} s")
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "transforms", transforms)

    @classmethod
    def constant(cls, transform: ArrayLike, rigid: bool = True) -> MotionTrajectory:
        """One pose for the whole scan: every time is covered."""
        return cls(np.array([0.0]), np.asarray(transform, dtype=np.float64)[None], np.inf, rigid)

    def __len__(self) -> int:
        return self.times_s.size

    def state_index(self, times_s: ArrayLike) -> np.ndarray:
        """The state (0 … T−1) holding at each time; raises if a time is not covered by the trajectory."""
        times = np.asarray(times_s, dtype=np.float64)
        start, end = self.times_s[0], self.end_s
        if len(self) == 1 and np.isinf(end):
            return np.zeros(times.shape, dtype=np.int64)
        outside = (times < start) | (times > end)
        if np.any(outside):
            raise MrMotionError(
                f"the motion covers {start:g} s to {end:g} s but the scan samples times from {times.min():g} s "
                f"to {times.max():g} s; motion is not extrapolated: give motion for the whole scan"
            )
        flat = times.reshape(-1)
        if flat.size > 1 and np.all(flat[1:] >= flat[:-1]):
            # Acquisition order (non-decreasing times): locate the T state starts among the samples, not each of
            # the M samples among the states (M ≫ T; several times faster for a 1-mm 3-D scan).
            starts = np.searchsorted(flat, self.times_s[1:], side="left")
            counts = np.diff(np.concatenate([[0], starts, [flat.size]]))
            return np.repeat(np.arange(len(self), dtype=np.int64), counts).reshape(times.shape)
        return np.clip(np.searchsorted(self.times_s, times, side="right") - 1, 0, len(self) - 1)

    def at(self, times_s: ArrayLike) -> FloatArray:
        """The transforms holding at the given times, shape ``(*times.shape, 4, 4)``."""
        return self.transforms[self.state_index(times_s)]

    def relative_to(self, time_s: float) -> MotionTrajectory:
        """The same motion re-referenced so the pose holding at ``time_s`` is the identity: ``A(t) A(time_s)⁻¹``.

        The image of the object is then taken to show it as it was at ``time_s`` (e.g. while the k-space centre
        was sampled) rather than at the first state.
        """
        return self.relative_to_pose(self.at(np.array([float(time_s)]))[0])

    def relative_to_pose(self, pose: ArrayLike) -> MotionTrajectory:
        """The same motion re-referenced so ``pose`` (4×4, scanner LPS mm) is the identity: ``A(t) pose⁻¹``."""
        check = as_rigid if self.rigid else as_transform
        reference = check(pose, "reference pose")
        return MotionTrajectory(self.times_s, self.transforms @ np.linalg.inv(reference), self.end_s, self.rigid)

    def mean_pose(self, times_s: ArrayLike, weights: ArrayLike, about_mm: ArrayLike) -> FloatArray:
        """The weighted mean (4×4) of the poses holding at ``times_s`` (s), each counted with its ``weight`` (≥ 0).

        The point ``about_mm`` (scanner LPS mm, e.g. the object's centre) moves to the weighted mean of where the
        poses put it; the rotation is the weighted mean of the rotation matrices projected onto the nearest
        rotation (the chordal L2 mean; Hartley et al. 2013, "Rotation averaging"). Rigid motion only.

        With the k-space energy of each sample as its weight, this is the pose a motion-corrupted image shows:
        its low spatial frequencies, which hold most of the energy, come from those poses.
        """
        if not self.rigid:
            raise MrMotionError("mean_pose: only rigid motion has a mean pose")
        times = np.asarray(times_s, dtype=np.float64).reshape(-1)
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        centre = np.asarray(about_mm, dtype=np.float64)
        if w.shape != times.shape or times.size == 0:
            raise MrMotionError(f"mean_pose: {times.size} times but {w.size} weights; expected as many, at least one")
        if centre.shape != (3,) or not np.all(np.isfinite(centre)):
            raise MrMotionError(f"mean_pose: about_mm must be a finite point of shape (3,), got {centre.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise MrMotionError("mean_pose: weights must be finite, ≥ 0 and not all 0")
        per_state = np.bincount(self.state_index(times), weights=w, minlength=len(self)) / w.sum()
        linear = np.einsum("t,tij->ij", per_state, self.transforms[:, :3, :3])
        u, _, vt = np.linalg.svd(linear)
        rotation = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
        moved = np.einsum("t,ti->i", per_state, self.transforms[:, :3, :3] @ centre + self.transforms[:, :3, 3])
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = rotation, moved - rotation @ centre
        return pose
