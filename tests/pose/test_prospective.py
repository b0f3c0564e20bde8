"""Slices that follow the head and slices in its standard planes."""

import numpy as np
import pytest

from mrmotion.errors import MrMotionError
from mrmotion.pose.prospective import PLANES, anatomical_slices, follow_head, plane_error, pose_to_follow
from tests.helpers import random_rigid


@pytest.mark.parametrize("plane", sorted(PLANES))
def test_anatomical_slices_follow_the_head_exactly(plane):
    rng = np.random.default_rng()
    before, after = random_rigid(rng, 2)
    slices = anatomical_slices(before, plane, 5, 4.0, (200, 200), 3.0, (64, 64))
    moved = follow_head(slices, before, after)
    again = anatomical_slices(after, plane, 5, 4.0, (200, 200), 3.0, (64, 64))
    for a, b in zip(moved, again, strict=True):
        assert np.allclose(a.scanner_from_logical(), b.scanner_from_logical(), atol=1e-9)
        assert a.matrix == (64, 64) and a.thickness_mm == 3.0
    middle = moved[2]
    assert plane_error(middle, after, plane) == pytest.approx((0.0, 0.0), abs=1e-6)
    angle, offset = plane_error(slices[2], after, plane)
    assert angle > 0 or offset > 0  # without following, the plane is off


def test_canonical_head_gives_scanner_planes():
    axial = anatomical_slices(np.eye(4), "axial", 1, 1.0, (220, 220), 3.0)[0]
    assert np.allclose(axial.slice_dir, [0, 0, 1])
    sagittal = anatomical_slices(np.eye(4), "sagittal", 1, 1.0, (220, 220), 3.0)[0]
    assert np.allclose(abs(sagittal.slice_dir), [1, 0, 0])
    coronal = anatomical_slices(np.eye(4), "coronal", 3, 5.0, (220, 220), 3.0)
    assert np.allclose([s.position_mm[1] for s in coronal], [5, 0, -5])  # stacked along anterior = -y


def test_bad_plane_count_and_pose():
    with pytest.raises(MrMotionError, match="plane"):
        anatomical_slices(np.eye(4), "oblique", 1, 1.0, (220, 220), 3.0)
    with pytest.raises(MrMotionError, match="count"):
        anatomical_slices(np.eye(4), "axial", 0, 1.0, (220, 220), 3.0)
    shear = np.eye(4)
    shear[0, 1] = 0.3
    with pytest.raises(MrMotionError):
        follow_head(anatomical_slices(np.eye(4), "axial", 1, 1.0, (220, 220), 3.0), np.eye(4), shear)


def test_a_doubtful_pose_leaves_the_slices_where_they_were():
    followed, estimate = random_rigid(np.random.default_rng(), 2, scale_mm=10)
    assert np.array_equal(pose_to_follow(followed, estimate, 0.5), estimate)
    assert np.array_equal(pose_to_follow(followed, estimate, 0.49), followed)
    assert np.array_equal(pose_to_follow(followed, estimate, 0.2, min_confidence=0.1), estimate)
    with pytest.raises(MrMotionError, match="confidence must be a number"):
        pose_to_follow(followed, estimate, float("nan"))
    shear = estimate.copy()
    shear[0, 1] += 0.3
    with pytest.raises(MrMotionError):
        pose_to_follow(followed, shear, 0.9)
