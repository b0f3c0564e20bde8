"""Pose from volumes with the shipped weights: accuracy on a rendered atlas, equivariance, and bad input."""

import numpy as np
import pytest
import torch

from mrmotion.errors import MrMotionError
from mrmotion.pose import estimate as estimate_module
from mrmotion.pose import synth
from mrmotion.pose.estimate import PoseModel, check_volume, estimate_pose, resample_to_cube

from .conftest import atlas_folder, turned_scout


def geodesic_deg(a, b):
    cosine = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))


@pytest.fixture(scope="module")
def held_out_volume():
    """A held-out atlas at a random pose in a 3 mm field of view with clutter, and its true pose."""
    subject = synth.fetal_subject(atlas_folder("fetal_SB_atlas_GA28_operated"))
    rng = np.random.default_rng(2024)
    pose = np.eye(4)
    pose[:3, :3] = synth.random_rotation(rng)
    pose[:3, 3] = [12.0, -8.0, 5.0]
    grid = synth.cube_grid(pose[:3, 3] + [15, 10, -5], 270.0, 90)
    intensities = np.array([0.6, 0.3, 0.7, 0.5, 0.8, 0.6, 0.6, 0.6, 0.9, 0.2], np.float32)
    image, _, head = synth.render(subject, pose, grid, (90,) * 3, intensities, 3.0)
    image = synth.add_clutter(image, head, grid, pose[:3, 3], subject.brain_size, rng)
    return image * 1000, grid, pose


def test_pose_of_a_held_out_atlas(held_out_volume):
    """End to end on a held-out atlas in a cluttered field of view: the brain is found, the pose is a proper rigid
    transform with a confidence. (Rotation accuracy is measured in benchmarks/pose.py, not asserted here.)"""
    image, grid, truth = held_out_volume
    estimate = estimate_pose(image, grid)
    assert np.linalg.norm(estimate.scanner_from_head[:3, 3] - truth[:3, 3]) < 20
    assert 0 <= estimate.confidence <= 1
    rotation = estimate.scanner_from_head[:3, :3]
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(rotation), 1)
    assert 30 < estimate.brain_size_mm < 200


def test_rotating_the_volume_affine_rotates_the_pose_exactly(held_out_volume):
    """The same voxels with a rotated (and shifted) affine: every stage resamples along the volume's own axes, so the
    networks see the same input and the pose moves exactly with the affine, oblique rotations included."""
    image, grid, truth = held_out_volume
    rng = np.random.default_rng(8)
    plain = estimate_pose(image, grid)
    for _ in range(2):
        motion = np.eye(4)
        motion[:3, :3] = synth.random_rotation(rng)
        motion[:3, 3] = rng.uniform(-20, 20, 3)
        moved = estimate_pose(image, motion @ grid)
        # to float32 rounding: resampling for another affine changes the cubes by ~1e-7, which the networks and the
        # 20 gradient steps of the refinement can grow to ~5e-4 in the rotation (0.03°; one PyTorch thread)
        assert np.allclose(moved.scanner_from_head, motion @ plain.scanner_from_head, atol=2e-3)
        assert moved.confidence == pytest.approx(plain.confidence, abs=1e-6)


def test_bfloat16_and_float32_networks_give_nearly_the_same_pose(held_out_volume):
    """The networks' arithmetic (PoseModel.precision) changes the pose by a fraction of a degree, not its meaning
    (benchmarks/pose_speed_settings.py: median 0.2° over 96 training-atlas scouts); the estimate says which it used."""
    from dataclasses import replace

    image, grid, _ = held_out_volume
    shipped = PoseModel.load()
    poses = {p: estimate_pose(image, grid, replace(shipped, precision=p)) for p in ("float32", "bfloat16")}
    assert geodesic_deg(poses["float32"].scanner_from_head, poses["bfloat16"].scanner_from_head) < 2
    assert np.linalg.norm(poses["float32"].scanner_from_head[:3, 3] - poses["bfloat16"].scanner_from_head[:3, 3]) < 1
    assert {p: e.details["precision"] for p, e in poses.items()} == {"float32": "float32", "bfloat16": "bfloat16"}
    with pytest.raises(MrMotionError, match="unknown precision 'fp8'"):
        replace(shipped, precision="fp8")


