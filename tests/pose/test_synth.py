"""Synthetic training volumes: the head lands where its pose says, degradations keep the data sane."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from mrmotion.errors import MrMotionError
from mrmotion.pose import synth
from mrmotion.pose.frames import brain_centre

from .conftest import atlas_folder


def test_rendered_brain_sits_at_the_pose(toy_subject):
    rng = np.random.default_rng()
    for _ in range(3):
        pose = np.eye(4)
        pose[:3, :3] = synth.random_rotation(rng)
        pose[:3, 3] = rng.uniform(-20, 20, 3)
        grid = synth.cube_grid(pose[:3, 3] + rng.uniform(-5, 5, 3), 140.0, 70)
        intensities = np.ones(3, dtype=np.float32)
        image, brain, head = synth.render(toy_subject, pose, grid, (70, 70, 70), intensities, 2.0)
        assert np.allclose(brain_centre(brain, grid), pose[:3, 3], atol=0.5)
        assert np.allclose(image, brain, atol=1e-5)  # all tissues at intensity 1
        # the anterior lobe (label 3) lies along the head's anterior axis
        lobe, _, _ = synth.render(toy_subject, pose, grid, (70, 70, 70), np.array([0, 0, 1], np.float32), 2.0)
        direction = brain_centre(lobe, grid) - pose[:3, 3]
        anterior = -pose[:3, 1]
        assert np.dot(direction, anterior) / np.linalg.norm(direction) > 0.6
        del head


def test_render_mixes_blurred_labels_as_blurring_the_mixed_image(toy_subject):
    """The cached per-label blur gives what blurring the mixed image gives (the blur is linear), for a blur width on
    the rounding step; other widths are rounded to within a quarter of a source voxel."""
    from scipy import ndimage

    rng = np.random.default_rng()
    pose = np.eye(4)
    pose[:3, :3] = synth.random_rotation(rng)
    grid = synth.cube_grid(rng.uniform(-3, 3, 3), 120.0, 24)
    intensities = rng.uniform(0, 1, 3).astype(np.float32)
    sigma = 1.5  # source voxels; resolution_mm = 2.355 · spacing · (sigma + 0.5) with the toy's 2 mm voxels
    image, _, _ = synth.render(toy_subject, pose, grid, (24,) * 3, intensities, 2.355 * 2.0 * (sigma + 0.5))
    mixed = ndimage.gaussian_filter(np.tensordot(intensities, toy_subject.fractions, axes=1), sigma, mode="constant")
    source_from_target = (
        np.linalg.inv(toy_subject.scanner_from_voxel)
        @ np.linalg.inv(pose @ np.linalg.inv(toy_subject.scanner_from_head))
        @ grid
    )
    index = np.indices((24,) * 3, dtype=np.float64).reshape(3, -1)
    points = source_from_target[:3, :3] @ index + source_from_target[:3, 3:4]
    expected = ndimage.map_coordinates(mixed, points, order=1).reshape((24,) * 3)
    assert np.allclose(image, expected, atol=1e-5)
    assert sigma in toy_subject.blurred  # cached for the next render


def test_samples_are_finite_normalised_and_reproducible(toy_subject):
    loc = synth.localiser_sample(toy_subject, np.random.default_rng(5), size=24)
    again = synth.localiser_sample(toy_subject, np.random.default_rng(5), size=24)
    assert np.array_equal(loc.volume, again.volume)
    assert np.all(np.isfinite(loc.volume)) and loc.volume.min() >= 0
    loc = synth.localiser_sample(toy_subject, np.random.default_rng(6), size=24)
    assert loc.volume.shape == loc.brain.shape == (24, 24, 24)
    assert loc.brain.max() > 0.5


def test_normalise_intensity_handles_any_scale_and_empty():
    volume = np.random.default_rng().random((8, 8, 8)) * 1e6
    assert synth.normalise_intensity(volume).max() <= 3
    assert np.allclose(synth.normalise_intensity(volume), synth.normalise_intensity(volume / 1e6), atol=1e-5)
    assert not synth.normalise_intensity(np.zeros((4, 4, 4))).any()


def test_atlas_folders_and_fetal_subject(tmp_path):
    with pytest.raises(MrMotionError, match="no atlas folder"):
        synth.fetal_atlas_folders(tmp_path)
    subject = synth.fetal_subject(atlas_folder())
    assert subject.fractions.shape[0] == 10 and subject.brain_labels == 8
    assert 60 < subject.brain_size < 130
    assert np.allclose(subject.scanner_from_head[:3, :3], np.eye(3))


def test_localiser_sample_from_a_t2_image_keeps_the_label_brain_target():
    """With the atlas's T2 image the input changes but the target is the same brain as from the labels (same draws
    up to the intensities), and the image follows the T2 image inside the brain."""
    labels, t2 = synth.fetal_t2_subject(atlas_folder())
    from_labels = synth.localiser_sample(labels, np.random.default_rng(9), size=24)
    from_t2 = synth.localiser_sample(labels, np.random.default_rng(9), size=24, t2=t2)
    assert np.allclose(from_t2.brain, from_labels.brain, atol=1e-6)
    assert np.array_equal(from_t2.scanner_from_head, from_labels.scanner_from_head)
    assert not np.allclose(from_t2.volume, from_labels.volume)
    assert from_t2.brain.max() > 0.5 and np.all(np.isfinite(from_t2.volume))


def test_region_sample_from_a_t2_image_keeps_the_label_regions():
    """The region network's T2 samples: the input is rendered from the T2 image, the target regions and the pose
    are those of the labels (same draws up to the intensities)."""
    labels, t2 = synth.fetal_t2_subject(atlas_folder())
    from_labels = synth.region_sample(labels, np.random.default_rng(4), size=16)
    from_t2 = synth.region_sample(labels, np.random.default_rng(4), size=16, t2=t2)
    assert np.array_equal(from_t2.scanner_from_head, from_labels.scanner_from_head)
    assert np.array_equal(from_t2.scanner_from_voxel, from_labels.scanner_from_voxel)
    assert np.allclose(from_t2.regions, from_labels.regions, atol=1e-6)
    assert not np.allclose(from_t2.volume, from_labels.volume)
    assert np.all(np.isfinite(from_t2.volume)) and from_t2.volume.min() >= 0


@pytest.fixture(scope="module")
def adult_regions():
    return synth.adult_region_subject()


def test_adult_region_subject_is_labelled_like_a_fetal_atlas(adult_regions):
    """The MNI152 brain in the fetal parcellation's labels: fractions in [0, 1] summing to at most 1, the canonical
    head frame, each region of a plausible adult volume and where anatomy puts it."""
    from mrmotion.pose.regions import REGIONS, region_fractions

    subject = adult_regions
    assert subject.fractions.shape[0] == 9 and subject.brain_labels == 8
    assert subject.fractions.min() >= 0 and subject.fractions.sum(axis=0).max() <= 1 + 1e-5
    assert np.allclose(subject.scanner_from_head[:3, :3], np.eye(3)) and 160 < subject.brain_size < 200
    voxel_ml = abs(np.linalg.det(subject.scanner_from_voxel[:3, :3])) / 1000
    assert 1100 < subject.fractions[:8].sum() * voxel_ml < 1900  # an adult brain with its CSF
    points = synth.grid_points(subject.scanner_from_voxel, subject.fractions.shape[1:])
    head = points - subject.scanner_from_head[:3, 3:4]  # head frame: left, posterior, superior (identity rotation)
    regions = region_fractions(subject.fractions.reshape(9, -1), head)
    volume = {name: regions[i].sum() * voxel_ml for i, name in enumerate(REGIONS)}
    centroid = {name: head @ regions[i] / regions[i].sum() for i, name in enumerate(REGIONS) if i}
    assert 10 < volume["ventricles"] < 60 and 20 < volume["deep grey matter"] < 90
    assert 100 < volume["cerebellum"] < 250 and 15 < volume["brainstem"] < 70
    assert centroid["cerebellum"][1] > 30 and centroid["cerebellum"][2] < -20  # posterior and inferior
    assert centroid["brainstem"][2] < -20 and abs(centroid["brainstem"][0]) < 3  # inferior, on the midline
    assert np.linalg.norm(centroid["ventricles"]) < 25 and np.linalg.norm(centroid["deep grey matter"]) < 25


def test_adult_t1_subject_and_scouts_without_clutter(adult_regions):
    """The template's T1 image shares the labelled subject's head frame; a scout without clutter is dark outside the
    head, and one with clutter is not."""
    t1 = synth.adult_t1_subject()
    assert t1.fractions.shape[0] == 1 and t1.brain_labels == 1
    assert np.allclose(t1.scanner_from_head, adult_regions.scanner_from_head)
    assert t1.brain_size == adult_regions.brain_size
    pose = np.eye(4)
    plain, grid = synth.scout_volume(t1, pose, np.random.default_rng(1), 8.0, (1.6, 1.6), clutter=False)
    cluttered, _ = synth.scout_volume(t1, pose, np.random.default_rng(1), 8.0, (1.6, 1.6))
    _, _, head = synth.render(t1, pose, grid, plain.shape, np.ones(1), 8.0)
    outside = head < 0.01
    assert outside.any() and np.all(np.isfinite(plain))
    assert np.median(plain[outside]) < 0.2 * np.median(plain[head > 0.5])
    assert np.median(cluttered[outside]) > 2 * np.median(plain[outside])
    clean, _ = synth.scout_volume(t1, pose, np.random.default_rng(1), 8.0, (1.6, 1.6), clutter=False, degraded=False)
    assert np.all(clean[outside & (head == 0)] == 0)  # no noise, bias or bands: nothing outside the head
    assert np.count_nonzero(plain[outside & (head == 0)]) > 0


def test_turned_field_zeroes_outside_a_turned_box_and_keeps_the_brain(toy_subject):
    """A resampled volume's zero-filled corners: the zeroed voxels lie outside one turned box (so along any line
    through it they form at most two end runs, never a hole inside), the rest is the sample re-normalised, and the
    brain stays (≥ 95%)."""
    rng = np.random.default_rng(3)
    sample = synth.localiser_sample(toy_subject, rng, size=24)
    turned = synth.with_turned_field(sample, np.random.default_rng(11))
    zero = turned.volume == 0
    assert 0.02 < zero.mean() < 0.9 and not np.any(sample.volume == 0)
    assert np.array_equal(turned.brain, sample.brain) and np.array_equal(
        turned.scanner_from_voxel, sample.scanner_from_voxel
    )
    assert float(sample.brain[~zero].sum()) >= 0.95 * float(sample.brain.sum())
    kept = ~zero
    assert np.allclose(turned.volume[kept], synth.normalise_intensity(np.where(kept, sample.volume, 0))[kept])
    for axis in range(3):  # a convex box: the kept voxels of each line along an axis are one contiguous run
        lines = np.moveaxis(kept, axis, -1).reshape(-1, 24)
        for line in lines[lines.any(axis=1)]:
            inside = np.flatnonzero(line)
            assert inside[-1] - inside[0] + 1 == inside.size
    again = synth.with_turned_field(sample, np.random.default_rng(11))
    assert np.array_equal(again.volume, turned.volume)


def test_turned_field_leaves_a_sample_whose_brain_it_would_cut():
    """When every drawn box would cut more than 5% of the brain (here the brain fills the cube), the sample is
    returned as it was."""
    brain = np.ones((12, 12, 12), np.float32)
    sample = synth.LocaliserSample(np.full((12, 12, 12), 0.5, np.float32), brain, np.eye(4), np.eye(4))
    assert synth.with_turned_field(sample, np.random.default_rng(0)) is sample


def test_localiser_batches_take_turned_fields_at_their_share_and_none_at_zero(toy_subject):
    """At share 0 a localiser batch is drawn exactly as before the option existed (no extra draw); at share 1 each
    sample has a zero-filled region."""
    from mrmotion.pose.train import TrainConfig, _batch

    plain = TrainConfig(stage="localiser", batch=2, size=16, adult_share=0.0)
    before = _batch(plain, [toy_subject], None, 3)
    assert torch.equal(before[0], _batch(replace(plain, zero_fill_share=0.0), [toy_subject], None, 3)[0])
    assert not torch.any(before[0] == 0)
    turned = _batch(replace(plain, zero_fill_share=1.0), [toy_subject], None, 3)
    assert all(bool(torch.any(volume == 0)) for volume in turned[0])
    assert torch.equal(turned[1][0][0], before[1][0][0])  # the first sample's own draws come before the new one


def test_moved_voxels_moves_the_content_as_the_motion_says():
    """A blob moved by a rigid motion (oblique affine, rotation about an off-centre point) lands where the motion puts
    its centre; a whole-voxel shift is an exact shift with zeros coming in; the identity changes nothing."""
    grid = np.eye(4)
    grid[:3, :3] = synth.random_rotation(np.random.default_rng(2)) * 2.0
    grid[:3, 3] = [10.0, -5.0, 3.0]
    index = np.indices((32, 32, 32), dtype=np.float64)
    centre_voxel = np.array([12.0, 17.0, 15.0])
    blob = np.exp(-((index - centre_voxel[:, None, None, None]) ** 2).sum(axis=0) / 8).astype(np.float32)
    assert np.allclose(synth.moved_voxels(blob, grid, np.eye(4)), blob, atol=1e-6)
    motion = np.eye(4)
    motion[:3, :3] = synth.random_rotation(np.random.default_rng(4))
    pivot = grid @ np.r_[16.0, 14.0, 16.0, 1.0]
    motion[:3, 3] = pivot[:3] - motion[:3, :3] @ pivot[:3] + [1.5, -2.0, 0.5]
    moved = synth.moved_voxels(blob, grid, motion)
    moved_centre = (index * moved).reshape(3, -1).sum(axis=1) / moved.sum()
    expected = np.linalg.inv(grid) @ motion @ grid @ np.r_[centre_voxel, 1.0]
    assert np.allclose(moved_centre, expected[:3], atol=0.05)
    shift = np.eye(4)
    shift[:3, 3] = grid[:3, :3] @ [3.0, 0.0, 0.0]  # three voxels along the first axis
    shifted = synth.moved_voxels(blob, grid, shift)
    assert np.allclose(shifted[3:], blob[:-3], atol=1e-5) and not shifted[:3].any()
