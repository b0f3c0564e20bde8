"""Motion CSV files: round trips, constant poses, coverage of what is read back, refused inputs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from mrmotion.errors import InputFileError, MrMotionError, OutputFileError
from mrmotion.io.motion_csv import read_motion_csv, write_motion_csv
from mrmotion.io.tracking import CSV_HEADER, TrackingLog
from mrmotion.physics.motion_models import from_tracking, respiratory, sudden
from mrmotion.physics.trajectory import MotionTrajectory
from tests.helpers import random_rigid


def _random_trajectory(seed: int, count: int = 12, end_s: float = 31.5) -> MotionTrajectory:
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, 30.0, count))
    return MotionTrajectory(times, random_rigid(rng, count), end_s)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_random_trajectory(tmp_path: Path, seed: int) -> None:
    trajectory = _random_trajectory(seed)
    path = write_motion_csv(tmp_path / "motion.csv", trajectory)
    lines = path.read_text().splitlines()
    assert lines[0] == CSV_HEADER and len(lines) == 1 + len(trajectory) + 1  # closing row at end_s
    back = read_motion_csv(path)
    np.testing.assert_array_equal(back.times_s, trajectory.times_s)
    assert back.end_s == trajectory.end_s and back.rigid
    np.testing.assert_allclose(back.transforms, trajectory.transforms, rtol=0, atol=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["motion.csv"]


def test_round_trip_of_a_model(tmp_path: Path) -> None:
    trajectory = sudden(2.0, 302.0, 3.0, 3.0, rate_large=2, rate_small=3, centre_mm=[0, -10, 40], seed=4)
    back = read_motion_csv(write_motion_csv(tmp_path / "sudden.csv", trajectory))
    np.testing.assert_array_equal(back.times_s, trajectory.times_s)
    assert back.end_s == 302.0
    np.testing.assert_allclose(back.transforms, trajectory.transforms, rtol=0, atol=1e-12)


def test_single_row_is_a_constant_pose(tmp_path: Path) -> None:
    pose = random_rigid(np.random.default_rng(3))
    path = write_motion_csv(tmp_path / "constant.csv", MotionTrajectory.constant(pose))
    assert len(path.read_text().splitlines()) == 2
    back = read_motion_csv(path)
    assert len(back) == 1 and back.end_s == np.inf
    np.testing.assert_allclose(back.at([-1e6, 0.0, 5e3]), np.broadcast_to(pose, (3, 4, 4)), atol=1e-12)
    # A single state with a finite end is written with a closing row and keeps its span.
    bounded = MotionTrajectory(np.array([1.0]), pose[None], 4.0)
    again = read_motion_csv(write_motion_csv(tmp_path / "bounded.csv", bounded))
    assert again.end_s == 4.0 and len(again) == 1


def test_file_not_covering_the_scan_says_the_covered_span(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text(f"{CSV_HEADER}\n0.0,0,0,0,0,0,0,1\n5.0,1,0,0,0,0,0,1\n10.0,1,0,0,0,0,0,1\n")
    trajectory = read_motion_csv(path)
    assert len(trajectory) == 2 and trajectory.end_s == 10.0
    assert trajectory.state_index([0.0, 4.9, 5.0, 10.0]).tolist() == [0, 0, 1, 1]
    with pytest.raises(MrMotionError, match="covers 0 s to 10 s"):
        trajectory.state_index(np.linspace(0.0, 12.0, 5))


def test_tracked_motion_drops_only_its_closing_instant(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    trajectory = from_tracking(TrackingLog(np.arange(6) * 0.5, random_rigid(rng, 6)))
    back = read_motion_csv(write_motion_csv(tmp_path / "tracked.csv", trajectory))
    np.testing.assert_array_equal(back.times_s, trajectory.times_s[:-1])
    assert back.end_s == trajectory.end_s
    np.testing.assert_allclose(back.transforms, trajectory.transforms[:-1], atol=1e-12)


def test_bad_inputs_raise(tmp_path: Path) -> None:
    affine = respiratory(0.0, 10.0, 5.0, 4.0)
    with pytest.raises(MrMotionError, match="rigid poses only"):
        write_motion_csv(tmp_path / "a.csv", affine)
    open_ended = dataclasses.replace(_random_trajectory(0), end_s=np.inf)
    with pytest.raises(MrMotionError, match="finite end_s"):
        write_motion_csv(tmp_path / "b.csv", open_ended)
    with pytest.raises(MrMotionError, match="only at"):
        write_motion_csv(tmp_path / "c.csv", MotionTrajectory(np.array([1.0]), np.eye(4)[None], 1.0))
    with pytest.raises(MrMotionError, match="expected a MotionTrajectory"):
        write_motion_csv(tmp_path / "d.csv", np.eye(4))
    assert list(tmp_path.iterdir()) == []
    source = write_motion_csv(tmp_path / "in.csv", _random_trajectory(1))
    with pytest.raises(OutputFileError, match="also an input"):
        write_motion_csv(source, _random_trajectory(2), inputs=[source])
    with pytest.raises(OutputFileError, match="does not exist"):
        write_motion_csv(tmp_path / "missing" / "e.csv", _random_trajectory(2))

    with pytest.raises(InputFileError, match="motion CSV file does not exist"):
        read_motion_csv(tmp_path / "nothing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{CSV_HEADER}\n0.0,0,0,0,0,0,0,1\n1.0,0,0,zero,0,0,0,1\n")
    with pytest.raises(InputFileError, match=re.escape(f"{bad}:3:") + ".*tz_mm"):
        read_motion_csv(bad)
    bad.write_text(f"{CSV_HEADER}\n1.0,0,0,0,0,0,0,1\n0.5,0,0,0,0,0,0,1\n")
    with pytest.raises(InputFileError, match=re.escape(f"{bad}:3:") + ".*strictly increasing"):
        read_motion_csv(bad)
    bad.write_text("time,x,y,z\n0,0,0,0\n")
    with pytest.raises(InputFileError, match="header"):
        read_motion_csv(bad)
    bad.write_text(f"{CSV_HEADER}\n")
    with pytest.raises(InputFileError, match="no tracking samples"):
        read_motion_csv(bad)