def test_the_cnn_baseline_loads_and_runs(held_out_volume):
    image, grid, _ = held_out_volume
    estimate = estimate_pose(image, grid, PoseModel.load(arch="cnn"))
    assert np.allclose(np.linalg.det(estimate.scanner_from_head[:3, :3]), 1)


def test_no_brain_gives_an_error_or_a_low_confidence():
    rng = np.random.default_rng(3)
    noise = rng.random((40, 40, 40)).astype(np.float32)
    try:
        estimate = estimate_pose(noise, np.diag([3.0, 3.0, 3.0, 1.0]))
    except MrMotionError as error:
        assert "no brain" in str(error)
    else:
        assert estimate.confidence < 0.5


def test_large_volume_is_resampled_not_copied(held_out_volume):
    image, grid, truth = held_out_volume
    from scipy import ndimage

    fine = ndimage.zoom(image, 3, order=1)  # 270³ at 1 mm
    fine_grid = grid @ np.diag([1 / 3, 1 / 3, 1 / 3, 1.0])
    fine_grid[:3, 3] = grid[:3, 3] - grid[:3, :3] @ np.full(3, 1 / 3)
    estimate = estimate_pose(fine, fine_grid)
    coarse = estimate_pose(image, grid)
    assert np.linalg.norm(estimate.scanner_from_head[:3, 3] - coarse.scanner_from_head[:3, 3]) < 5
    assert np.linalg.norm(estimate.scanner_from_head[:3, 3] - truth[:3, 3]) < 20


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.zeros((10, 10)), "3-D"),
        (np.zeros((10, 10, 10, 2)), "3-D"),
        (np.ones((10, 10, 10)), "constant"),
        (np.full((10, 10, 10), np.nan), "NaN"),
    ],
)
def test_bad_volumes(data, message):
    with pytest.raises(MrMotionError, match=message):
        check_volume(data, np.eye(4))


def test_singular_affine_is_refused():
    with pytest.raises(MrMotionError, match="affine"):
        check_volume(np.random.default_rng().random((5, 5, 5)), np.zeros((4, 4)))


def test_resample_to_cube_reproduces_a_linear_ramp():
    shape = (40, 50, 30)
    affine = np.diag([2.0, 1.5, 3.0, 1.0])
    affine[:3, 3] = [-40, -37, -45]
    index = np.indices(shape).astype(float)
    world = np.einsum("ij,j...->i...", affine[:3, :3], index) + affine[:3, 3, None, None, None]
    ramp = (world[0] + 2 * world[1] - world[2]).astype(np.float32)
    cube, grid = resample_to_cube(ramp, affine, np.array([0.0, 0.0, 0.0]), 40.0, 16)
    points = synth.grid_points(grid, (16,) * 3)
    expected = (points[0] + 2 * points[1] - points[2]).reshape((16,) * 3)
    assert np.allclose(cube[2:-2, 2:-2, 2:-2], expected[2:-2, 2:-2, 2:-2], atol=0.3)


def test_a_region_network_that_has_not_learned_orientations_says_so(held_out_volume):
    """A region network whose recorded validation error is above 30° keeps the brain centre but its confidence is
    scaled down and flagged; one recorded as validated is not scaled."""
    from dataclasses import replace

    from mrmotion.pose.estimate import UNVALIDATED_FACTOR, default_model

    image, grid, _ = held_out_volume
    shipped = default_model()
    validated = estimate_pose(image, grid, replace(shipped, validation_deg=3.0))
    unvalidated = estimate_pose(image, grid, replace(shipped, validation_deg=148.0))
    assert unvalidated.details["orientation_validated"] is False and validated.details["orientation_validated"]
    assert unvalidated.confidence == pytest.approx(validated.confidence * UNVALIDATED_FACTOR)
    assert unvalidated.confidence < 0.5
    assert np.array_equal(unvalidated.scanner_from_head, validated.scanner_from_head)


