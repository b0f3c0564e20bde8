"""The command line end to end: every command on the demo's files, and on bad input (clear error, nothing written)."""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mrmotion.cli import app
from mrmotion.demo.run import SESSION_S, run_demo
from mrmotion.demo.session import synthetic_session
from mrmotion.geometry.parameters import rotation_distance, translation_distance

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    run_demo(folder, scan=False)  # the scan half (minutes) is covered by tests/test_cli_scan.py piece by piece
    return folder


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def test_help_explains_frames_and_units():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "LPS" in result.output and "mm" in result.output
    for command in ("calibrate", "prescribe", "motion-report", "demo"):
        help_text = invoke(command, "--help").output
        assert invoke(command, "--help").exit_code == 0
        assert "mm" in help_text or "deg" in help_text, command


def test_demo_outputs_and_ground_truth(demo_dir):
    summary = json.loads((demo_dir / "summary.json").read_text())
    assert summary["calibration"]["rotation_error_deg"] < 0.5
    assert summary["calibration"]["translation_error_mm"] < 1.0
    assert summary["prospective"]["max_tracking_error_mm"] < 0.5  # the slices follow the head
    assert summary["prospective"]["updates"] == 1200 * 24
    for name in summary["files"]:
        assert (demo_dir / name).stat().st_size > 0


def test_calibrate_command(demo_dir, tmp_path):
    output = tmp_path / "X.json"
    result = invoke(
        "calibrate",
        "--tracker",
        demo_dir / "calibration_tracker.csv",
        "--scanner",
        demo_dir / "calibration_scanner.csv",
        "-o",
        output,
        "--method",
        "daniilidis",
    )
    assert result.exit_code == 0, result.output
    assert "median" in result.output
    record = json.loads(output.read_text())
    assert record["source"] == "camera" and record["target"] == "scanner" and record["method"] == "daniilidis"
    truth = synthetic_session(0).scanner_from_camera
    assert np.degrees(rotation_distance(record["matrix"], truth)) < 0.5
    assert translation_distance(record["matrix"], truth) < 1.0


def test_prescribe_command(demo_dir, tmp_path):
    output = tmp_path / "updates.csv"
    result = invoke(
        "prescribe",
        "--slices",
        demo_dir / "slices.json",
        "--tracker",
        demo_dir / "tracker.csv",
        "--calibration",
        demo_dir / "scanner_from_camera.json",
        "-o",
        output,
    )
    assert result.exit_code == 0, result.output
    with output.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1200 * 24
    first = rows[0]
    assert float(first["time_s"]) == 0.0 and first["slice"] == "0"
    assert abs(float(first["b_tx_mm"])) < 1e-9  # B is the identity at the reference time
    directions = np.array([[float(rows[-1][f"{axis}_{c}"]) for c in "xyz"] for axis in ("read", "phase", "slice")])
    np.testing.assert_allclose(directions @ directions.T, np.eye(3), atol=1e-8)


def test_motion_report_command(demo_dir, tmp_path):
    output = tmp_path / "motion.png"
    result = invoke("motion-report", demo_dir / "tracker.csv", "-o", output)
    assert result.exit_code == 0, result.output
    assert output.read_bytes()[:4] == b"\x89PNG"
    assert "max rotation" in result.output


