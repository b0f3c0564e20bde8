"""Motion models: determinism by seed, maxima honoured, coverage, shapes of each family, validation."""

from __future__ import annotations

import numpy as np
import pytest

from mrmotion.errors import MrMotionError, TransformError
from mrmotion.geometry.parameters import euler_from_transform, rotation_distance, transform_from_rotvec
from mrmotion.geometry.transforms import is_rigid, make_transform
from mrmotion.io.tracking import TrackingLog
from mrmotion.physics.motion_models import (
    SEVERITIES,
    drift,
    from_tracking,
    periodic,
    random_motion,
    respiratory,
    severity,
    sudden,
)
from mrmotion.physics.trajectory import MotionTrajectory
from tests.helpers import random_rigid

CENTRE = np.array([5.0, -20.0, 30.0])
MODELS = {
    "sudden": lambda seed, **kw: sudden(0.0, 300.0, 4.0, 3.0, rate_large=2, rate_small=5, seed=seed, **kw),
    "drift": lambda seed, **kw: drift(0.0, 300.0, 4.0, 3.0, seed=seed, **kw),
    "periodic": lambda seed, **kw: periodic(0.0, 300.0, 4.0, 7.0, amplitude_mm=3.0, seed=seed, **kw),
}


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_output_different_seed_different_output(name: str) -> None:
    first, again, other = MODELS[name](1), MODELS[name](1), MODELS[name](2)
    np.testing.assert_array_equal(first.times_s, again.times_s)
    np.testing.assert_array_equal(first.transforms, again.transforms)
    assert first.transforms.tobytes() == again.transforms.tobytes()
    assert first.transforms.shape != other.transforms.shape or not np.array_equal(first.transforms, other.transforms)
    generator = MODELS[name](np.random.default_rng(1))
    np.testing.assert_array_equal(generator.transforms, first.transforms)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("centre", [None, CENTRE])
def test_maxima_honoured_and_first_state_identity(name: str, centre: np.ndarray | None) -> None:
    for seed in range(20):
        trajectory = MODELS[name](seed, centre_mm=centre)
        measured = severity(trajectory, centre_mm=centre)
        assert measured["max_rotation_deg"] <= 4.0 + 1e-9
        assert measured["max_translation_mm"] <= 3.0 + 1e-9
        np.testing.assert_allclose(trajectory.transforms[0], np.eye(4), atol=1e-12)
        assert trajectory.rigid and is_rigid(trajectory.transforms).all()


def test_drift_reaches_its_magnitudes_and_rotates_about_the_centre() -> None:
    trajectory = drift(0.0, 10.0, 4.0, 3.0, states=8, centre_mm=CENTRE, seed=0)
    assert len(trajectory) == 8
    measured = severity(trajectory, centre_mm=CENTRE)
    assert measured["max_rotation_deg"] == pytest.approx(4.0) and measured["max_translation_mm"] == pytest.approx(3.0)
    # Brute force: the same motion built about the origin, then conjugated by T(c).
    shift = make_transform(np.eye(3), CENTRE)
    about_origin = drift(0.0, 10.0, 4.0, 3.0, states=8, seed=0).transforms
    expected = shift @ about_origin @ np.linalg.inv(shift)
    np.testing.assert_allclose(trajectory.transforms, expected, atol=1e-12)
    assert severity(trajectory)["max_translation_mm"] > 3.0  # about the isocentre it moves further


@pytest.mark.parametrize("name", MODELS)
def test_trajectory_covers_exactly_the_scan(name: str) -> None:
    trajectory = MODELS[name](3)
    assert trajectory.times_s[0] == 0.0 and trajectory.end_s == 300.0
    assert trajectory.state_index([0.0, 150.0, 300.0])[0] == 0
    assert trajectory.state_index(300.0) == len(trajectory) - 1
    for outside in (-0.1, 300.1):
        with pytest.raises(MrMotionError, match="covers 0 s to 300 s"):
            trajectory.state_index(outside)