def test_shipped_weights_carry_the_atlas_layout_and_a_missing_one_is_refused(tmp_path):
    import shutil

    from mrmotion.io.weights import read_weights, write_weights
    from mrmotion.pose.estimate import weights_folder
    from mrmotion.pose.train import make_network

    model = PoseModel.load()
    assert model.layout.covariance.shape == (3, 3) and model.size == 32
    for name in ("pose_localiser.safetensors", "pose_regions.safetensors"):
        shutil.copy(weights_folder() / name, tmp_path / name)
    network, config = read_weights(tmp_path / "pose_regions.safetensors", lambda c: make_network(c["stage"]), "", "")
    write_weights(tmp_path / "pose_regions.safetensors", network, {"config": config, "summary": {}})
    with pytest.raises(MrMotionError, match="no atlas layout"):
        PoseModel.load(tmp_path)
    with pytest.raises(MrMotionError, match="architecture"):
        PoseModel.load(arch="e3nn")


def test_templates_refine_the_rotation_and_without_them_the_closed_form_is_kept(held_out_volume):
    from dataclasses import replace

    from mrmotion.pose.estimate import default_model

    image, grid, truth = held_out_volume
    shipped = default_model()
    closed = estimate_pose(image, grid, replace(shipped, templates=None))
    refined = estimate_pose(image, grid, shipped)
    assert closed.details["template_score"] is None and closed.details["template_change_deg"] == 0
    assert 0.2 < refined.details["template_score"] < 1
    assert refined.details["template_change_deg"] == pytest.approx(
        geodesic_deg(refined.scanner_from_head, closed.scanner_from_head), abs=1e-6
    )
    assert np.array_equal(refined.scanner_from_head[:3, 3], closed.scanner_from_head[:3, 3])  # same brain centre


