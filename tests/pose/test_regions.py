"""Brain regions → head orientation: exact with true regions, equivariant by construction, bad input refused."""

import numpy as np
import pytest
import torch

from mrmotion.errors import MrMotionError
from mrmotion.geometry.parameters import rotation_distance
from mrmotion.pose import synth
from mrmotion.pose.networks import RegionNet, region_loss
from mrmotion.pose.regions import (
    GROUP_SIZES,
    REGIONS,
    AtlasLayout,
    _apply,
    grid_symmetries,
    pose_from_regions,
    region_fractions,
    symmetrised_probabilities,
)

from .conftest import atlas_folder


@pytest.fixture(scope="module")
def atlas():
    return synth.fetal_subject(atlas_folder("fetal_SB_atlas_GA28_operated"))


def _degrees(rotation, pose):
    estimate = np.eye(4)
    estimate[:3, :3] = rotation
    return float(np.degrees(rotation_distance(estimate, pose)))


def test_true_regions_give_the_pose(atlas):
    """With the true region fractions of a rendered sample (random pose, 32³ cube) the Kabsch fit recovers the
    rotation to a few degrees and the brain centre to a few mm — the ceiling of the method on a 32³ grid."""
    layout = synth.subject_layout(atlas)
    rng = np.random.default_rng(5)
    for _ in range(4):
        sample = synth.region_sample(atlas, rng, size=32)
        assert sample.regions.shape == (len(REGIONS), 32, 32, 32)
        assert np.allclose(sample.regions.sum(axis=0), 1, atol=1e-5)
        points = synth.grid_points(sample.scanner_from_voxel, (32,) * 3)
        fit = pose_from_regions(sample.regions.reshape(len(REGIONS), -1), points, layout)
        assert _degrees(fit["rotation"], sample.scanner_from_head) < 3
        assert fit["sign_margin"] > 0.2  # the other sign choices of the principal axes fit clearly worse
        assert np.linalg.det(fit["rotation"]) == pytest.approx(1)
        assert np.linalg.norm(fit["centre"] - sample.scanner_from_head[:3, 3]) < 3
        assert fit["residual"] < 0.05


def test_regions_are_mirror_symmetric_and_split_by_the_head_axes():
    """Quadrants follow the head's posterior/superior coordinates; left and right points get the same label."""
    fractions = np.zeros((10, 4), np.float32)
    fractions[0] = 1  # white matter everywhere
    head = np.array([[5.0, -5.0, 3.0, 0.0], [-1.0, -1.0, 2.0, 2.0], [1.0, 1.0, -1.0, 1.0]])
    regions = region_fractions(fractions, head)
    assert np.argmax(regions, axis=0).tolist() == [1, 1, 4, 3]  # anterior-superior ×2 (left, right), PI, PS
    with pytest.raises(MrMotionError, match="region targets"):
        region_fractions(fractions[:3], head)


def test_reflected_head_gives_the_mirrored_pose(atlas):
    """Mirror the true regions through a scanner plane: the fitted rotation stays proper and matches the mirrored
    head's anterior and superior axes (the left–right axis is the pseudovector fixed by det = +1)."""
    layout = synth.subject_layout(atlas)
    sample = synth.region_sample(atlas, np.random.default_rng(9), size=32, difficulty=0.0)
    mirrored = sample.regions[:, ::-1].reshape(len(REGIONS), -1)
    grid = sample.scanner_from_voxel
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = 2 * grid[0, 3] + 31 * grid[0, 0]  # index i → 31 - i along the first axis, in mm
    fit = pose_from_regions(mirrored, synth.grid_points(grid, (32,) * 3), layout)
    truth = flip @ sample.scanner_from_head
    for column in (1, 2):  # posterior, superior
        assert np.degrees(np.arccos(np.clip(fit["rotation"][:, column] @ truth[:3, column], -1, 1))) < 4
    assert np.linalg.det(fit["rotation"]) == pytest.approx(1)