@pytest.mark.parametrize("seed", range(5))
def test_sudden_is_piecewise_constant_changing_only_at_jump_times(seed: int) -> None:
    trajectory = sudden(10.0, 70.0, 5.0, 5.0, rate_large=2, rate_small=4, window=0.5, seed=seed)
    jumps = trajectory.times_s[1:]
    assert np.all((jumps >= 25.0) & (jumps <= 55.0))  # central half of the scan
    times = np.linspace(10.0, 70.0, 60_001)
    poses = trajectory.at(times)
    changed = np.any(poses[1:] != poses[:-1], axis=(1, 2))
    # Each change happens in the sampling interval that contains a jump time, and every jump changes the pose.
    change_after = times[1:][changed]
    assert len(change_after) == len(jumps)
    np.testing.assert_array_less(change_after - jumps, 60.0 / 60_000 + 1e-9)
    assert np.all(change_after >= jumps)
    assert np.all(np.abs(np.diff(trajectory.transforms, axis=0)).max(axis=(1, 2)) > 0)


def test_sudden_small_movements_are_small() -> None:
    for seed in range(10):
        trajectory = sudden(0.0, 60.0, 10.0, 10.0, rate_large=0, rate_small=3, small_fraction=0.1, seed=seed)
        poses = trajectory.transforms
        steps = np.degrees(rotation_distance(poses[:-1], poses[1:]))
        shifts = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
        assert np.all(steps <= 1.0 + 1e-9) and np.all(shifts <= 1.0 + 1e-9)
    none = sudden(0.0, 60.0, 10.0, 10.0, rate_large=0, rate_small=0, seed=0)
    assert len(none) == 1 and none.end_s == 60.0


def test_periodic_has_the_right_period_axis_and_amplitude() -> None:
    period = 4.0
    trajectory = periodic(0.0, 20.0, 2.0, period, states=2000, seed=0)
    angles, translation = euler_from_transform(trajectory.transforms)
    np.testing.assert_allclose(angles[:, 1:], 0.0, atol=1e-12)  # only about LPS x
    np.testing.assert_allclose(translation, 0.0, atol=1e-12)
    nod = angles[:, 0]
    assert nod.max() == pytest.approx(2.0, abs=1e-4) and nod.min() == pytest.approx(-2.0, abs=1e-4)
    assert nod[1] > 0  # right-handed about +x, starting upwards
    rising = np.flatnonzero((nod[:-1] < 0) & (nod[1:] >= 0))
    np.testing.assert_allclose(np.diff(trajectory.times_s[rising]), period, atol=2 * 20.0 / 2000)
    assert len(rising) == 4
    default = periodic(0.0, 20.0, 2.0, period, seed=0)
    assert len(default) >= 32 * 20 / period
    _, translation = euler_from_transform(periodic(0.0, 20.0, 2.0, period, amplitude_mm=1.5, seed=0).transforms)
    assert np.linalg.norm(translation, axis=1).max() == pytest.approx(1.5, abs=1e-3)


@pytest.mark.parametrize(("axis", "column"), [("ap", 1), ("si", 2)])
def test_periodic_other_axes(axis: str, column: int) -> None:
    angles, _ = euler_from_transform(periodic(0.0, 8.0, 3.0, 4.0, axis=axis, seed=0).transforms)
    assert np.abs(angles[:, column]).max() == pytest.approx(3.0, abs=1e-3)
    np.testing.assert_allclose(np.delete(angles, column, axis=1), 0.0, atol=1e-12)