class _FixedLogits(torch.nn.Module):
    """A stand-in localiser whose brain logits are fixed (mirrored for the mirror image, the second volume)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, volume):
        assert volume.shape[0] == 2, "the localiser sees the volume and its mirror image"
        logits = torch.as_tensor(self.logits, dtype=torch.float32)
        return torch.stack([logits, logits.flip(0)])[:, None]


def _blobs(probabilities: dict[tuple[int, int, int], tuple[int, float]]) -> np.ndarray:
    """Localiser logits (48³) with cubes of the given half-width and probability at the given centres."""
    from mrmotion.pose.estimate import LOCALISER_SIZE

    probability = np.full((LOCALISER_SIZE,) * 3, 0.01)
    for (i, j, k), (half, value) in probabilities.items():
        probability[i - half : i + half + 1, j - half : j + half + 1, k - half : k + half + 1] = value
    return np.log(probability / (1 - probability))


def _localise_with(logits):
    from dataclasses import replace

    from mrmotion.pose.estimate import _localise, default_model

    model = replace(default_model(), localiser=_FixedLogits(logits))
    data = np.random.default_rng(0).random((48, 48, 48)).astype(np.float32)
    return _localise(model, data, np.diag([2.0, 2.0, 2.0, 1.0]), np.full(3, 47.0), 96.0, np.eye(3))


def test_the_localiser_takes_its_most_probable_component_or_a_faint_one():
    """The brain is the component above 0.5 of largest probability mass (centre in mm on the localiser's cube,
    2 mm voxels here), then the others by mass (at most OTHER_COMPONENTS of them); when none reaches 0.5, one above
    WEAK_THRESHOLD with its low probability; else nothing."""
    from mrmotion.pose import estimate
    from mrmotion.pose.estimate import WEAK_THRESHOLD

    logits = _blobs({(10, 10, 10): (2, 0.95), (30, 30, 30): (4, 0.8), (40, 10, 40): (0, 0.99)})
    found = _localise_with(logits)
    assert found[0]["probability"] == pytest.approx(0.8) and np.allclose(found[0]["centre"], 60, atol=0.5)
    assert found[0]["volume_ml"] == pytest.approx(729 * 0.8 * 8 / 1000, rel=1e-3)
    assert np.allclose(found[1]["centre"], 20, atol=0.5) and np.allclose(found[2]["centre"], [80, 20, 80], atol=0.5)
    original = estimate.OTHER_COMPONENTS
    try:
        estimate.OTHER_COMPONENTS = 1
        assert len(_localise_with(logits)) == 2
    finally:
        estimate.OTHER_COMPONENTS = original
    faint = _localise_with(_blobs({(20, 20, 20): (3, (WEAK_THRESHOLD + 0.5) / 2)}))
    assert len(faint) == 1 and faint[0]["probability"] < 0.5 and np.allclose(faint[0]["centre"], 40, atol=0.5)
    assert len(_localise_with(_blobs({(20, 20, 20): (3, WEAK_THRESHOLD / 2)}))) == 0


def test_a_doubtful_pose_is_retried_at_other_sizes_then_zoomed_and_the_most_confident_kept(monkeypatch):
    """The control flow of the retries, with the localiser and the pose at each size replaced by scripted ones:
    first the localiser's brain (60 mm) at sizes × 1, 1.2, 0.8; when none is confident, the localiser again on a
    cube of ZOOM brain sizes around it (which finds 55 mm) and the sizes again; then on a cube of ZOOM half-sizes."""
    from mrmotion.pose import estimate
    from mrmotion.pose.estimate import PoseEstimate

    found = {"centre": np.zeros(3), "size": 60.0, "volume_ml": 1.0, "probability": 0.9}
    zoomed = {**found, "centre": np.array([5.0, 0.0, 0.0]), "size": 55.0}
    localised = []

    def localise(model, data, scanner_from_voxel, centre, side, axes):
        localised.append((np.asarray(centre).tolist(), side))
        if len(localised) == 1:
            return [dict(found), *others]
        zoom = second_zoom if len(localised) == 3 and second_zoom is not None else zoom_result
        return [] if zoom is None else [zoom]

    monkeypatch.setattr(estimate, "_localise", localise)
    monkeypatch.setattr(estimate, "RESCALES", (1.2, 0.8))
    monkeypatch.setattr(estimate, "ZOOM", 3.0)
    monkeypatch.setattr(estimate, "ZOOM_SIZES", (1.0,))  # the half-size zoom: below
    calls = []

    def scripted(confidences):
        def pose(model, data, scanner_from_voxel, axes, brain):
            calls.append(round(brain["size"], 1))
            if calls[-1] not in confidences:
                raise MrMotionError("no brain regions found in the cube around the brain")
            return PoseEstimate(np.eye(4), confidences[calls[-1]], brain["size"], 1.0, {})

        return pose

    image = np.random.default_rng(1).random((8, 8, 8)).astype(np.float32)
    affine = np.diag([30.0, 30.0, 30.0, 1.0])  # a 240-mm field of view
    first, again = [60.0, 72.0, 48.0], [55.0, 66.0, 44.0]

    def run(confidences, zoom=zoomed):
        nonlocal zoom_result
        calls.clear(), localised.clear()
        zoom_result = None if zoom is None else dict(zoom)
        monkeypatch.setattr(estimate, "_pose_of_brain", scripted(confidences))
        return estimate_pose(image, affine)

    zoom_result = second_zoom = None
    others = []
    confident = run({60.0: 0.9, 72.0: 1.0})
    assert calls == [60.0] and len(localised) == 1
    assert confident.details == {"size_factor": 1.0, "zoomed": False, "component": 0, "field_of_view_extended": False}

    doubtful = run({60.0: 0.1, 72.0: 0.3, 48.0: 0.2, 55.0: 0.45, 66.0: 0.2, 44.0: 0.1})
    assert calls == first + again and doubtful.confidence == 0.45  # every try low: all made, the best kept
    assert (
        doubtful.details == {"size_factor": 1.0, "zoomed": True, "component": 0, "field_of_view_extended": False}
        and doubtful.brain_size_mm == 55.0
    )
    assert localised[1] == ([0.0, 0.0, 0.0], 180.0)  # around the brain found, 3 of its sizes across

    worse = run({60.0: 0.1, 72.0: 0.3, 48.0: 0.2, 55.0: 0.2})
    assert calls == first + again and worse.confidence == 0.3 and worse.details["zoomed"] is False

    larger = run({72.0: 0.7, 48.0: 0.9})  # no regions at the first size; stops at the first confident pose
    assert calls == [60.0, 72.0] and larger.details["size_factor"] == 1.2 and len(localised) == 1

    only_zoomed = run({66.0: 0.6})  # no regions at any size of the first brain; the zoomed one has them
    assert calls == first + again[:2] and only_zoomed.details == {
        "size_factor": 1.2,
        "zoomed": True,
        "component": 0,
        "field_of_view_extended": False,
    }

    # the localiser's other components, in turn, when nothing about the most probable one is confident: each
    # searched as the first (sizes, then the zoom); the most confident pose kept; none tried after a confident one
    others = [{**found, "centre": np.array([90.0, 0.0, 0.0]), "size": 42.0}, {**found, "size": 80.0}]
    other = run({60.0: 0.1, 42.0: 0.2, 50.4: 0.7, 80.0: 0.9})
    assert calls == first + again + [42.0, 50.4] and other.confidence == 0.7
    assert other.details == {"size_factor": 1.2, "zoomed": False, "component": 1, "field_of_view_extended": False}
    assert len(localised) == 2  # the coarse localiser and the first component's zoom only
    assert run({60.0: 0.9, 42.0: 1.0}).details["component"] == 0 and len(localised) == 1
    none_better = run({60.0: 0.3})  # every component and zoom tried; the first stands
    assert none_better.details["component"] == 0 and none_better.confidence == 0.3 and len(localised) == 4
    others = []

    nothing_zoomed = run({72.0: 0.3}, zoom=None)  # the zoomed localiser finds nothing: the first pass stands
    assert calls == first and nothing_zoomed.confidence == 0.3

    # a second zoomed cube, cut for half the brain found (a coarse localiser that merged the brain with the tissue
    # around it), when the first zoom gives no confident pose either; not when it does
    monkeypatch.setattr(estimate, "ZOOM_SIZES", (1.0, 0.5))
    second_zoom = {**found, "centre": np.array([0.0, 4.0, 0.0]), "size": 50.0}
    halved = run({60.0: 0.1, 55.0: 0.2, 50.0: 0.8})
    assert calls == first + again + [50.0] and halved.confidence == 0.8 and halved.details["zoomed"] is True
    assert localised[2] == ([0.0, 0.0, 0.0], 105.0)  # 3 × 30 mm, raised to the smallest plausible brain (35 mm)
    assert run({66.0: 0.6}).details["zoomed"] is True and len(localised) == 2  # the first zoom was confident
    second_zoom = None

    monkeypatch.setattr(estimate, "ZOOM", 0.0)
    assert run({60.0: 0.1}).confidence == 0.1 and len(localised) == 1  # zoom off
    with pytest.raises(MrMotionError, match="no brain regions found around the brain centre"):
        run({})


def test_the_zeros_outside_the_field_of_view_are_filled_before_the_search(monkeypatch):
    """With the whole search (localiser, components, sizes, zooms) replaced by a recording one: a volume with zeros
    outside a convex field of view is searched with them filled (the pose says so); a masked volume, one without
    such zeros and one above EXTEND_MAX_VOXELS as they are; the search's errors reach the caller."""
    from mrmotion.pose import estimate
    from mrmotion.pose.estimate import PoseEstimate

    scanned = np.random.default_rng(2).uniform(1, 2, (8, 8, 8)).astype(np.float32)
    padded = np.pad(scanned, 2)  # a zero edge around a box
    masked = np.zeros((12, 12, 12), np.float32)
    masked[2:10, 2:5, 2:10] = masked[2:5, 2:10, 2:10] = 1.5  # an L: not a field of view
    searched = []

    def search(model, volume, scanner_from_voxel):
        searched.append(volume)
        return PoseEstimate(np.eye(4), 0.9, 60.0, 1.0, {})

    def nothing_found(model, volume, scanner_from_voxel):
        raise MrMotionError("no brain-like structure found in the volume (confidence 0): no pose to give")

    monkeypatch.setattr(estimate, "_most_confident_pose", search)
    pose = estimate_pose(padded, np.eye(4))
    assert pose.details["field_of_view_extended"] is True
    np.testing.assert_array_equal(searched[-1][2:-2, 2:-2, 2:-2], scanned)
    np.testing.assert_array_equal(searched[-1][0, 2:-2, 2:-2], scanned[0])  # the nearest scanned voxel's value
    assert np.all(searched[-1] != 0) and np.all(padded[:2] == 0)  # the caller's array is untouched
    for kept in (masked, scanned):
        assert estimate_pose(kept, np.eye(4)).details["field_of_view_extended"] is False
        np.testing.assert_array_equal(searched[-1], kept)
    monkeypatch.setattr(estimate, "EXTEND_MAX_VOXELS", padded.size - 1)
    assert estimate_pose(padded, np.eye(4)).details["field_of_view_extended"] is False
    np.testing.assert_array_equal(searched[-1], padded)
    monkeypatch.setattr(estimate, "_most_confident_pose", nothing_found)
    with pytest.raises(MrMotionError, match="no brain-like structure"):
        estimate_pose(padded, np.eye(4))


