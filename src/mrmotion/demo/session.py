"""A built-in synthetic session: tracker recordings of head motion, a calibration scan and a slice prescription.

Ground truth is known, so the demo can say how close the chain comes to it. Frames:

* ``scanner_from_camera`` (X): the tracking camera above the head coil, looking down at the forehead;
* ``marker_from_head`` (M): the marker on the forehead, the head frame at the brain centre;
* ``scanner_from_head(t) = H(t) · scanner_from_head(0)``, with the head motion H(t) about a pivot near the
  neck: slow drift, nodding, and one sudden turn;
* the tracker reports ``camera_from_marker(t) = X⁻¹ · scanner_from_head(t) · M⁻¹`` plus noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from mrmotion.geometry.parameters import transform_from_euler, transform_from_rotvec
from mrmotion.geometry.prescription import SlicePrescription
from mrmotion.geometry.transforms import FloatArray, invert_rigid, make_transform


@dataclass(frozen=True)
class SyntheticSession:
    """Everything the demo needs, with ground truth. Poses are ``(T, 4, 4)`` rigid transforms in mm."""

    scanner_from_camera: FloatArray
    marker_from_head: FloatArray
    calibration_times_s: FloatArray
    calibration_camera_from_marker: FloatArray
    calibration_scanner_from_head: FloatArray
    times_s: FloatArray
    camera_from_marker: FloatArray
    scanner_from_head: FloatArray
    slices: list[SlicePrescription]


def _noisy(rng: np.random.Generator, poses: FloatArray, rotation_deg: float, translation_mm: float) -> FloatArray:
    noise = transform_from_rotvec(
        np.radians(rng.normal(scale=rotation_deg, size=(len(poses), 3))),
        rng.normal(scale=translation_mm, size=(len(poses), 3)),
    )
    return noise @ poses


def head_motion(times_s: FloatArray, pivot_mm: FloatArray) -> FloatArray:
    """Head motion H(t) in scanner LPS mm about ``pivot_mm``: drift, nodding (about L–R) and a sudden turn."""
    duration = max(float(times_s[-1]), 1e-9)
    fraction = times_s / duration
    jump = 1.0 / (1.0 + np.exp(-(times_s - 0.6 * duration) / 0.15))  # a turn lasting about half a second
    rotvec_deg = np.stack(
        [
            2.0 * np.sin(2 * np.pi * 0.05 * times_s) + 1.0 * fraction,  # nodding + drift about L–R
            0.5 * fraction - 1.5 * jump,  # drift, then a sudden tilt
            3.0 * jump,  # sudden turn about the long axis
        ],
        axis=-1,
    )
    translation = np.stack([1.5 * jump, -1.2 * fraction, 0.8 * fraction + 1.0 * jump], axis=-1)
    about_pivot = make_transform(np.eye(3), pivot_mm) @ transform_from_rotvec(np.radians(rotvec_deg))
    return make_transform(np.eye(3), translation) @ about_pivot @ make_transform(np.eye(3), -pivot_mm)


def axial_oblique_slices(centre_mm: FloatArray, count: int = 24, tilt_deg: float = 15.0) -> list[SlicePrescription]:
    """A stack of ``count`` axial slices tilted by ``tilt_deg`` about L–R (AC–PC-like), 4 mm thick, 4.4 mm apart."""
    rotation = Rotation.from_euler("x", tilt_deg, degrees=True).as_matrix()
    read, phase, normal = rotation[:, 0], rotation[:, 1], rotation[:, 2]
    offsets = (np.arange(count) - (count - 1) / 2.0) * 4.4
    return [
        SlicePrescription(centre_mm + offset * normal, read, phase, normal, np.array([220.0, 220.0]), 4.0, (128, 128))
        for offset in offsets
    ]


def synthetic_session(seed: int = 0, duration_s: float = 60.0, rate_hz: float = 10.0) -> SyntheticSession:
    """Make the demo session: a 12-pose calibration scan of a phantom, then a tracked scan of a moving head."""
    rng = np.random.default_rng(seed)
    scanner_from_camera = transform_from_euler([172.0, -4.0, 88.0], [12.0, -135.0, 60.0])
    marker_from_head = invert_rigid(transform_from_euler([-20.0, 3.0, 1.0], [0.0, -85.0, 35.0]))
    head_centre = np.array([0.0, 12.0, 8.0])

    # Calibration scan: the phantom is turned by hand to 12 poses about several axes; its pose in the scanner comes
    # from image registration (noise 0.05°, 0.1 mm), the tracker's own noise is smaller.
    turns = Rotation.random(12, random_state=rng).as_rotvec()
    turns *= np.radians(rng.uniform(5, 20, size=(12, 1))) / np.linalg.norm(turns, axis=1, keepdims=True)
    calibration_true = transform_from_rotvec(turns, head_centre + rng.normal(scale=6.0, size=(12, 3)))
    calibration_camera = invert_rigid(scanner_from_camera) @ calibration_true @ invert_rigid(marker_from_head)
    calibration_scanner = _noisy(rng, calibration_true, 0.05, 0.1)
    calibration_camera = _noisy(rng, calibration_camera, 0.01, 0.02)

    times = np.arange(0.0, duration_s, 1.0 / rate_hz)
    pivot = head_centre + np.array([0.0, 30.0, -90.0])  # near the base of the skull
    scanner_from_head = head_motion(times, pivot) @ make_transform(np.eye(3), head_centre)
    camera_from_marker = invert_rigid(scanner_from_camera) @ scanner_from_head @ invert_rigid(marker_from_head)
    camera_from_marker = _noisy(rng, camera_from_marker, 0.01, 0.02)

    return SyntheticSession(
        scanner_from_camera=scanner_from_camera,
        marker_from_head=marker_from_head,
        calibration_times_s=np.arange(12, dtype=np.float64),
        calibration_camera_from_marker=calibration_camera,
        calibration_scanner_from_head=calibration_scanner,
        times_s=times,
        camera_from_marker=camera_from_marker,
        scanner_from_head=scanner_from_head,
        slices=axial_oblique_slices(head_centre),
    )
