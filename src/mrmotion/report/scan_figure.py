"""Figures of a simulated or reconstructed scan: images side by side, the sample-time map, the motion trace."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mrmotion.geometry.parameters import rotvec_from_transform  # noqa: E402
from mrmotion.physics.sampling import Sampling  # noqa: E402
from mrmotion.physics.trajectory import MotionTrajectory  # noqa: E402
from mrmotion.report.motion_plot import save_figure  # noqa: E402


def central_slice(volume: np.ndarray) -> np.ndarray:
    """The middle slice along the last axis of a 3-D array (a 2-D array is returned as is), for display."""
    return volume if volume.ndim == 2 else volume[:, :, volume.shape[2] // 2]


def sample_time_map(sampling: Sampling) -> tuple[np.ndarray, str]:
    """Acquisition time (s) over the phase-encoding plane (Cartesian) and a label for its axes."""
    if sampling.grid_index is None:
        return np.empty((0, 0)), "non-Cartesian"
    index = sampling.grid_index
    centre = sampling.matrix[0] // 2
    at_centre = index[:, 0] == centre
    if sampling.mode == "3d" and sampling.matrix[2] > 1:
        image = np.full((sampling.matrix[1], sampling.matrix[2]), np.nan)
        image[index[at_centre, 1], index[at_centre, 2]] = sampling.time_s[at_centre]
        return image, "phase × partition"
    image = np.full((sampling.matrix[0], sampling.matrix[1]), np.nan)
    first = sampling.slice_index == 0
    image[index[first, 0], index[first, 1]] = sampling.time_s[first]
    return image, "read × phase"


def plot_scan(
    clean: np.ndarray,
    corrupted: np.ndarray,
    sampling: Sampling,
    motion: MotionTrajectory,
    path: str | Path,
    title: str = "",
    labels: tuple[str, str] = ("clean", "corrupted"),
) -> Path:
    """Clean | corrupted | difference (middle slice, magnitude), the sample-time map and the motion trace."""
    first, second = np.abs(central_slice(clean)), np.abs(central_slice(corrupted))
    scale = float(np.percentile(first, 99.5)) or 1.0
    figure = plt.figure(figsize=(13, 7.5), constrained_layout=True)
    grid = figure.add_gridspec(2, 3)
    for column, (image, label) in enumerate(((first, labels[0]), (second, labels[1]), (second - first, "difference"))):
        axis = figure.add_subplot(grid[0, column])
        limits = (-scale / 2, scale / 2) if column == 2 else (0, scale)
        axis.imshow(image.T, cmap="gray" if column < 2 else "RdBu_r", vmin=limits[0], vmax=limits[1], origin="lower")
        axis.set_title(label)
        axis.axis("off")
    times, plane = sample_time_map(sampling)
    axis = figure.add_subplot(grid[1, 0])
    if times.size:
        shown = axis.imshow(times.T, origin="lower", cmap="viridis", aspect="auto")
        figure.colorbar(shown, ax=axis, label="acquisition time (s)")
        axis.set_title(f"sample time ({plane})")
    else:
        axis.text(0.5, 0.5, "non-Cartesian sampling", ha="center", va="center")
        axis.axis("off")
    axis = figure.add_subplot(grid[1, 1:])
    rotvec, translation = rotvec_from_transform(motion.transforms) if motion.rigid else (None, None)
    steps = np.append(motion.times_s, min(motion.end_s, sampling.duration_s))
    if rotvec is not None:
        for index, name in enumerate("xyz"):
            axis.stairs(np.degrees(rotvec[:, index]), steps, label=f"rotation {name} (deg)", baseline=None)
            axis.stairs(translation[:, index], steps, label=f"translation {name} (mm)", baseline=None, linestyle="--")
    axis.set_xlabel("time (s)")
    axis.set_title(f"motion ({len(motion)} states; scanner LPS, about the isocentre)")
    axis.legend(ncol=2, fontsize="small")
    axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)