def test_symmetrised_network_is_equivariant_to_the_grid_symmetries():
    """An untrained network averaged over the 48 grid symmetries commutes with each of them exactly."""
    torch.manual_seed(0)
    network = RegionNet(channels=(4, 8))
    network.eval()
    volume = torch.rand(1, 1, 8, 8, 8)
    plain = symmetrised_probabilities(network, volume)
    assert torch.allclose(plain.sum(dim=0), torch.ones(8, 8, 8), atol=1e-5)
    for permutation, flips in (grid_symmetries()[13], grid_symmetries()[40]):
        moved = volume.permute(0, 1, *(2 + p for p in permutation)).flip([2 + a for a in flips])
        expected = plain[None].permute(0, 1, *(2 + p for p in permutation)).flip([2 + a for a in flips])[0]
        assert torch.allclose(symmetrised_probabilities(network, moved), expected, atol=1e-5)
    assert len({(p, f) for p, f in grid_symmetries()}) == 48
    rotations = grid_symmetries("rotations")
    assert len(rotations) == 24 and rotations[0] == ((0, 1, 2), ())
    for permutation, flips in rotations:  # each is a proper rotation of the grid
        matrix = np.eye(3)[list(permutation)] @ np.diag([-1.0 if a in flips else 1.0 for a in range(3)])
        assert np.linalg.det(matrix) == pytest.approx(1)
    turned = torch.rot90(volume, 1, dims=(2, 3))
    expected = torch.rot90(symmetrised_probabilities(network, volume, "rotations"), 1, dims=(1, 2))
    assert torch.allclose(symmetrised_probabilities(network, turned, "rotations"), expected, atol=1e-5)
    assert {name: len(grid_symmetries(name)) for name in GROUP_SIZES} == GROUP_SIZES
    tetrahedral, klein = set(grid_symmetries("tetrahedral")), set(grid_symmetries("klein"))
    half_turn = set(grid_symmetries("half-turn"))
    assert set(grid_symmetries("identity")) < half_turn < klein < tetrahedral < set(rotations)
    for group in (tetrahedral, klein, half_turn):
        for a in group:  # a group: closed under composition
            for b in group:
                moved = _apply(_apply(volume, *a), *b)
                assert any(torch.equal(moved, _apply(volume, *c)) for c in group)
    with pytest.raises(MrMotionError, match="symmetry group"):
        grid_symmetries("octahedral")


def test_region_network_learns_on_one_batch():
    """The U-Net and its loss can fit a fixed target (a loss that cannot fall would not train)."""
    torch.manual_seed(1)
    network = RegionNet(channels=(4, 8))
    target = torch.zeros(1, len(REGIONS), 8, 8, 8)
    target[:, 0] = 1
    target[:, 0, 2:6, 2:6, 2:6] = 0
    target[:, 6, 2:6, 2:6, 2:6] = 1
    volume = target[:, 6:7] + 0.1 * torch.rand(1, 1, 8, 8, 8)
    optimiser = torch.optim.Adam(network.parameters(), 1e-2)
    first = region_loss(network(volume), target).item()
    for _ in range(40):
        loss = region_loss(network(volume), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.5 * first


def test_bad_input_is_refused(atlas):
    points = np.zeros((3, 10))
    with pytest.raises(MrMotionError, match="atlas layout needs"):
        AtlasLayout(np.zeros((3, 3)), np.eye(3))
    with pytest.raises(MrMotionError, match="NaN"):
        AtlasLayout(np.full((len(REGIONS) - 1, 3), np.nan), np.eye(3))
    with pytest.raises(MrMotionError, match="not an atlas layout"):
        AtlasLayout.from_dict({"centroids": [[0, 0, 0]]})
    layout = synth.subject_layout(atlas)
    assert AtlasLayout.from_dict(layout.to_dict()).centroids == pytest.approx(layout.centroids, abs=1e-6)
    empty = np.zeros((len(REGIONS), 10))
    empty[0] = 1
    with pytest.raises(MrMotionError, match="no brain region"):
        pose_from_regions(empty, points, layout)
    with pytest.raises(MrMotionError, match="cubic volume"):
        symmetrised_probabilities(RegionNet(channels=(4, 8)), torch.zeros(1, 1, 8, 8, 6))
    toy = synth.Subject("toy", np.zeros((3, 4, 4, 4), np.float32), 3, np.eye(4), np.eye(4), 50.0)
    with pytest.raises(MrMotionError, match="fetal atlas"):
        synth.region_sample(toy, np.random.default_rng(0))


def test_region_batches_take_adult_samples_at_their_share():
    """Regions training: at adult share 1 every sample is the adult brain (its larger cube); at share 0 the batch is
    drawn exactly as without an adult subject (no extra random draw), so earlier runs resume unchanged."""
    from mrmotion.pose import synth
    from mrmotion.pose.train import TrainConfig, _batch

    fetal = [synth.fetal_subject(atlas_folder())]
    adult = synth.adult_region_subject()
    config = TrainConfig(stage="regions", batch=2, size=8, adult_share=0.0)
    without, with_adult = _batch(config, fetal, None, 5), _batch(config, fetal, adult, 5)
    assert torch.equal(without[0], with_adult[0]) and np.array_equal(without[1][2], with_adult[1][2])
    adults = _batch(TrainConfig(stage="regions", batch=2, size=8, adult_share=1.0), fetal, adult, 5)
    sides = np.linalg.norm(adults[1][2][:, :3, 0], axis=-1) * 8  # cube side (mm) of each sample
    fetal_side = np.linalg.norm(without[1][2][:, :3, 0], axis=-1) * 8
    assert np.all(sides > 1.3 * fetal_side.max())  # adult brains (≈ 183 mm) need larger cubes than fetal ones