#: scouts of the GA23 atlas (the seed draws the pose, the scout and the turn) that the localiser before session 21
#: failed on (rotation errors 165° and 80°, confidence 0); it still fails on some others (``benchmarks/pose.py``)
RESAMPLED_SEEDS = (3, 7)


@pytest.mark.parametrize("seed", RESAMPLED_SEEDS)
def test_a_volume_turned_and_resampled_with_zero_corners_keeps_its_pose(held_out_t2, seed):
    """A held-out 3 mm scout whose voxels were turned about the brain and resampled onto the same grid, zero outside
    the turned field of view (as reorienting software writes it), on which the localiser before it learned such
    volumes took the zero edge's surroundings for the brain. Rates: ``benchmarks/pose.py``, the equivariance with
    the volume's voxels turned."""
    moved, grid, pose, motion = turned_scout(held_out_t2, seed)
    assert np.mean(moved == 0) > 0.1
    estimate = estimate_pose(moved, grid)
    assert geodesic_deg(estimate.scanner_from_head, motion @ pose) < 15
    assert np.linalg.norm(estimate.scanner_from_head[:3, 3] - pose[:3, 3]) < 5
    assert estimate.confidence >= 0.5


def test_a_turned_volume_whose_zero_edge_misled_the_localiser_keeps_its_pose(held_out_t2, monkeypatch):
    """A held-out scout turned and resampled (as above) on which the localiser takes the tissue along the zero edge
    for the brain: the pose is doubtful and wrong. With the zeros outside the field of view given their nearest
    scanned value (mrmotion.pose.field_of_view) it is right and confident. Seed chosen because the pose failed
    without the fill; the rate is in ``benchmarks/pose.py``."""
    moved, grid, pose, motion = turned_scout(held_out_t2, 11)
    filled = estimate_pose(moved, grid)
    assert filled.details["field_of_view_extended"]
    assert geodesic_deg(filled.scanner_from_head, motion @ pose) < 15
    assert np.linalg.norm(filled.scanner_from_head[:3, 3] - pose[:3, 3]) < 5
    assert filled.confidence >= 0.5
    monkeypatch.setattr(estimate_module, "EXTEND_MAX_VOXELS", 0)  # not filled
    first = estimate_pose(moved, grid)
    assert not first.details["field_of_view_extended"]
    assert first.confidence < 0.5
    assert geodesic_deg(first.scanner_from_head, motion @ pose) > 30


