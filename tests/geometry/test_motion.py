import numpy as np
import pytest
from hypothesis import given, settings

from mrmotion.errors import TransformError
from mrmotion.geometry.motion import (
    camera_motion,
    logical_cross_calibration,
    logical_motion,
    scanner_update,
    updated_slices,
)
from mrmotion.geometry.parameters import transform_from_rotvec
from mrmotion.geometry.transforms import apply, make_transform
from tests.helpers import random_rigid, seeds


@settings(max_examples=40, deadline=None)
@given(seeds)
def test_y_b_s_consistency_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    poses = random_rigid(rng, 6)  # P(t) = camera_from_marker
    calibration = random_rigid(rng)  # X = scanner_from_camera
    slices = random_rigid(rng, 4)  # S0_i = scanner_from_logical
    motion = camera_motion(poses, reference_index=2)
    np.testing.assert_allclose(motion[2], np.eye(4), atol=1e-12)
    y = logical_cross_calibration(slices, calibration)
    b = logical_motion(y, motion)
    s = updated_slices(slices, b)
    assert b.shape == s.shape == (6, 4, 4, 4)
    for t in range(6):
        a = poses[t] @ np.linalg.inv(poses[2])
        for i in range(4):
            y_i = np.linalg.inv(slices[i]) @ calibration
            np.testing.assert_allclose(y[i], y_i, atol=1e-9)
            np.testing.assert_allclose(b[t, i], y_i @ a @ np.linalg.inv(y_i), atol=1e-9)
            scanner_motion = calibration @ a @ np.linalg.inv(calibration)
            np.testing.assert_allclose(s[t, i], scanner_motion @ slices[i], atol=1e-9)


def test_updated_slice_follows_the_object():
    """A point fixed in the head keeps its logical coordinates in the updated slice frame."""
    rng = np.random.default_rng(4)
    calibration, slices, marker_from_head = random_rigid(rng), random_rigid(rng, 3), random_rigid(rng)
    poses = random_rigid(rng, 5, scale_mm=5)
    s = updated_slices(slices, logical_motion(logical_cross_calibration(slices, calibration), camera_motion(poses)))
    head_point = rng.normal(size=3) * 30
    # Scanner position of a head point at time t: X P(t) M h.
    scanner_points = apply(calibration @ poses @ marker_from_head, head_point)  # (5, 3)
    logical = apply(np.linalg.inv(s), scanner_points[:, None, :])  # (5, 3, 3)
    np.testing.assert_allclose(logical, np.broadcast_to(logical[0], logical.shape), atol=1e-9)


def test_scanner_update_of_a_pure_shift():
    slices = make_transform(np.eye(3), [0, 0, 10])[None]
    x = np.eye(4)
    shift = transform_from_rotvec([0, 0, 0], [2.0, -3.0, 1.0])
    b = logical_motion(logical_cross_calibration(slices, x), np.stack([np.eye(4), shift]))
    update = scanner_update(updated_slices(slices, b), b, [[200.0, 100.0]])
    np.testing.assert_allclose(update.shift_mm[1, 0], [2, -3, 1])
    np.testing.assert_allclose(update.position_mm[1, 0], [2, -3, 11])
    np.testing.assert_allclose(update.offset_mm[1, 0], [2, -3, 11])
    np.testing.assert_allclose(update.receiver_phase_per_line_rad[1, 0], 2 * np.pi * -3 / 100)
    np.testing.assert_allclose(update.receiver_phase_per_sample_rad[1, 0], 2 * np.pi * 2 / 200)
    np.testing.assert_allclose(update.gradient_rotation[1, 0], np.eye(3))


def test_bad_motion_inputs():
    with pytest.raises(TransformError, match="scanner_from_camera is not a rigid"):
        logical_cross_calibration(np.eye(4)[None], np.diag([1, 1, 2, 1.0]))
    with pytest.raises(TransformError, match="^motion is not a rigid"):
        logical_motion(np.eye(4), np.diag([1, 1, 2, 1.0]))
    with pytest.raises(TransformError, match="^logical_from_camera .*reflection"):
        logical_motion(np.stack([np.eye(4), np.diag([1, 1, -1, 1.0])]), np.eye(4))
    with pytest.raises(TransformError, match="NaN"):
        camera_motion(np.full((3, 4, 4), np.nan))
    with pytest.raises(TransformError, match="reference_index 5"):
        camera_motion(np.stack([np.eye(4)] * 3), reference_index=5)
    with pytest.raises(TransformError, match=r"expected shape \(4, 4\) or \(K, 4, 4\)"):
        logical_motion(np.zeros((2, 2, 4, 4)) + np.eye(4), np.eye(4))
    with pytest.raises(TransformError, match=r"expected shape \(T, 2, 4, 4\)"):
        updated_slices(np.stack([np.eye(4)] * 2), np.stack([np.eye(4)] * 3)[None])
