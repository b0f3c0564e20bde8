"""Tracking logs: CSV and XPACE reading, CSV writing, validation with file:line, and pose resampling."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mrmotion.errors import InputFileError, MrMotionError, OutputFileError, TransformError
from mrmotion.geometry.parameters import rotation_angle, rotation_distance, transform_from_rotvec
from mrmotion.io.tracking import (
    CSV_HEADER,
    TrackingLog,
    read_tracking_csv,
    read_tracking_log,
    read_xpace_log,
    resample_poses,
    write_tracking_csv,
)


def random_log(count: int = 20, seed: int = 0) -> TrackingLog:
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(0.001, 0.1, count)) + rng.uniform(-5, 5)
    poses = transform_from_rotvec(rng.normal(scale=1.0, size=(count, 3)), rng.normal(scale=50.0, size=(count, 3)))
    return TrackingLog(times, poses)


def where(path: Path, line: int | None = None) -> str:
    """Regex for the start of an InputFileError message: ``path:line:``."""
    return re.escape(f"{path}:{line}:" if line is not None else f"{path}:")


# --- round trips and tolerant parsing


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_csv_round_trip_random_poses(tmp_path: Path, seed: int) -> None:
    log = random_log(seed=seed)
    path = write_tracking_csv(tmp_path / "log.csv", log)
    back = read_tracking_csv(path)
    np.testing.assert_array_equal(back.times_s, log.times_s)
    np.testing.assert_array_equal(back.camera_from_marker[:, :3, 3], log.camera_from_marker[:, :3, 3])
    np.testing.assert_allclose(back.camera_from_marker, log.camera_from_marker, rtol=0, atol=1e-15)
    assert back.valid.all() and back.valid.shape == (20,)
    assert path.read_text().splitlines()[0] == CSV_HEADER
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


def test_csv_tolerates_whitespace_comments_blank_lines_and_normalises(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "# exported by tracker\n\n time_s , tx_mm,ty_mm,tz_mm,qx,qy,qz,qw \n"
        " 0.0, 1, 2, 3, 0, 0, 0, 1.0005\n# a comment\n\n0.5,4,5,6,0,0,0.70710678,0.70710678\r\n\n"
    )
    log = read_tracking_csv(path)
    np.testing.assert_array_equal(log.times_s, [0.0, 0.5])
    np.testing.assert_allclose(
        log.camera_from_marker[0], np.diag([1.0, 1, 1, 1]) + np.c_[np.zeros((4, 3)), [1, 2, 3, 0]]
    )
    np.testing.assert_allclose(rotation_angle(log.camera_from_marker[1]), np.pi / 2, atol=1e-8)
    path.write_text(f"{CSV_HEADER}\n0,0,0,0,0,0,0,1")  # no trailing newline
    assert len(read_tracking_csv(path)) == 1


def test_xpace_scalar_first_quaternion_90_degrees_about_z(tmp_path: Path) -> None:
    c = float(np.sqrt(0.5))
    path = tmp_path / "xpace.log"
    # q0 (scalar) = cos 45°, vector part (0, 0, sin 45°): 90° about +z, which maps +x onto +y.
    path.write_text(f"# frame time x y z ( qx qy qz ) q0 status\n12 3.125 1.5 -2.0 0.25 ( 0 0 {c!r} ) {c!r} 1\n")
    log = read_xpace_log(path)
    pose = log.camera_from_marker[0]
    np.testing.assert_allclose(pose[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-15)
    np.testing.assert_allclose(pose[:3, :3] @ [0, 0, 1], [0, 0, 1], atol=1e-15)
    np.testing.assert_array_equal(pose[:3, 3], [1.5, -2.0, 0.25])
    np.testing.assert_array_equal(log.times_s, [3.125])
    assert log.valid.tolist() == [True]


def test_xpace_general_rotation_matches_scipy_scalar_first(tmp_path: Path) -> None:
    rotations = Rotation.random(5, rng=3)
    quat = rotations.as_quat(scalar_first=True).tolist()  # (q0, qx, qy, qz)
    lines = [f"{i} {0.1 * i!r} {i} 0 0 ({q[1]!r} {q[2]!r} {q[3]!r}) {q[0]!r} {i % 2}" for i, q in enumerate(quat)]
    path = tmp_path / "xpace.log"
    path.write_text("\n".join(lines) + "\n")
    log = read_xpace_log(path)
    np.testing.assert_allclose(log.camera_from_marker[:, :3, :3], rotations.as_matrix(), atol=1e-14)
    assert log.valid.tolist() == [False, True, False, True, False]  # status 0 = invalid, nonzero = valid


def test_dispatch_by_content(tmp_path: Path) -> None:
    csv = write_tracking_csv(tmp_path / "a.txt", random_log(3))
    xpace = tmp_path / "b.txt"
    xpace.write_text("\n1 0.0 0 0 0 ( 0 0 0 ) 1 1\n2 0.1 0 0 0 ( 0 0 0 ) 1 0\n")
    assert len(read_tracking_log(csv)) == 3
    assert read_tracking_log(xpace).valid.tolist() == [True, False]


# --- malformed input: file and line named

GOOD = "0.0,0,0,0,0,0,0,1"
CSV_CASES = {
    "empty": ("", None, "is empty; expected the header"),
    "comments only": ("# nothing\n\n", None, "is empty"),
    "header only": (f"{CSV_HEADER}\n", None, "holds no tracking samples"),
    "wrong header": ("t,x,y,z,qx,qy,qz,qw\n" + GOOD, 1, re.escape(f"is not the expected '{CSV_HEADER}'")),
    "scalar-first header": ("time_s,tx_mm,ty_mm,tz_mm,qw,qx,qy,qz\n" + GOOD, 1, "is not the expected"),
    "header after comment": ("# c\ntime_s,tx_mm\n" + GOOD, 2, "is not the expected"),
    "too few fields": (f"{CSV_HEADER}\n{GOOD}\n0.1,0,0,0,0,0,1\n", 3, "expected 8 comma-separated fields"),
    "too many fields": (f"{CSV_HEADER}\n{GOOD},3\n", 2, "got 9"),
    "non-numeric": (
        f"{CSV_HEADER}\n{GOOD}\n\n0.1,0,abc,0,0,0,0,1\n",
        4,
        "column ty_mm: expected a number, got 'abc'",
    ),
    "empty field": (f"{CSV_HEADER}\n0.1,0,0,,0,0,0,1\n", 2, "column tz_mm: expected a number"),
    "nan": (f"{CSV_HEADER}\n0.1,0,0,0,nan,0,0,1\n", 2, "column qx: NaN or infinite"),
    "inf time": (f"{CSV_HEADER}\ninf,0,0,0,0,0,0,1\n", 2, "column time_s: NaN or infinite"),
    "repeated time": (
        f"{CSV_HEADER}\n{GOOD}\n#\n{GOOD}\n",
        4,
        "not after 0.0 s at line 2; times must be strictly",
    ),
    "time goes back": (f"{CSV_HEADER}\n1,0,0,0,0,0,0,1\n0.5,0,0,0,0,0,0,1\n", 3, "strictly increasing"),
    "quaternion norm 2": (f"{CSV_HEADER}\n{GOOD}\n1,0,0,0,0,0,0,2\n", 3, "quaternion norm 2 is not 1"),
    "zero quaternion": (f"{CSV_HEADER}\n0,0,0,0,0,0,0,0\n", 2, "quaternion norm 0 is not 1"),
}


@pytest.mark.parametrize("reader", [read_tracking_csv, read_tracking_log])
@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_malformed_csv(tmp_path: Path, reader, case: str) -> None:
    text, line, message = CSV_CASES[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    if reader is read_tracking_log and case in ("empty", "comments only"):  # no comma: tried as XPACE
        message = "holds no tracking samples"
    with pytest.raises(InputFileError, match=where(path, line) + ".*" + message):
        reader(path)


ONE = "1 0.0 0 0 0 ( 0 0 0 ) 1 1"
XPACE_CASES = {
    "empty": ("", None, "holds no tracking samples"),
    "comments only": ("# frame time x y z\n\n", None, "holds no tracking samples"),
    "missing field": (f"{ONE}\n2 0.1 0 0 ( 0 0 0 ) 1 1\n", 2, r"expected 10 numbers laid out as 'frame time"),
    "no brackets": (f"{ONE}\n\n2 0.1 0 0 0 0 0 0 1 1 0 0\n", 3, "laid out as"),
    "non-numeric qy": (f"{ONE}\n2 0.1 0 0 0 ( 0 x 0 ) 1 1\n", 2, "column qy: expected a number, got 'x'"),
    "non-integer status": (
        "2 0.1 0 0 0 ( 0 0 0 ) 1 1.5\n",
        1,
        "column status: expected an integer, got '1.5'",
    ),
    "non-integer frame": ("a 0.1 0 0 0 ( 0 0 0 ) 1 1\n", 1, "column frame: expected an integer"),
    "nan": (f"{ONE}\n2 0.1 0 NaN 0 ( 0 0 0 ) 1 1\n", 2, "column y: NaN or infinite"),
    "repeated time": (f"{ONE}\n#\n{ONE}\n", 3, "at line 1; times must be strictly increasing"),
    "zero quaternion": (f"{ONE}\n2 0.1 0 0 0 ( 0 0 0 ) 0 0\n", 2, "quaternion norm 0 is not 1"),
    "unnormalised": (f"{ONE}\n2 0.1 0 0 0 ( 0 0 0.1 ) 1 1\n", 2, "quaternion norm 1.00499 is not 1"),
}


@pytest.mark.parametrize("reader", [read_xpace_log, read_tracking_log])
@pytest.mark.parametrize("case", sorted(XPACE_CASES))
def test_malformed_xpace(tmp_path: Path, reader, case: str) -> None:
    text, line, message = XPACE_CASES[case]
    path = tmp_path / "bad.log"
    path.write_text(text)
    with pytest.raises(InputFileError, match=where(path, line) + ".*" + message):
        reader(path)


@pytest.mark.parametrize("reader", [read_tracking_csv, read_xpace_log, read_tracking_log])
def test_missing_and_binary_files(tmp_path: Path, reader) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(InputFileError, match=where(missing) + " tracking log file does not exist"):
        reader(missing)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"time_s\xff\xfe\n")
    with pytest.raises(InputFileError, match=where(binary) + " not a UTF-8 text file"):
        reader(binary)


# --- the log value and the writer


def test_tracking_log_validates_and_is_read_only() -> None:
    log = random_log(4)
    with pytest.raises(ValueError, match="read-only"):
        log.times_s[0] = 0.0
    with pytest.raises(MrMotionError, match="strictly increasing; entry 2 is not after entry 1"):
        TrackingLog([0.0, 1.0, 1.0, 2.0], log.camera_from_marker)
    with pytest.raises(MrMotionError, match=r"expected shape \(3, 4, 4\)"):
        TrackingLog([0.0, 1.0, 2.0], log.camera_from_marker)
    with pytest.raises(TransformError, match="not a rigid transform"):
        TrackingLog(log.times_s, log.camera_from_marker * 2.0 + np.diag([0, 0, 0, -1.0]))
    with pytest.raises(MrMotionError, match="valid: expected a bool array"):
        TrackingLog(log.times_s, log.camera_from_marker, np.ones(4))
    with pytest.raises(MrMotionError, match="non-empty 1-D"):
        TrackingLog([], np.zeros((0, 4, 4)))
    partial = TrackingLog(log.times_s, log.camera_from_marker, np.array([True, False, True, False]))
    np.testing.assert_array_equal(partial.valid_only().times_s, log.times_s[[0, 2]])
    with pytest.raises(MrMotionError, match="no valid samples"):
        TrackingLog(log.times_s, log.camera_from_marker, np.zeros(4, dtype=bool)).valid_only()


def test_write_errors_leave_folder_unchanged(tmp_path: Path) -> None:
    existing = tmp_path / "out.csv"
    existing.write_text("previous content\n")
    log = random_log(4)
    invalid = TrackingLog(log.times_s, log.camera_from_marker, np.array([True, False, True, True]))
    with pytest.raises(OutputFileError, match="1 invalid samples .first at index 1.*valid_only"):
        write_tracking_csv(existing, invalid)
    with pytest.raises(OutputFileError, match="expected a TrackingLog"):
        write_tracking_csv(existing, (log.times_s, log.camera_from_marker))  # type: ignore[arg-type]
    with pytest.raises(OutputFileError, match="is also an input"):
        write_tracking_csv(existing, log, inputs=[existing])
    with pytest.raises(OutputFileError, match="does not exist"):
        write_tracking_csv(tmp_path / "missing" / "out.csv", log)
    assert existing.read_text() == "previous content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    write_tracking_csv(existing, invalid.valid_only())
    assert len(read_tracking_csv(existing)) == 3


# --- resampling


def test_resample_exact_at_sample_times() -> None:
    log = random_log(10, seed=5)
    np.testing.assert_array_equal(resample_poses(log, log.times_s), log.camera_from_marker)
    np.testing.assert_array_equal(resample_poses(log, log.times_s[::-1]), log.camera_from_marker[::-1])


def test_resample_midpoint_is_slerp_and_linear() -> None:
    quarter_turn = transform_from_rotvec([0, 0, np.pi / 2], [10.0, -4.0, 2.0])
    log = TrackingLog([1.0, 3.0], np.stack([np.eye(4), quarter_turn]))
    middle = resample_poses(log, [2.0])[0]
    np.testing.assert_allclose(middle, transform_from_rotvec([0, 0, np.pi / 4], [5.0, -2.0, 1.0]), atol=1e-12)
    quarter = resample_poses(log, [1.5])[0]
    np.testing.assert_allclose(quarter[:3, :3], Rotation.from_rotvec([0, 0, np.pi / 8]).as_matrix(), atol=1e-12)
    # generic pair: the SLERP midpoint is equally far (geodesically) from both ends, at half their distance
    pair = random_log(2, seed=7)
    mid = resample_poses(pair, [pair.times_s.mean()])[0]
    ends = pair.camera_from_marker
    half = rotation_distance(ends[0], ends[1]) / 2
    np.testing.assert_allclose([rotation_distance(ends[0], mid), rotation_distance(mid, ends[1])], half, atol=1e-12)


def test_resample_skips_invalid_samples() -> None:
    quarter_turn = transform_from_rotvec([0, 0, np.pi / 2], [10.0, 0, 0])
    garbage = transform_from_rotvec([np.pi / 2, 0, 0], [500.0, 0, 0])
    log = TrackingLog([0.0, 1.0, 2.0], np.stack([np.eye(4), garbage, quarter_turn]), np.array([True, False, True]))
    np.testing.assert_allclose(
        resample_poses(log, [1.0])[0], transform_from_rotvec([0, 0, np.pi / 4], [5.0, 0, 0]), atol=1e-12
    )


def test_resample_refuses_to_extrapolate() -> None:
    log = TrackingLog([1.0, 3.0], np.stack([np.eye(4), np.eye(4)]))
    with pytest.raises(MrMotionError, match=re.escape("2 of 3 requested times (from 0.5 to 3.5 s) lie outside")):
        resample_poses(log, [0.5, 2.0, 3.5])
    with pytest.raises(MrMotionError, match=re.escape("[1.0, 3.0] s; poses are not extrapolated")):
        resample_poses(log, [3.0000001])
    single = TrackingLog([2.0], np.eye(4)[None])
    np.testing.assert_array_equal(resample_poses(single, [2.0, 2.0]), np.stack([np.eye(4)] * 2))
    with pytest.raises(MrMotionError, match=re.escape("[2.0, 2.0] s")):
        resample_poses(single, [2.1])
    with pytest.raises(MrMotionError, match="1-D array of finite times"):
        resample_poses(log, [[2.0]])
    with pytest.raises(MrMotionError, match="1-D array of finite times"):
        resample_poses(log, [np.nan])