def test_respiratory_is_affine_not_rigid() -> None:
    trajectory = respiratory(0.0, 12.0, 10.0, 4.0, scale=0.05, centre_mm=CENTRE)
    assert not trajectory.rigid and trajectory.end_s == 12.0
    np.testing.assert_allclose(trajectory.transforms[0], np.eye(4), atol=1e-15)
    with pytest.raises(TransformError, match="not a rigid transform"):
        MotionTrajectory(trajectory.times_s, trajectory.transforms, trajectory.end_s, rigid=True)
    linear, shift = trajectory.transforms[:, :3, :3], trajectory.transforms[:, :3, 3]
    np.testing.assert_allclose(linear[:, 1, 1].max(), 1.05, atol=1e-3)
    assert shift[:, 2].min() == pytest.approx(-10.0, abs=1e-2) and shift[:, 2].max() <= 0
    # The scaling is about the centre: the centre only moves inferiorly.
    moved = np.einsum("tij,j->ti", linear, CENTRE) + shift
    np.testing.assert_allclose(moved[:, :2], np.broadcast_to(CENTRE[:2], (len(trajectory), 2)), atol=1e-12)
    measured = severity(trajectory, centre_mm=CENTRE)
    assert measured["max_rotation_deg"] == pytest.approx(0.0, abs=1e-9)
    assert measured["max_translation_mm"] == pytest.approx(10.0, abs=1e-2)


def _log(count: int = 15, seed: int = 0) -> TrackingLog:
    rng = np.random.default_rng(seed)
    times = 100.0 + np.cumsum(rng.uniform(0.01, 0.1, count))
    return TrackingLog(times, random_rigid(rng, count))


