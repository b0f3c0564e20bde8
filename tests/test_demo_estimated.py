"""The demo's tracker-free step: a multi-shot slice whose motion `mrmotion recon --estimate-motion` finds."""

import re

import numpy as np
import pytest

from mrmotion.demo import estimated
from mrmotion.demo.run import write_report
from mrmotion.demo.scan import mni_template


@pytest.fixture(scope="module")
def step(tmp_path_factory):
    folder = tmp_path_factory.mktemp("estimated")
    mni_template(folder / "mni152_2mm.nii.gz")
    return folder, estimated.run_estimation_demo(folder, lambda message: None)


def test_the_estimated_motion_is_the_true_one_and_the_image_as_good(step):
    folder, summary = step
    assert summary["max_rotation_deg"] > 2.0  # the head did turn
    assert summary["max_rotation_error_deg"] < 0.2 and summary["max_shift_error_mm"] < 0.2, summary
    scores = summary["scores"]
    plain, found, true = (scores[name]["ssim"] for name in scores)
    assert plain < 0.8 and found > 0.95 and abs(found - true) < 0.01, scores
    for name in summary["files"]:
        assert (folder / name.rstrip("/")).exists(), name


def test_the_report_shows_the_step(step, tmp_path):
    folder, summary = step
    base = {
        "calibration": dict.fromkeys(
            ("rotation_error_deg", "translation_error_mm", "median_residual_rotation_deg",
             "median_residual_translation_mm"), 0.0),
        "motion": {"samples": 1, "max_translation_mm": 0.0, "max_rotation_deg": 0.0},
        "prospective": {"updates": 1, "slices": 1, "median_tracking_error_mm": 0.0, "max_tracking_error_mm": 0.0},
        "estimated": {key: value for key, value in summary.items() if key != "files"},
    }  # fmt: skip
    text = write_report(folder / "report.html", base).read_text()
    assert "motion estimated from the k-space data" in text
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert "slice_estimation.png" in sources and (folder / "slice_estimation.png").is_file()
    assert np.isfinite(summary["scores"]["motion estimated from the data"]["psnr_db"])
