"""Synthetic training volumes: the head lands where its pose says, degradations keep the data sane."""

import numpy as np
import pytest

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