def test_from_tracking_identity_at_reference_and_calibration_conjugation() -> None:
    log = _log()
    calibration = random_rigid(np.random.default_rng(9), scale_mm=300.0)
    trajectory = from_tracking(log, calibration, time_offset_s=100.0)
    np.testing.assert_allclose(trajectory.transforms[0], np.eye(4), atol=1e-12)
    np.testing.assert_array_equal(trajectory.times_s, log.times_s - 100.0)
    assert trajectory.end_s == trajectory.times_s[-1]
    poses = log.camera_from_marker
    for index in range(len(log)):
        camera = poses[index] @ np.linalg.inv(poses[0])
        expected = calibration @ camera @ np.linalg.inv(calibration)
        np.testing.assert_allclose(trajectory.transforms[index], expected, atol=1e-9)
    in_camera = from_tracking(log, reference_index=3)
    np.testing.assert_allclose(in_camera.transforms[3], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(in_camera.transforms[5], poses[5] @ np.linalg.inv(poses[3]), atol=1e-9)


def test_from_tracking_uses_valid_samples_only() -> None:
    log = _log()
    valid = np.ones(len(log), dtype=bool)
    valid[[0, 4, 14]] = False
    trajectory = from_tracking(TrackingLog(log.times_s, log.camera_from_marker, valid))
    np.testing.assert_array_equal(trajectory.times_s, log.times_s[valid])
    assert trajectory.end_s == log.times_s[13]
    np.testing.assert_allclose(
        trajectory.transforms[0], log.camera_from_marker[1] @ np.linalg.inv(log.camera_from_marker[1]), atol=1e-12
    )


@pytest.mark.parametrize("name", list(SEVERITIES))
def test_random_motion_presets_honour_their_maxima(name: str) -> None:
    limit = SEVERITIES[name]["max_rotation_deg"], SEVERITIES[name]["max_translation_mm"]
    families = set()
    for seed in range(12):
        trajectory = random_motion(name, 0.0, 240.0, seed=seed, centre_mm=CENTRE)
        measured = severity(trajectory, centre_mm=CENTRE)
        assert measured["max_rotation_deg"] <= limit[0] + 1e-9 and measured["max_translation_mm"] <= limit[1] + 1e-9
        assert trajectory.times_s[0] == 0.0 and trajectory.end_s == 240.0
        families.add(len(trajectory) == 32)
        again = random_motion(name, 0.0, 240.0, seed=seed, centre_mm=CENTRE)
        np.testing.assert_array_equal(again.transforms, trajectory.transforms)
    for family in ("sudden", "drift", "periodic"):
        trajectory = random_motion(name, 0.0, 240.0, seed=0, family=family)
        assert severity(trajectory)["max_rotation_deg"] <= limit[0] + 1e-9


def test_severity_measures_a_known_motion() -> None:
    motion = transform_from_rotvec([[0, 0, 0], [np.radians(5.0), 0, 0]], [[0, 0, 0], [0, 3.0, 4.0]])
    measured = severity(MotionTrajectory(np.array([0.0, 1.0]), motion, 2.0), radius_mm=0.0)
    assert measured == pytest.approx(
        {"max_rotation_deg": 5.0, "max_translation_mm": 5.0, "max_rms_displacement_mm": 5.0}
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sudden(0, 10, -1, 1, seed=0), "max_rotation_deg"),
        (lambda: sudden(0, 10, 1, float("nan"), seed=0), "max_translation_mm"),
        (lambda: sudden(0, 10, 200, 1, seed=0), "≤ 180"),
        (lambda: sudden(0, 10, 1, 1, window=0, seed=0), "window"),
        (lambda: sudden(0, 10, 1, 1, rate_small=-1, seed=0), "rate_small"),
        (lambda: sudden(0, 10, 1, 1, seed=None), "seed"),
        (lambda: drift(10, 10, 1, 1, seed=0), "must be after start_s"),
        (lambda: drift(0, float("inf"), 1, 1, seed=0), "finite"),
        (lambda: drift(0, 10, 1, 1, states=0, seed=0), "states"),
        (lambda: periodic(0, 10, 1, 0, seed=0), "period_s"),
        (lambda: periodic(0, 10, 1, 2, axis="x", seed=0), "axis"),
        (lambda: periodic(0, 10, 1, 2, centre_mm=[1, 2], seed=0), "centre_mm"),
        (lambda: respiratory(0, 10, -5, 4), "amplitude_mm"),
        (lambda: random_motion("extreme", 0, 10, seed=0), "severity"),
        (lambda: random_motion("light", 0, 10, seed=0, family="jitter"), "family"),
        (lambda: from_tracking(_log(), reference_index=99), "reference_index"),
        (lambda: from_tracking(np.eye(4)), "TrackingLog"),
        (lambda: from_tracking(_log(), np.diag([2.0, 1, 1, 1])), "scanner_from_camera"),
        (lambda: severity(np.eye(4)), "MotionTrajectory"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, message: str) -> None:
    with pytest.raises(MrMotionError, match=message):
        call()


def test_state_index_of_sorted_times_equals_the_per_sample_lookup() -> None:
    """Acquisition-ordered times take a faster path; it must agree with the lookup of unsorted times, including
    times exactly at a state's start and states that no sample falls in."""
    rng = np.random.default_rng()
    starts = np.concatenate([[0.0], np.sort(rng.uniform(0, 10, 20))])
    trajectory = MotionTrajectory(starts, np.repeat(np.eye(4)[None], len(starts), axis=0), end_s=10.0)
    times = np.sort(np.concatenate([rng.uniform(0, 10, 500), starts[::3], [10.0]]))
    shuffled = rng.permutation(len(times))
    fast = trajectory.state_index(times)
    slow = np.empty_like(fast)
    slow[shuffled] = trajectory.state_index(times[shuffled])
    assert np.array_equal(fast, slow)
    assert np.array_equal(fast, np.searchsorted(starts, times, side="right") - 1)
    assert trajectory.state_index(times.reshape(2, -1)).shape == (2, len(times) // 2)


def test_mean_pose_of_one_pose_is_that_pose_and_weights_pick_the_states():
    rng = np.random.default_rng()
    transforms = np.stack([random_rigid(rng) for _ in range(3)])
    motion = MotionTrajectory(np.array([0.0, 1.0, 2.0]), transforms, end_s=3.0)
    times = rng.uniform(0, 3, 200)
    centre = rng.normal(0, 50, 3)
    # all the weight on the samples of one state: exactly that state's pose, whatever the centre
    only_middle = (times >= 1) & (times < 2)
    np.testing.assert_allclose(motion.mean_pose(times, only_middle, centre), transforms[1], atol=1e-10)
    # the constant pose of a still scan
    still = MotionTrajectory.constant(transforms[0])
    np.testing.assert_allclose(still.mean_pose(times, rng.uniform(0, 1, 200), centre), transforms[0], atol=1e-10)


def test_mean_pose_of_two_rotations_about_the_centre_is_the_halfway_rotation_and_keeps_the_centre():
    rng = np.random.default_rng()
    centre, axis = rng.normal(0, 40, 3), rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(0.05, 0.5)

    def about_centre(rotvec):
        return make_transform(np.eye(3), centre) @ transform_from_rotvec(rotvec) @ make_transform(np.eye(3), -centre)

    motion = MotionTrajectory(np.array([0.0, 1.0]), np.stack([about_centre(angle * axis), about_centre(-angle * axis)]))
    times = np.array([0.5, 1.5, 1.7])
    mean = motion.mean_pose(times, np.array([2.0, 1.0, 1.0]), centre)  # equal weight per state
    np.testing.assert_allclose(mean, np.eye(4), atol=1e-10)
    # weights 3 : 1 (and 0): the chordal mean of rotations about one axis turns by atan2(Σ w sin θ, Σ w cos θ)
    uneven = motion.mean_pose(times, np.array([3.0, 1.0, 0.0]), centre)
    expected_angle = float(np.arctan2(3 * np.sin(angle) - np.sin(angle), 3 * np.cos(angle) + np.cos(angle)))
    np.testing.assert_allclose(uneven, about_centre(expected_angle * axis), atol=1e-10)


def test_mean_pose_refuses_bad_weights_and_affine_motion():
    motion = MotionTrajectory(np.array([0.0, 1.0]), np.stack([np.eye(4), np.eye(4)]), end_s=2.0)
    times = np.array([0.5, 1.5])
    for weights, match in (([1.0], "2 times but 1 weights"), ([np.nan, 1.0], "finite"), ([-1.0, 2.0], "≥ 0"),
                           ([0.0, 0.0], "not all 0")):  # fmt: skip
        with pytest.raises(MrMotionError, match=match):
            motion.mean_pose(times, np.array(weights), np.zeros(3))
    with pytest.raises(MrMotionError, match="about_mm"):
        motion.mean_pose(times, np.ones(2), np.zeros(2))
    with pytest.raises(MrMotionError, match="not extrapolated"):
        motion.mean_pose(np.array([0.5, 3.0]), np.ones(2), np.zeros(3))
    affine = MotionTrajectory.constant(np.diag([1.1, 1.0, 1.0, 1.0]), rigid=False)
    with pytest.raises(MrMotionError, match="rigid"):
        affine.mean_pose(times, np.ones(2), np.zeros(3))
    with pytest.raises(TransformError):
        motion.relative_to_pose(np.diag([1.1, 1.0, 1.0, 1.0]))


def test_relative_to_makes_the_reference_pose_the_identity_and_keeps_relative_motion():
    rng = np.random.default_rng()
    transforms = np.stack([random_rigid(rng) for _ in range(4)])
    motion = MotionTrajectory(np.array([0.0, 1.0, 2.0, 3.0]), transforms, end_s=4.0)
    moved = motion.relative_to(2.5)
    np.testing.assert_allclose(moved.at(np.array([2.5]))[0], np.eye(4), atol=1e-12)
    # the change of pose between any two states is the same in both references
    np.testing.assert_allclose(moved.transforms @ transforms[2], transforms, atol=1e-10)
    assert moved.end_s == 4.0 and moved.rigid
    with pytest.raises(MrMotionError, match="not extrapolated"):
        motion.relative_to(5.0)