def test_tracker_motion_command(demo_dir, tmp_path):
    """The tracked motion in the scanner frame, as the demo's ground truth has it (up to tracker noise), at scan
    times shifted by --time-offset, and about the pose at --reference-time."""
    from mrmotion.io.motion_csv import read_motion_csv

    session = synthetic_session(0, duration_s=SESSION_S)
    truth = session.scanner_from_head @ np.linalg.inv(session.scanner_from_head[0])
    tracker, calibration = demo_dir / "tracker.csv", demo_dir / "scanner_from_camera.json"
    output = tmp_path / "motion.csv"
    result = invoke("tracker-motion", tracker, "--calibration", calibration, "-o", output)
    assert result.exit_code == 0, result.output
    motion = read_motion_csv(output)
    assert motion.times_s[0] == 0.0 and len(motion) == len(session.times_s) - 1  # the last row closes the span
    states = motion.transforms
    assert np.degrees(rotation_distance(states, truth[: len(states)])).max() < 0.1
    assert translation_distance(states, truth[: len(states)]).max() < 0.5
    shifted = tmp_path / "shifted.csv"
    args = ("--calibration", calibration, "--time-offset", "2.5", "--reference-time", "60", "-o", shifted)
    assert invoke("tracker-motion", tracker, *args).exit_code == 0
    moved = read_motion_csv(shifted)
    np.testing.assert_allclose(moved.times_s, motion.times_s - 2.5)
    at_reference = int(np.argmin(np.abs(moved.times_s - 60)))
    np.testing.assert_allclose(moved.transforms[at_reference], np.eye(4), atol=1e-9)
    _assert_fails(
        ["tracker-motion", tracker, "--calibration", calibration, "--reference-time", "500", "-o", tmp_path / "a.csv"],
        "outside the tracked span",
        tmp_path,
    )
    _assert_fails(
        ["tracker-motion", tracker, "--calibration", calibration, "--time-offset", "nan", "-o", tmp_path / "a.csv"],
        "finite number of seconds",
        tmp_path,
    )
    _assert_fails(["tracker-motion", tracker, "--calibration", calibration, "-o", tmp_path / "a.txt"], ".csv", tmp_path)
    wrong = ["tracker-motion", tracker, "--calibration", tracker, "-o", tmp_path / "a.csv"]  # a CSV as calibration
    _assert_fails(wrong, "tracker.csv", tmp_path)
    invalid = tmp_path / "invalid.csv"
    invalid.write_text("time_s,tx_mm,ty_mm,tz_mm,qx,qy,qz,qw\n0,0,0,0,0,0,0,0\n")
    wrong = ["tracker-motion", invalid, "--calibration", calibration, "-o", tmp_path / "a.csv"]
    _assert_fails(wrong, "invalid.csv:2: quaternion norm 0", tmp_path)


def _assert_fails(args, message, folder):
    before = sorted(path.name for path in folder.iterdir())
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert sorted(path.name for path in folder.iterdir()) == before


def test_bad_input_gives_one_clear_line_and_writes_nothing(demo_dir, tmp_path):
    tracker, scanner = demo_dir / "calibration_tracker.csv", demo_dir / "calibration_scanner.csv"
    out = tmp_path / "X.json"
    _assert_fails(
        ["calibrate", "--tracker", tmp_path / "missing.csv", "--scanner", scanner, "-o", out],
        "does not exist",
        tmp_path,
    )
    _assert_fails(
        ["calibrate", "--tracker", tracker, "--scanner", scanner, "-o", out, "--method", "magic"], "magic", tmp_path
    )
    short = tmp_path / "short.csv"
    short.write_text("".join(tracker.read_text().splitlines(keepends=True)[:3]))
    _assert_fails(["calibrate", "--tracker", short, "--scanner", short, "-o", out], "at least 3", tmp_path)
    broken = tmp_path / "broken.csv"
    broken.write_text(tracker.read_text().replace("\n3.0,", "\n3.0,abc,", 1))
    _assert_fails(["calibrate", "--tracker", broken, "--scanner", scanner, "-o", out], "broken.csv:", tmp_path)
    copy = tmp_path / "tracker_copy.csv"
    copy.write_text(tracker.read_text())
    before = copy.read_text()
    _assert_fails(["calibrate", "--tracker", copy, "--scanner", scanner, "-o", copy], "also an input", tmp_path)
    assert copy.read_text() == before

    scaled = tmp_path / "scaled.json"
    scaled.write_text(json.dumps({"matrix": np.diag([1, 1, 1.2, 1]).tolist(), "source": "camera", "target": "scanner"}))
    _assert_fails(
        [
            "prescribe",
            "--slices",
            demo_dir / "slices.json",
            "--tracker",
            demo_dir / "tracker.csv",
            "--calibration",
            scaled,
            "-o",
            tmp_path / "u.csv",
        ],
        "not a rigid",
        tmp_path,
    )
    tracker_mode = ["prescribe", "--slices", demo_dir / "slices.json", "--tracker", demo_dir / "tracker.csv"]
    _assert_fails(
        [*tracker_mode, "--calibration", demo_dir / "scanner_from_camera.json", "--min-confidence", "0.2", "-o", out],
        "tracker poses carry no confidence",
        tmp_path,
    )
    _assert_fails(["motion-report", demo_dir / "tracker.csv", "-o", tmp_path / "motion.txt"], ".png", tmp_path)
    _assert_fails(
        ["motion-report", demo_dir / "tracker.csv", "-o", tmp_path / "nofolder" / "m.png"], "does not exist", tmp_path
    )


def test_demo_refuses_a_file_as_folder(tmp_path):
    target = tmp_path / "file"
    target.write_text("keep me")
    result = invoke("demo", "-o", target)
    assert result.exit_code == 2 and "not a folder" in result.output
    assert target.read_text() == "keep me"
