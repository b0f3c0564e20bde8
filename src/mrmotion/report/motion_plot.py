"""Figures of motion over time: translations, rotations and framewise displacement.

Motion is shown about a *centre* (the marker's reference position, or the head centre): the transform
``T(−c) A(t) T(c)`` has the same rotation as ``A(t)`` and, as translation, the displacement of the centre c, so a
rotation of the head does not show up as a large translation of a far-away frame origin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import ArrayLike  # noqa: E402

from mrmotion.errors import MrMotionError  # noqa: E402
from mrmotion.geometry.parameters import framewise_displacement, rotvec_from_transform  # noqa: E402
from mrmotion.geometry.transforms import FloatArray, as_rigid, make_transform  # noqa: E402
from mrmotion.io.files import write_atomic  # noqa: E402


@dataclass(frozen=True)
class MotionSummary:
    """Motion traces about a centre: ``translation_mm`` (T, 3), ``rotation_deg`` (T, 3) rotation vectors in
    degrees, ``framewise_mm`` (T,) RMS displacement of a sphere of ``radius_mm`` between consecutive samples."""

    times_s: FloatArray
    translation_mm: FloatArray
    rotation_deg: FloatArray
    framewise_mm: FloatArray
    radius_mm: float

    @property
    def max_translation_mm(self) -> float:
        return float(np.max(np.linalg.norm(self.translation_mm, axis=1)))

    @property
    def max_rotation_deg(self) -> float:
        return float(np.max(np.linalg.norm(self.rotation_deg, axis=1)))

    @property
    def mean_framewise_mm(self) -> float:
        return float(np.mean(self.framewise_mm[1:])) if len(self.framewise_mm) > 1 else 0.0


def summarize_motion(
    times_s: ArrayLike, motion: ArrayLike, centre_mm: ArrayLike, radius_mm: float = 50.0
) -> MotionSummary:
    """Summarise motions ``A(t)`` ``(T, 4, 4)`` (identity at the reference) about ``centre_mm`` (3,)."""
    moves = as_rigid(motion, "motion")
    times = np.asarray(times_s, dtype=np.float64)
    if moves.ndim != 3 or times.shape != (moves.shape[0],):
        raise MrMotionError(f"expected T times and (T, 4, 4) motions, got {times.shape} and {moves.shape}")
    centre = np.asarray(centre_mm, dtype=np.float64)
    centred = make_transform(np.eye(3), -centre) @ moves @ make_transform(np.eye(3), centre)
    rotvec, translation = rotvec_from_transform(centred)
    return MotionSummary(times, translation, np.degrees(rotvec), framewise_displacement(centred, radius_mm), radius_mm)


def plot_motion(summary: MotionSummary, path: str | Path, title: str = "Motion") -> Path:
    """Write a three-panel figure (translations, rotations, framewise displacement) to ``path`` (PNG/PDF/SVG)."""
    figure, axes = plt.subplots(3, 1, figsize=(9, 7.5), sharex=True, constrained_layout=True)
    for index, label in enumerate("xyz"):
        axes[0].plot(summary.times_s, summary.translation_mm[:, index], label=label)
        axes[1].plot(summary.times_s, summary.rotation_deg[:, index], label=label)
    axes[0].set_ylabel("translation (mm)")
    axes[1].set_ylabel("rotation vector (deg)")
    axes[2].plot(summary.times_s, summary.framewise_mm, color="k")
    axes[2].set_ylabel(f"framewise displacement\n(mm, r = {summary.radius_mm:g} mm)")
    axes[2].set_xlabel("time (s)")
    for axis in axes[:2]:
        axis.legend(loc="upper left", ncol=3, fontsize="small")
    for axis in axes:
        axis.grid(alpha=0.3)
    axes[0].set_title(
        f"{title}\nmax |translation| {summary.max_translation_mm:.2f} mm, max rotation "
        f"{summary.max_rotation_deg:.2f}°, mean FD {summary.mean_framewise_mm:.3f} mm"
    )
    return save_figure(figure, path)


def save_figure(figure: plt.Figure, path: str | Path) -> Path:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    path = Path(path)
    try:
        return write_atomic(path, lambda temporary: figure.savefig(temporary, dpi=110, format=path.suffix[1:] or "png"))
    finally:
        plt.close(figure)