def test_passes_average_the_rotations_of_shifted_cubes_that_agree(monkeypatch):
    """passes > 1: the brain's region cube is cut again, shifted by half a cube voxel along the tetrahedral directions
    (in the volume's axes); the rotations of confident passes within PASS_AGREEMENT_DEG of the first are averaged,
    the others (confident but far off, doubtful, or without regions) left out; centre and confidence stay the first's.
    """
    from types import SimpleNamespace

    from mrmotion.geometry.parameters import transform_from_rotvec

    first_pose = np.eye(4)
    first_pose[:3, :3] = synth.random_rotation(np.random.default_rng(4))
    first_pose[:3, 3] = [5.0, -3.0, 2.0]
    first = estimate_module.PoseEstimate(
        first_pose, 0.9, 80.0, 250.0, {"centre_localiser_mm": [4.0, -2.0, 1.0], "localiser_probability": 0.95}
    )
    turn = transform_from_rotvec(np.radians([0.0, 0.0, 4.0]))  # 4° about the head's superior axis
    offsets = {  # what each shifted pass gives: (pose, confidence), or an error
        0: (first_pose @ turn, 0.8),
        1: (first_pose @ transform_from_rotvec(np.radians([90.0, 0.0, 0.0])), 0.95),  # confident, far off
        2: (first_pose @ turn, 0.2),  # agrees, but doubtful
        3: None,  # no regions in this cube
    }
    centres = []

    def shifted_pass(model, data, scanner_from_voxel, axes, found):
        centres.append(found["centre"])
        assert found["size"] == 80.0 and found["probability"] == 0.95 and found["volume_ml"] == 250.0
        given = offsets[len(centres) - 1]
        if given is None:
            raise MrMotionError("no brain regions found in the cube around the brain")
        return estimate_module.PoseEstimate(given[0], given[1], 80.0, 250.0, {})

    monkeypatch.setattr(estimate_module, "_pose_of_brain", shifted_pass)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, :3] = synth.random_rotation(np.random.default_rng(5)) * 3.0
    model = SimpleNamespace(passes=5, size=32)
    averaged = estimate_module._averaged_over_shifts(model, np.zeros((4, 4, 4)), affine, first)
    voxel = 80.0 / synth.BRAIN_SHARE_OF_CUBE / 32
    axes = affine[:3, :3] / 3.0
    expected = [np.array([4.0, -2.0, 1.0]) + axes @ (0.5 * voxel * d) for d in estimate_module.SHIFT_DIRECTIONS]
    assert np.allclose(centres, expected)
    # the chordal mean of the first and the one agreeing confident pass: half-way, 2° about the same axis
    assert geodesic_deg(averaged.scanner_from_head, first_pose @ transform_from_rotvec(np.radians([0, 0, 2.0]))) < 1e-6
    assert np.allclose(averaged.scanner_from_head[:3, 3], first_pose[:3, 3])
    assert averaged.confidence == 0.9 and averaged.details["passes"] == 2
    assert averaged.details["centre_localiser_mm"] == [4.0, -2.0, 1.0]
    assert first.details == {"centre_localiser_mm": [4.0, -2.0, 1.0], "localiser_probability": 0.95}  # not changed
    # fewer passes: fewer shifted cubes
    centres.clear()
    estimate_module._averaged_over_shifts(SimpleNamespace(passes=2, size=32), np.zeros((4, 4, 4)), affine, first)
    assert len(centres) == 1


