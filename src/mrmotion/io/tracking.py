"""Optical tracking logs: read and write marker poses over time, and resample them at other times.

What comes in: a text log of the marker pose in the tracking-camera frame (``camera_from_marker``, mm)
sampled at times in seconds. What goes out: a :class:`TrackingLog` of rigid 4×4 transforms (DESIGN.md §2),
or, from :func:`resample_poses`, the poses at requested times.

Two formats are read:

* **CSV**, header exactly ``time_s,tx_mm,ty_mm,tz_mm,qx,qy,qz,qw``: time (s), translation (mm) and a
  **scalar-last** unit quaternion. This is also the format written.
* **XPACE-style** lines ``frame time x y z ( qx qy qz ) q0 status``: times in seconds, translation in mm and a
  **scalar-first** quaternion on disk (the scalar ``q0`` comes after the bracketed vector part). It is
  converted to scalar-last ``(qx, qy, qz, q0)`` here, at the boundary. ``status`` is an integer: nonzero
  means the tracker reported a valid pose, zero an invalid one (kept, with ``valid=False``).

In both formats blank lines and lines starting with ``#`` are skipped. Every sample must parse to a rigid pose
(finite numbers, quaternion norm within 1e-3 of 1; it is then normalised) with strictly increasing times,
whatever its status: a malformed entry raises :class:`~mrmotion.errors.InputFileError` naming file and line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.transform import Rotation, Slerp

from mrmotion.errors import InputFileError, MrMotionError, OutputFileError
from mrmotion.geometry.parameters import quaternion_from_transform, transform_from_quaternion
from mrmotion.geometry.transforms import FloatArray, as_rigid
from mrmotion.io.files import check_output, read_text, require_file, write_text_atomic

#: The CSV header, fixed: time (s), translation (mm), scalar-last quaternion.
CSV_COLUMNS = ("time_s", "tx_mm", "ty_mm", "tz_mm", "qx", "qy", "qz", "qw")
CSV_HEADER = ",".join(CSV_COLUMNS)
#: Field names of an XPACE-style line, as they appear on disk (``(`` and ``)`` are literal tokens).
XPACE_FIELDS = ("frame", "time", "x", "y", "z", "(", "qx", "qy", "qz", ")", "q0", "status")
XPACE_NUMBERS = (1, 2, 3, 4, 6, 7, 8, 10)  # time, x, y, z, qx, qy, qz, q0
#: Largest accepted deviation of a quaternion's norm from 1 before it is normalised.
QUATERNION_NORM_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class TrackingLog:
    """Marker poses in the tracker (camera) frame over time. Arrays are validated, copied and read-only.

    Attributes
    ----------
    times_s : (T,) float64
        Sample times in seconds, finite and strictly increasing, T ≥ 1.
    camera_from_marker : (T, 4, 4) float64
        Rigid pose of the marker in the camera frame; translations in mm.
    valid : (T,) bool
        Whether the tracker reported the pose as valid (XPACE status ≠ 0). ``None`` (default) means all valid.
    """

    times_s: NDArray[np.float64]
    camera_from_marker: NDArray[np.float64]
    valid: NDArray[np.bool_] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        times = np.array(self.times_s, dtype=np.float64)
        if times.ndim != 1 or times.size == 0:
            raise MrMotionError(f"times_s: expected a non-empty 1-D array, got shape {times.shape}")
        if not np.all(np.isfinite(times)):
            raise MrMotionError("times_s: contains NaN or infinite values")
        if np.any(np.diff(times) <= 0):
            index = int(np.argmax(np.diff(times) <= 0)) + 1
            message = f"entry {index} is not after entry {index - 1}"
            raise MrMotionError(f"times_s: must be strictly increasing; {message}")
        poses = np.array(as_rigid(self.camera_from_marker, "camera_from_marker"), dtype=np.float64)
        if poses.shape != (times.size, 4, 4):
            raise MrMotionError(f"camera_from_marker: expected shape ({times.size}, 4, 4), got {poses.shape}")
        valid = np.ones(times.size, dtype=bool) if self.valid is None else np.array(self.valid)
        if valid.shape != times.shape or valid.dtype != np.bool_:
            message = f"expected a bool array of shape {times.shape}, got {valid.dtype} {valid.shape}"
            raise MrMotionError(f"valid: {message}")
        for name, array in (("times_s", times), ("camera_from_marker", poses), ("valid", valid)):
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return int(self.times_s.size)

    def valid_only(self) -> TrackingLog:
        """The log restricted to valid samples (raises :class:`MrMotionError` if none is valid)."""
        if not np.any(self.valid):
            raise MrMotionError("tracking log has no valid samples")
        keep = self.valid
        return TrackingLog(self.times_s[keep], self.camera_from_marker[keep], self.valid[keep])


def _content_lines(path: Path) -> list[tuple[int, str]]:
    """``(1-based line number, stripped text)`` of the non-blank, non-comment lines of a text file."""
    text = read_text(path)
    lines = ((number, raw.strip()) for number, raw in enumerate(text.split("\n"), start=1))
    return [(number, line) for number, line in lines if line and not line.startswith("#")]


def _numbers(path: Path, line: int, columns: tuple[str, ...], tokens: list[str]) -> list[float]:
    try:
        return [float(token) for token in tokens]
    except ValueError:
        for column, token in zip(columns, tokens, strict=True):
            try:
                float(token)
            except ValueError:
                message = f"column {column}: expected a number, got {token.strip()!r}"
                raise InputFileError(path, message, line=line) from None
        raise


def _integer(path: Path, line: int, column: str, token: str) -> int:
    try:
        return int(token)
    except ValueError:
        message = f"column {column}: expected an integer, got {token!r}"
        raise InputFileError(path, message, line=line) from None


def _build_log(
    path: Path, lines: list[int], rows: list[list[float]], valid: list[bool], columns: tuple[str, ...]
) -> TrackingLog:
    """Rows ``(time, tx, ty, tz, qx, qy, qz, qw)`` (scalar-last; column names as on disk) → log.

    Checks finiteness, quaternion norms and time order, naming the first offending line.
    """
    if not rows:
        raise InputFileError(path, "holds no tracking samples (empty, or header and comments only)")
    table = np.asarray(rows, dtype=np.float64)
    finite = np.isfinite(table)
    if not np.all(finite):
        row, column = np.argwhere(~finite)[0]
        message = f"column {columns[column]}: NaN or infinite value {table[row, column]} is not allowed"
        raise InputFileError(path, message, line=lines[row])
    times, translation, quat = table[:, 0], table[:, 1:4], table[:, 4:8]
    norms = np.linalg.norm(quat, axis=1)
    bad = np.abs(norms - 1.0) > QUATERNION_NORM_TOLERANCE
    if np.any(bad):
        index = int(np.argmax(bad))
        raise InputFileError(
            path,
            f"quaternion norm {norms[index]:.6g} is not 1 (tolerance {QUATERNION_NORM_TOLERANCE:g}); "
            "expected a unit quaternion",
            line=lines[index],
        )
    steps = np.diff(times)
    if np.any(steps <= 0):
        index = int(np.argmax(steps <= 0)) + 1
        raise InputFileError(
            path,
            f"time {float(times[index])!r} s is not after {float(times[index - 1])!r} s at line "
            f"{lines[index - 1]}; times must be strictly increasing",
            line=lines[index],
        )
    poses = transform_from_quaternion(quat / norms[:, None], translation)
    return TrackingLog(times, poses, np.asarray(valid, dtype=bool))


def read_tracking_csv(path: str | Path) -> TrackingLog:
    """Read a CSV tracking log (header ``time_s,tx_mm,ty_mm,tz_mm,qx,qy,qz,qw``, scalar-last quaternions).

    Parameters
    ----------
    path
        The CSV file. Whitespace around fields is ignored; blank and ``#`` lines are skipped.

    Returns
    -------
    TrackingLog
        ``camera_from_marker`` poses (mm) at ``times_s`` (s); every sample is marked valid.
    """
    path = require_file(path, "tracking log")
    return _parse_csv(path, _content_lines(path))


def _parse_csv(path: Path, content: list[tuple[int, str]]) -> TrackingLog:
    if not content:
        raise InputFileError(path, f"is empty; expected the header {CSV_HEADER!r} and one line per sample")
    header_line, header = content[0]
    if tuple(name.strip() for name in header.split(",")) != CSV_COLUMNS:
        raise InputFileError(path, f"header {header!r} is not the expected {CSV_HEADER!r}", line=header_line)
    lines, rows = [], []
    for number, text in content[1:]:
        tokens = text.split(",")
        if len(tokens) != len(CSV_COLUMNS):
            message = f"expected {len(CSV_COLUMNS)} comma-separated fields ({CSV_HEADER}), got {len(tokens)}"
            raise InputFileError(path, message, line=number)
        rows.append(_numbers(path, number, CSV_COLUMNS, tokens))
        lines.append(number)
    return _build_log(path, lines, rows, [True] * len(rows), CSV_COLUMNS)


def read_xpace_log(path: str | Path) -> TrackingLog:
    """Read an XPACE-style log: lines ``frame time x y z ( qx qy qz ) q0 status``.

    The quaternion is **scalar-first** on disk (``q0`` is the scalar part, after the bracketed vector part)
    and is returned converted to the project's scalar-last order. Brackets may touch the numbers
    (``(0.1 0.2 0.3)``).

    Parameters
    ----------
    path
        The log file; blank and ``#`` lines are skipped. ``frame`` and ``status`` must be integers.

    Returns
    -------
    TrackingLog
        ``camera_from_marker`` poses (mm) at ``times_s`` (s); ``valid`` is ``status != 0``.
    """
    path = require_file(path, "tracking log")
    return _parse_xpace(path, _content_lines(path))


def _parse_xpace(path: Path, content: list[tuple[int, str]]) -> TrackingLog:
    expected = " ".join(XPACE_FIELDS)
    names = tuple(XPACE_FIELDS[i] for i in XPACE_NUMBERS)
    lines, rows, valid = [], [], []
    for number, text in content:
        tokens = text.replace("(", " ( ").replace(")", " ) ").split()
        if len(tokens) != len(XPACE_FIELDS) or tokens[5] != "(" or tokens[9] != ")":
            message = f"expected {len(XPACE_FIELDS) - 2} numbers laid out as {expected!r}, got {text!r}"
            raise InputFileError(path, message, line=number)
        _integer(path, number, "frame", tokens[0])
        status = _integer(path, number, "status", tokens[11])
        # time x y z qx qy qz q0: the vector part comes first on disk, so this row is already scalar-last.
        rows.append(_numbers(path, number, names, [tokens[i] for i in XPACE_NUMBERS]))
        lines.append(number)
        valid.append(status != 0)
    return _build_log(path, lines, rows, valid, names)


def read_tracking_log(path: str | Path) -> TrackingLog:
    """Read a tracking log of either format: CSV if its first content line has a comma, else XPACE lines."""
    path = require_file(path, "tracking log")
    content = _content_lines(path)
    if content and "," in content[0][1]:
        return _parse_csv(path, content)
    return _parse_xpace(path, content)


def write_tracking_csv(path: str | Path, log: TrackingLog, *, inputs: Iterable[str | Path] = ()) -> Path:
    """Write ``log`` as a CSV tracking log (see :func:`read_tracking_csv`), atomically.

    Numbers are written with ``repr`` (shortest round-trip form), so times and translations read back bit for
    bit and rotations to within float64 rounding of the quaternion conversion. The quaternion is written with
    ``qw ≥ 0``. The CSV format has no status column, so a log with invalid samples is refused: write
    ``log.valid_only()`` to drop them explicitly.

    Parameters
    ----------
    path
        Output file; its folder must exist. It must not be one of ``inputs``.
    log
        The poses; build one from arrays with ``TrackingLog(times_s, camera_from_marker)``.
    inputs
        Files this output was derived from, which it must never overwrite.

    Returns
    -------
    Path
        ``path``.
    """
    path = check_output(path, inputs)
    if not isinstance(log, TrackingLog):
        raise OutputFileError(f"{path}: expected a TrackingLog to write, got {type(log).__name__}")
    if not np.all(log.valid):
        first = int(np.argmin(log.valid))
        raise OutputFileError(
            f"{path}: log has {int(np.sum(~log.valid))} invalid samples (first at index {first}) and the CSV "
            "format has no status column; write log.valid_only() to drop them"
        )
    quat, translation = quaternion_from_transform(log.camera_from_marker)
    table = np.column_stack([log.times_s, translation, quat])
    body = "\n".join(",".join(repr(float(value)) for value in row) for row in table)
    return write_text_atomic(path, f"{CSV_HEADER}\n{body}\n")


def resample_poses(log: TrackingLog, times_s: ArrayLike) -> FloatArray:
    """Poses of the valid samples of ``log`` interpolated at ``times_s``: translation linear, rotation SLERP.

    Invalid samples (``log.valid`` False) are not used: the poses on either side of them are interpolated.
    A requested time equal to a sample time returns that sample's pose exactly. No extrapolation: a time
    outside the range covered by the valid samples raises :class:`MrMotionError` stating that range.

    Parameters
    ----------
    log
        The tracking log (``camera_from_marker``, mm; times in s).
    times_s : (N,) array_like
        Times in seconds, in any order.

    Returns
    -------
    (N, 4, 4) float64
        ``camera_from_marker`` at each requested time.
    """
    times = np.asarray(times_s, dtype=np.float64)
    if times.ndim != 1 or not np.all(np.isfinite(times)):
        raise MrMotionError(f"times_s: expected a 1-D array of finite times in s, got shape {times.shape}")
    known = log.valid_only()
    start, stop = float(known.times_s[0]), float(known.times_s[-1])
    outside = (times < start) | (times > stop)
    if np.any(outside):
        raise MrMotionError(
            f"{int(np.sum(outside))} of {times.size} requested times (from {float(times.min())!r} to "
            f"{float(times.max())!r} s) "
            f"lie outside the range covered by the tracking log's valid samples, [{start!r}, {stop!r}] s; "
            "poses are not extrapolated"
        )
    out = np.empty((times.size, 4, 4))
    if len(known) > 1 and times.size:
        rotation = Slerp(known.times_s, Rotation.from_matrix(known.camera_from_marker[:, :3, :3]))(times)
        out[:] = np.eye(4)
        out[:, :3, :3] = rotation.as_matrix()
        for axis in range(3):
            out[:, axis, 3] = np.interp(times, known.times_s, known.camera_from_marker[:, axis, 3])
    index = np.clip(np.searchsorted(known.times_s, times), 0, len(known) - 1)
    exact = known.times_s[index] == times
    out[exact] = known.camera_from_marker[index[exact]]
    return out
