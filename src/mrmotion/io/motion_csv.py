"""Motion CSV files: a rigid :class:`~mrmotion.physics.trajectory.MotionTrajectory` as a table of poses.

The columns are the tracking-log CSV's, ``time_s,tx_mm,ty_mm,tz_mm,qx,qy,qz,qw`` (time in s, translation in mm,
**scalar-last** unit quaternion), parsed and validated by :mod:`mrmotion.io.tracking`. Each row is the rigid
transform that moves the object away from where it is in the input image, from that time on, in scanner LPS mm
about the isocentre.

Reading (:func:`read_motion_csv`):

* one row: one constant pose for the whole scan (``end_s = inf``; its time is kept but every time is covered);
* several rows: one state per row except the last, whose time is the trajectory's ``end_s``; the last row only
  closes the span (its pose is the pose at that instant, which the piecewise-constant trajectory does not keep).

Writing (:func:`write_motion_csv`) is the inverse: one row per state at its start time, then a closing row at
``end_s`` repeating the last state, so reading back covers the same span with the same states.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mrmotion.errors import MrMotionError
from mrmotion.io.files import check_output, require_file
from mrmotion.io.tracking import TrackingLog, read_tracking_csv, write_tracking_csv
from mrmotion.physics.trajectory import MotionTrajectory


def write_motion_csv(path: str | Path, trajectory: MotionTrajectory, *, inputs: Iterable[str | Path] = ()) -> Path:
    """Write a rigid motion trajectory as a motion CSV, atomically (see the module docstring for the layout).

    Numbers are written in shortest round-trip form: times and translations read back exactly, rotations to
    within float64 rounding of the quaternion conversion (≈1e-16).

    Parameters
    ----------
    path
        Output file; its folder must exist and it must not be one of ``inputs``.
    trajectory
        Rigid motion. Refused: affine motion (``rigid=False``: the format holds rigid poses only); several
        states with no end (``end_s = inf``: the last row would be read as closing the span); a single state
        holding only at one instant (``end_s == times_s[0]``: one row means a constant pose for the whole scan).
        A last state holding only at the instant ``end_s`` (as :func:`~mrmotion.physics.motion_models.from_tracking`
        makes) is written as the closing row, so reading back drops it.
    inputs
        Files this output was derived from, which it must never overwrite.

    Returns
    -------
    Path
        ``path``.
    """
    path = check_output(path, inputs)
    if not isinstance(trajectory, MotionTrajectory):
        raise MrMotionError(f"{path}: expected a MotionTrajectory to write, got {type(trajectory).__name__}")
    if not trajectory.rigid:
        raise MrMotionError(
            f"{path}: motion CSV files hold rigid poses only, but this trajectory is affine (rigid=False); "
            "affine motion (e.g. respiratory scaling) cannot be written as translation + quaternion"
        )
    times, transforms, end = trajectory.times_s, trajectory.transforms, float(trajectory.end_s)
    if math.isinf(end) and len(trajectory) > 1:
        raise MrMotionError(
            f"{path}: the trajectory has {len(trajectory)} states and no end (end_s = inf); a motion CSV's last "
            "row closes the span, so give a finite end_s (dataclasses.replace(trajectory, end_s=...))"
        )
    if len(trajectory) == 1 and end == times[0]:
        raise MrMotionError(
            f"{path}: a single state holding only at {end!r} s cannot be written: one row means a constant pose "
            "for the whole scan; give end_s > the state's time, or inf for a constant pose"
        )
    if math.isfinite(end) and end > times[-1]:
        times, transforms = np.append(times, end), np.concatenate([transforms, transforms[-1:]])
    return write_tracking_csv(path, TrackingLog(times, transforms), inputs=inputs)


def read_motion_csv(path: str | Path) -> MotionTrajectory:
    """Read a motion CSV (see the module docstring) as a rigid trajectory.

    Parameters
    ----------
    path
        The CSV file; malformed entries raise :class:`~mrmotion.errors.InputFileError` naming file and line.

    Returns
    -------
    MotionTrajectory
        One constant pose (``end_s = inf``) for a single row; else states at the row times, ending at the last
        row's time (asking for a time outside that span is an error stating the covered span).
    """
    log = read_tracking_csv(require_file(path, "motion CSV"))
    if len(log) == 1:
        return MotionTrajectory(log.times_s, log.camera_from_marker, math.inf)
    return MotionTrajectory(log.times_s[:-1], log.camera_from_marker[:-1], float(log.times_s[-1]))