def test_passes_on_a_held_out_atlas(held_out_volume):
    """With the shipped networks: 3 passes give a proper rotation near the single pass's, the same centre and
    confidence, and say how many passes were averaged; a single pass does not run the others."""
    from dataclasses import replace

    image, grid, _ = held_out_volume
    shipped = PoseModel.load()
    one = estimate_pose(image, grid, shipped)
    three = estimate_pose(image, grid, replace(shipped, passes=3))
    assert "passes" not in one.details
    assert 1 <= three.details["passes"] <= 3
    assert geodesic_deg(one.scanner_from_head, three.scanner_from_head) <= estimate_module.PASS_AGREEMENT_DEG
    assert np.allclose(one.scanner_from_head[:3, 3], three.scanner_from_head[:3, 3])
    assert three.confidence == one.confidence
    rotation = three.scanner_from_head[:3, :3]
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(rotation), 1)


@pytest.mark.parametrize("passes", [0, 6, 2.5, True, "3"])
def test_bad_passes_are_refused(passes):
    from dataclasses import replace

    with pytest.raises(MrMotionError, match="passes must be a whole number from 1 to 5"):
        replace(PoseModel.load(), passes=passes)


def test_blas_runs_on_one_thread_while_the_pose_is_estimated(held_out_volume, monkeypatch):
    """Inside estimate_pose numpy's BLAS has one thread (its spinning workers slowed the networks), and the limit
    is lifted afterwards, also when the estimate fails."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    inside = []
    original = estimate_module._pose_of_brain

    def watched(*args, **kwargs):
        inside.append(blas_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(estimate_module, "_pose_of_brain", watched)
    np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS is loaded
    with threadpool_limits(limits=2, user_api="blas"):  # two threads to start from, also on a one-core machine
        before = blas_threads()
        assert before and all(threads == 2 for threads in before)
        estimate_pose(*held_out_volume[:2])
        assert inside and all(threads == [1] * len(before) for threads in inside)
        assert blas_threads() == before
        with pytest.raises(MrMotionError):
            estimate_pose(np.zeros((20, 20, 20)), np.eye(4))
        assert blas_threads() == before
