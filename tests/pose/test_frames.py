"""Head frame and the rotation built from predicted axes."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mrmotion.errors import MrMotionError
from mrmotion.pose.frames import axes_from_rotation, brain_centre, canonical_head_pose, rotation_from_axes

from .conftest import atlas_folder


def test_axes_round_trip_and_left_sign_is_free():
    rng = np.random.default_rng()
    rotations = Rotation.random(50, random_state=rng).as_matrix()
    left, anterior, superior = axes_from_rotation(rotations)
    assert np.allclose(rotation_from_axes(left, anterior, superior), rotations, atol=1e-12)
    assert np.allclose(rotation_from_axes(-left, anterior, superior), rotations, atol=1e-12)  # pseudovector


def test_noisy_axes_give_a_proper_rotation_near_the_truth():
    rng = np.random.default_rng()
    rotations = Rotation.random(200, random_state=rng).as_matrix()
    axes = [a * rng.uniform(0.5, 3, (200, 1)) + rng.normal(0, 0.05, (200, 3)) for a in axes_from_rotation(rotations)]
    result = rotation_from_axes(*axes)
    assert np.allclose(np.linalg.det(result), 1)
    assert np.allclose(result @ np.swapaxes(result, -1, -2), np.eye(3), atol=1e-12)
    angle = np.degrees(np.arccos(np.clip((np.einsum("nij,nij->n", result, rotations) - 1) / 2, -1, 1)))
    assert np.median(angle) < 5


@pytest.mark.parametrize("bad", [np.zeros(3), np.array([np.nan, 0, 1]), np.ones(2)])
def test_bad_axes_are_refused(bad):
    with pytest.raises(MrMotionError, match="axis"):
        rotation_from_axes(bad, np.array([0, 1.0, 0]), np.array([0, 0, 1.0]))


def test_brain_centre_and_empty_mask():
    mask = np.zeros((5, 6, 7))
    mask[1, 2, 3] = 1
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [10, 20, 30]
    assert np.allclose(brain_centre(mask, affine), [12, 26, 42])
    with pytest.raises(MrMotionError, match="empty"):
        canonical_head_pose(np.zeros((4, 4, 4)), affine)


def test_atlas_as_shipped_has_identity_rotation_and_its_centroid():
    import nibabel as nib

    from mrmotion.geometry.prescription import LPS_FROM_RAS

    folder = atlas_folder()
    mask_image = nib.load(folder / "mask.nii.gz")
    mask = np.asanyarray(mask_image.dataobj) > 0
    pose = canonical_head_pose(mask, LPS_FROM_RAS @ mask_image.affine)
    assert np.allclose(pose[:3, :3], np.eye(3))
    index = np.argwhere(mask).mean(axis=0)
    ras = mask_image.affine[:3, :3] @ index + mask_image.affine[:3, 3]
    assert np.allclose(pose[:3, 3], [-ras[0], -ras[1], ras[2]])
