"""Zeros outside a volume's field of view (mrmotion.pose.field_of_view): found only when the scanned region is
convex, and filled with the nearest scanned value."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from mrmotion.pose.field_of_view import CONVEX_TOLERANCE, convex_hull_gap, edges_extended, outside_field_of_view

from .conftest import atlas_folder


def turned_volume(rng: np.random.Generator, size: int = 24) -> np.ndarray:
    """Positive random voxels turned by a random rotation about the centre, trilinear, zero outside (as
    resampling software writes a turned volume)."""
    data = rng.uniform(1.0, 2.0, (size,) * 3)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rotation *= np.linalg.det(rotation)
    centre = (size - 1) / 2 * np.ones(3)
    return ndimage.affine_transform(data, rotation, centre - rotation @ centre, order=1, cval=0.0)


def test_the_zeros_of_a_turned_volume_are_outside_its_field_of_view():
    rng = np.random.default_rng(31)
    for _ in range(3):
        volume = turned_volume(rng)
        outside = outside_field_of_view(volume)
        assert outside is not None
        assert np.mean(outside) > 0.1
        np.testing.assert_array_equal(outside, volume == 0)


def test_a_hole_inside_the_field_of_view_is_not_outside_it():
    volume = turned_volume(np.random.default_rng(32))
    volume[10:13, 10:13, 10:13] = 0  # inside the turned box, not connected to the array's faces
    outside = outside_field_of_view(volume)
    assert outside is not None
    assert not outside[10:13, 10:13, 10:13].any()
    assert outside.sum() == (volume == 0).sum() - 27


def test_a_padded_volume_has_its_padding_outside():
    volume = np.pad(np.random.default_rng(33).uniform(1, 2, (10, 12, 8)), ((3, 5), (0, 2), (4, 4)))
    outside = outside_field_of_view(volume)
    assert outside is not None
    np.testing.assert_array_equal(outside, volume == 0)


def test_no_field_of_view_edge_when_there_are_no_zeros_on_the_faces():
    volume = np.random.default_rng(34).uniform(1, 2, (16, 16, 16))
    assert outside_field_of_view(volume) is None
    volume[5:9, 5:9, 5:9] = 0  # only inside
    assert outside_field_of_view(volume) is None
    assert outside_field_of_view(np.zeros((8, 8, 8))) is None  # nothing scanned


def test_a_masked_volume_is_not_taken_for_a_field_of_view():
    """A non-convex scanned region (an L shape; two blobs; a flat slab) keeps its zeros: its background is masked,
    not outside a field of view."""
    volume = np.zeros((20, 20, 20))
    volume[2:18, 2:8, 2:18] = 1.0
    volume[2:8, 2:18, 2:18] = 1.0  # an L
    assert outside_field_of_view(volume) is None
    blobs = np.zeros((20, 20, 20))
    blobs[2:6, 2:6, 2:6] = blobs[14:18, 14:18, 14:18] = 1.0
    assert outside_field_of_view(blobs) is None
    flat = np.zeros((12, 12, 12))
    flat[3:9, 3:9, 6] = 1.0  # no volume: Qhull cannot make a hull
    assert outside_field_of_view(flat) is None


def test_the_convex_hull_gap_of_convex_and_other_regions():
    box = np.zeros((20, 20, 20), bool)
    box[3:15, 4:18, 2:9] = True
    assert convex_hull_gap(box) == 0
    ell = box.copy()
    ell[9:15, 10:18, 2:9] = False  # an L: its hull holds about half the corner cut out, 1/6 of the hull
    assert 0.05 < convex_hull_gap(ell) < 0.25
    flat = np.zeros((12, 12, 12), bool)
    flat[3:9, 3:9, 6] = True
    assert convex_hull_gap(flat) == 1.0
    big = np.zeros((200, 60, 60), bool)  # tested on a sub-lattice: every 4th voxel
    big[20:180, 10:50, 5:47] = True
    assert convex_hull_gap(big) <= CONVEX_TOLERANCE


def test_a_skull_stripped_atlas_is_not_taken_for_a_field_of_view():
    image = nib.load(atlas_folder("fetal_SB_atlas_GA23_notoperated") / "srr.nii.gz")
    data = np.asarray(image.dataobj, dtype=np.float32)
    assert np.mean(data == 0) > 0.9
    assert outside_field_of_view(data) is None


def test_edges_extended_take_the_nearest_scanned_value():
    rng = np.random.default_rng(35)
    volume = turned_volume(rng, size=12)
    outside = outside_field_of_view(volume)
    kept = volume.copy()
    filled = edges_extended(volume, outside)
    np.testing.assert_array_equal(volume, kept)  # the input is untouched
    np.testing.assert_array_equal(filled[~outside], volume[~outside])
    scanned = np.argwhere(~outside)
    for index in np.argwhere(outside)[:: max(1, int(outside.sum()) // 200)]:  # brute force on a sample
        distance = np.linalg.norm(scanned - index, axis=1)
        nearest = scanned[distance <= distance.min() + 1e-9]  # ties: any of them
        assert any(filled[tuple(index)] == volume[tuple(n)] for n in nearest)
