"""Closing the prospective loop with head poses: slices that follow the head, and slices in the head's own planes.

Poses are ``scanner_from_head`` (head frame: origin at the brain centre, axes left, posterior, superior; scanner LPS
mm). A head that moves from pose ``P0`` to ``P1`` has moved by ``A = P1 · P0⁻¹`` in the scanner frame, so a slice
prescribed at ``P0`` follows it as ``S' = A · S`` (:func:`follow_head`).

Standard planes of the head frame (:func:`anatomical_slices`), each a right-handed (read, phase, slice) triad:

========== ========== ========== ==============
plane      read       phase      slice normal
========== ========== ========== ==============
axial      left       posterior  superior
coronal    left       superior   anterior
sagittal   posterior  superior   left
========== ========== ========== ==============
"""

from __future__ import annotations

import numpy as np

from mrmotion.errors import MrMotionError
from mrmotion.geometry.prescription import SlicePrescription
from mrmotion.geometry.transforms import as_rigid, invert_rigid

#: head-frame directions (read, phase, slice) of each standard plane; head axes are (left, posterior, superior).
PLANES = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 0.0)),
}


def head_motion(pose_reference: np.ndarray, pose_now: np.ndarray) -> np.ndarray:
    """Scanner-frame motion ``A = P1 · P0⁻¹`` of a head seen at pose ``P0`` and then at ``P1`` (both rigid)."""
    reference = as_rigid(pose_reference, "reference pose")
    now = as_rigid(pose_now, "pose")
    return now @ invert_rigid(reference)


#: confidence below which a head pose should not move slices: `mrmotion pose` calls such a pose not reliable
#: (``mrmotion.pose.estimate.LOW_CONFIDENCE``) and `mrmotion prescribe` refuses it by default
RELIABLE_CONFIDENCE = 0.5


def pose_to_follow(
    followed: np.ndarray, estimate: np.ndarray, confidence: float, min_confidence: float = RELIABLE_CONFIDENCE
) -> np.ndarray:
    """The head pose a prospective loop should act on: the new ``estimate`` when its ``confidence`` is at least
    ``min_confidence``, else the pose it ``followed`` last (a doubtful navigator leaves the slices where they were,
    rather than moving them by a possibly wrong pose)."""
    if not np.isfinite(confidence):
        raise MrMotionError(f"pose confidence must be a number, got {confidence!r}")
    return as_rigid(estimate, "pose") if confidence >= min_confidence else as_rigid(followed, "followed pose")


def follow_head(
    slices: list[SlicePrescription], pose_reference: np.ndarray, pose_now: np.ndarray
) -> list[SlicePrescription]:
    """The prescription moved with the head from ``pose_reference`` to ``pose_now`` (FOV, thickness, matrix kept)."""
    if not slices:
        raise MrMotionError("the prescription holds no slices")
    motion = head_motion(pose_reference, pose_now)
    return [
        SlicePrescription.from_transform(
            motion @ item.scanner_from_logical(), item.fov_mm, item.thickness_mm, item.matrix
        )
        for item in slices
    ]


def anatomical_slices(
    scanner_from_head: np.ndarray,
    plane: str,
    count: int,
    spacing_mm: float,
    fov_mm: tuple[float, float],
    thickness_mm: float,
    matrix: tuple[int, int] | None = None,
) -> list[SlicePrescription]:
    """``count`` parallel slices in a standard plane of the head, centred on the head origin (brain centre)."""
    if plane not in PLANES:
        raise MrMotionError(f"unknown plane {plane!r}: expected one of {', '.join(PLANES)}")
    if int(count) != count or count < 1:
        raise MrMotionError(f"count must be a positive integer, got {count}")
    if not np.isfinite(spacing_mm) or spacing_mm <= 0:
        raise MrMotionError(f"spacing_mm must be > 0, got {spacing_mm}")
    pose = as_rigid(scanner_from_head, "scanner_from_head")
    read, phase, normal = (np.array(v) for v in PLANES[plane])
    slices = []
    for index in range(int(count)):
        head_from_logical = np.eye(4)
        head_from_logical[:3, :3] = np.stack([read, phase, normal], axis=1)
        head_from_logical[:3, 3] = (index - (count - 1) / 2) * spacing_mm * normal
        slices.append(SlicePrescription.from_transform(pose @ head_from_logical, fov_mm, thickness_mm, matrix))
    return slices


def plane_error(prescribed: SlicePrescription, true_pose: np.ndarray, plane: str, offset_mm: float = 0.0):
    """Angle (deg) between a slice's normal and the true anatomical plane's normal, and the distance (mm) along the
    true normal between the slice centre and where that anatomical plane (at ``offset_mm`` from the head origin) is."""
    pose = as_rigid(true_pose, "true pose")
    normal = pose[:3, :3] @ np.array(PLANES[plane][2])
    slice_dir = np.asarray(prescribed.slice_dir, dtype=np.float64)
    # atan2 of |cross| and |dot| stays exact near 0° where arccos of the dot would lose half the digits
    angle = float(np.degrees(np.arctan2(np.linalg.norm(np.cross(slice_dir, normal)), abs(np.dot(slice_dir, normal)))))
    target = pose[:3, 3] + offset_mm * normal
    offset = float(abs(np.dot(prescribed.position_mm - target, normal)))
    return angle, offset
