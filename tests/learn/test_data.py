"""Training pairs: geometry of the working grid, normalisation, seeded and honest corruption, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from mrmotion.errors import MrMotionError
from mrmotion.learn import data
from mrmotion.learn.correct import from_working_grid
from mrmotion.report.metrics import image_quality
from tests.learn.conftest import phantom


def test_working_grid_round_trip_keeps_a_smooth_image_and_its_placement():
    rng = np.random.default_rng(1)
    shape = (int(rng.integers(90, 200)), int(rng.integers(90, 200)))
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = np.exp(-(((y - 0.4 * shape[0]) / 25.0) ** 2) - ((x - 0.6 * shape[1]) / 30.0) ** 2)
    small, pixel_mm = data.to_working_grid(image, 1.0)
    assert small.shape == (data.WORKING_SIZE, data.WORKING_SIZE)
    assert pixel_mm == pytest.approx(max(shape) / data.WORKING_SIZE)
    back = from_working_grid(small, shape)
    assert back.shape == shape
    assert np.abs(back - image).max() < 0.03  # resampling error of a smooth blob, not a shift
    assert np.unravel_index(back.argmax(), shape) == pytest.approx(np.unravel_index(image.argmax(), shape), abs=2)


def test_normalise_uses_the_99_5th_percentile_and_survives_zeros():
    image = np.random.default_rng(2).uniform(0, 7, (64, 64))
    out, scale = data.normalise(image)
    assert scale == pytest.approx(np.percentile(image, 99.5))
    assert np.percentile(out, 99.5) == pytest.approx(1.0)
    assert data.normalise(np.zeros((8, 8)))[1] == 1.0


def test_pairs_are_seeded_and_the_corruption_is_real(phantom_slices):
    a = data.make_pair(phantom_slices[0], "sudden", "moderate", seed=5)
    b = data.make_pair(phantom_slices[0], "sudden", "moderate", seed=5)
    c = data.make_pair(phantom_slices[0], "sudden", "moderate", seed=6)
    np.testing.assert_array_equal(a.corrupted, b.corrupted)
    assert not np.array_equal(a.corrupted, c.corrupted)
    assert a.clean.shape == a.corrupted.shape == (data.WORKING_SIZE, data.WORKING_SIZE)
    assert np.percentile(a.corrupted, 99.5) == pytest.approx(1.0, rel=1e-4)
    severe = data.make_pair(phantom_slices[0], "drift", "severe", seed=5)
    light = data.make_pair(phantom_slices[0], "drift", "light", seed=5)
    assert image_quality(severe.corrupted, severe.clean)["ssim"] < image_quality(light.corrupted, light.clean)["ssim"]


def test_make_pairs_cycles_families_and_severities_and_mixes_in_motion_free_pairs(phantom_slices):
    pairs = data.make_pairs(phantom_slices, 8, ("sudden", "drift"), ("light", "moderate"), seed=0, clean_share=0.5)
    assert pairs["clean"].shape == (8, data.WORKING_SIZE, data.WORKING_SIZE)
    moved = pairs["family"] != "none"
    assert 0 < moved.sum() < 8  # seed 0 gives both kinds
    assert set(pairs["family"][moved]) <= {"sudden", "drift"}
    still = ~moved
    # a motion-free pair differs from its clean image by noise only
    assert all(image_quality(pairs["corrupted"][i], pairs["clean"][i])["nrmse"] < 0.1 for i in np.flatnonzero(still))


def test_pairs_made_in_two_processes_are_those_made_in_one(phantom_slices):
    one = data.make_pairs(phantom_slices, 5, ("drift",), ("moderate",), seed=3, clean_share=0.3)
    counted = []
    two = data.make_pairs(phantom_slices, 5, ("drift",), ("moderate",), seed=3, clean_share=0.3,
                          progress=counted.append, workers=2)  # fmt: skip
    assert sum(counted) == 5
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])


def test_bad_requests_are_refused(tmp_path):
    with pytest.raises(MrMotionError, match="split"):
        data.mni_slices("validation")
    with pytest.raises(MrMotionError, match="no fetal atlas"):
        data.atlas_slices(tmp_path, "train")
    with pytest.raises(MrMotionError, match="no slices"):
        data.make_pairs([], 2, ("sudden",), ("light",), 0)
    with pytest.raises(MrMotionError, match="workers"):
        data.make_pairs([data.SliceImage(phantom(), 1.8, "phantom")], 2, ("sudden",), ("light",), 0, workers=0)
    with pytest.raises(MrMotionError, match="severity"):
        data.corrupt_slice(phantom(), 1.8, "sudden", "extreme", 0)
