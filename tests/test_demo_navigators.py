"""The demo's pose step (navigators → `mrmotion pose` → slices following the anatomy) and its report section."""

import json
import re

import numpy as np
import pytest

from mrmotion.demo import navigators
from mrmotion.demo.run import SESSION_S, run_demo, write_report
from mrmotion.demo.session import synthetic_session
from mrmotion.errors import MrMotionError
from mrmotion.geometry.parameters import rotation_distance
from mrmotion.geometry.transforms import invert_rigid
from mrmotion.report.html import Report


@pytest.fixture(scope="module")
def session():
    return synthetic_session(0, duration_s=SESSION_S)


def test_navigators_span_the_session_and_its_largest_turn(session):
    indices = navigators.navigator_indices(session, 3)
    motion = session.scanner_from_head @ invert_rigid(session.scanner_from_head[0])
    turned = [rotation_distance(m, np.eye(4)) for m in motion]
    assert indices[0] == 0 and indices[-1] == len(session.times_s) - 1
    assert int(np.argmax(turned)) in indices and len(indices) <= 4
    with pytest.raises(MrMotionError, match="at least 2 navigators"):
        navigators.navigator_indices(session, 1)


def test_navigator_demo_and_its_report(session, tmp_path):
    # start, end and the largest turn: 3 navigators
    pose = navigators.run_navigator_demo(tmp_path, session, lambda message: None, count=2)
    rows = pose["navigators"]
    assert len(rows) == 3
    assert sorted(p.name for p in (tmp_path / "poses").iterdir()) == [f"navigator_0{i}.json" for i in range(3)]
    written = json.loads((tmp_path / "poses" / "navigator_00.json").read_text())
    assert written["source"] == "head" and written["target"] == "scanner" and 0 <= written["confidence"] <= 1
    # the first navigator sets both stacks: they agree there; every pose is a real estimate of this adult head
    assert rows[0]["no_loop_deg_mm"] == rows[0]["loop_deg_mm"]
    assert all(row["rotation_error_deg"] is not None and row["rotation_error_deg"] < 20 for row in rows)
    assert rows[0]["true_rotation_from_start_deg"] == 0.0 and max(r["true_rotation_from_start_deg"] for r in rows) > 1
    # the report: every figure it shows is where it says (the scan's figure lives in scan/)
    run_demo(tmp_path, scan=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["pose"] = pose
    report = write_report(tmp_path / "report.html", summary)
    text = report.read_text()
    assert "Head pose from navigators" in text
    for source in re.findall(r'<img src="([^"]+)"', text):
        assert (tmp_path / source).is_file(), source


def test_report_figures_keep_their_folder():
    report = Report("t")
    report.figure("scan/simulation.png", "a caption")
    report.figure('odd"name.png', "x")
    assert '<img src="scan/simulation.png"' in report.parts[0]
    assert 'src="odd&quot;name.png"' in report.parts[1]
