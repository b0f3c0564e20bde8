"""Tests for mrmotion.geometry.calibration: hand–eye cross-calibration ``Q(i) = X P(i) M``.

Synthetic scenarios: X = scanner_from_camera (camera about half a metre from the isocentre), M =
marker_from_object (marker a few cm from the head origin), random tracker poses P(i), and Q(i) = X P(i) M,
optionally with Gaussian noise on Q(i) (rotation noise in degrees applied in the scanner frame, translation
noise in mm), as image-based poses would have.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from mrmotion.errors import CalibrationError, MrMotionError, TransformError
from mrmotion.geometry.calibration import METHODS, CalibrationResult, calibrate
from mrmotion.geometry.transforms import invert_rigid, make_transform

Array = NDArray[np.float64]


# --- helpers --------------------------------------------------------------------------------------------------


def random_rigid(rng: np.random.Generator, count: int | None = None, translation_mm: float = 100.0) -> Array:
    """Uniformly random rotations with Gaussian translations (mm): one (4, 4) or (count, 4, 4)."""
    rotation = Rotation.random(count, random_state=rng).as_matrix()
    shape = () if count is None else (count,)
    return make_transform(rotation, rng.normal(scale=translation_mm, size=(*shape, 3)))


def scenario(seed: int, count: int = 12) -> tuple[Array, Array, Array, Array]:
    """``(X, M, P, Q)`` with random X, M and ``count`` random poses P, and Q = X P M exactly."""
    rng = np.random.default_rng(seed)
    scanner_from_camera = random_rigid(rng, translation_mm=500.0)
    marker_from_object = random_rigid(rng, translation_mm=50.0)
    camera_from_marker = random_rigid(rng, count)
    return (
        scanner_from_camera,
        marker_from_object,
        camera_from_marker,
        (scanner_from_camera @ camera_from_marker @ marker_from_object),
    )


def perturb(poses: Array, rng: np.random.Generator, sigma_deg: float, sigma_mm: float) -> Array:
    """Gaussian noise on poses: rotation vector N(0, σ_deg²) per axis (scanner frame), translation N(0, σ_mm²)."""
    noise = Rotation.from_rotvec(np.radians(sigma_deg) * rng.normal(size=(len(poses), 3))).as_matrix()
    out = poses.copy()
    out[:, :3, :3] = noise @ poses[:, :3, :3]
    out[:, :3, 3] += rng.normal(scale=sigma_mm, size=(len(poses), 3))
    return out


def pose_error(estimate: Array, truth: Array) -> tuple[float, float]:
    """(rotation angle between the two in degrees, translation distance in mm)."""
    difference = invert_rigid(truth) @ estimate
    angle = float(np.degrees(Rotation.from_matrix(difference[:3, :3]).magnitude()))
    return angle, float(np.linalg.norm(estimate[:3, 3] - truth[:3, 3]))


def spread_poses(rng: np.random.Generator, count: int, max_deg: float = 55.0, min_sep_deg: float = 20.0) -> Array:
    """Head-like poses: rotations within ``max_deg`` of a reference, pairwise at least ``min_sep_deg`` apart.

    Every relative rotation is then between 20° and 110°.
    """
    rotations: list[Rotation] = []
    while len(rotations) < count:
        axis = rng.normal(size=3)
        candidate = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.uniform(0.0, max_deg)))
        if all(np.degrees((candidate * other.inv()).magnitude()) > min_sep_deg for other in rotations):
            rotations.append(candidate)
    matrices = np.stack([rotation.as_matrix() for rotation in rotations])
    return make_transform(matrices, rng.normal(scale=100.0, size=(count, 3)))


# --- exact recovery -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_x_and_m_exactly(method: str, seed: int) -> None:
    scanner_from_camera, marker_from_object, camera_from_marker, scanner_from_object = scenario(seed)
    result = calibrate(camera_from_marker, scanner_from_object, method=method)
    assert isinstance(result, CalibrationResult)
    assert result.method == method
    assert result.scanner_from_camera.shape == (4, 4) and result.marker_from_object.shape == (4, 4)
    assert np.abs(result.scanner_from_camera - scanner_from_camera).max() < 1e-6
    assert np.abs(result.marker_from_object - marker_from_object).max() < 1e-6
    assert result.residual_rotation_deg.shape == (12,) and result.residual_translation_mm.shape == (12,)
    assert result.residual_rotation_deg.max() < 1e-6
    assert result.residual_translation_mm.max() < 1e-6


def test_default_method_is_park_and_three_pairs_suffice() -> None:
    scanner_from_camera, _, camera_from_marker, scanner_from_object = scenario(3, count=3)
    result = calibrate(camera_from_marker, scanner_from_object)
    assert result.method == "park"
    assert np.abs(result.scanner_from_camera - scanner_from_camera).max() < 1e-6


def test_result_arrays_are_read_only() -> None:
    _, _, camera_from_marker, scanner_from_object = scenario(4)
    result = calibrate(camera_from_marker, scanner_from_object)
    with pytest.raises(ValueError, match="read-only"):
        result.scanner_from_camera[0, 0] = 2.0


@pytest.mark.parametrize("method", METHODS)
def test_camera_mounted_upside_down(method: str) -> None:
    """X an exact half-turn (Tsai's p' = tan(θ/2) n is infinite there): still recovered."""
    rng = np.random.default_rng(5)
    for rotation in (np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])):
        scanner_from_camera = make_transform(rotation, (0.0, -30.0, 450.0))
        marker_from_object = random_rigid(rng, translation_mm=50.0)
        camera_from_marker = random_rigid(rng, 10)
        scanner_from_object = scanner_from_camera @ camera_from_marker @ marker_from_object
        result = calibrate(camera_from_marker, scanner_from_object, method=method)
        assert np.abs(result.scanner_from_camera - scanner_from_camera).max() < 1e-6


@pytest.mark.parametrize("method", METHODS)
def test_motions_near_half_turn_with_noise(method: str) -> None:
    """Relative rotations within 1° of 180°: noise can flip the axis (quaternion sign) of A against B.

    Without aligning the signs, such pairs enter the systems with the wrong sign and X is off by degrees;
    with the alignment the error stays at the level of the noise.
    """
    rng = np.random.default_rng(6)
    scanner_from_camera = random_rigid(rng, translation_mm=500.0)
    marker_from_object = random_rigid(rng, translation_mm=50.0)
    axes = rng.normal(size=(11, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    half_turns = Rotation.from_rotvec(axes * np.radians(rng.uniform(179.0, 180.0, size=(11, 1)))).as_matrix()
    rotations = np.concatenate([np.eye(3)[None], half_turns])
    camera_from_marker = make_transform(rotations, rng.normal(scale=100.0, size=(12, 3)))
    exact = scanner_from_camera @ camera_from_marker @ marker_from_object
    noisy = perturb(exact, rng, sigma_deg=0.5, sigma_mm=0.5)
    result = calibrate(camera_from_marker, noisy, method=method)
    rotation_deg, translation_mm = pose_error(result.scanner_from_camera, scanner_from_camera)
    assert rotation_deg < 0.5 and translation_mm < 3.0


# --- noise ----------------------------------------------------------------------------------------------------

NOISE_LEVELS = (0.0, 0.01, 0.1, 0.5, 1.0)  # σ in degrees (rotation) and mm (translation) on each Q(i)
NOISE_SEEDS = range(8)


def median_errors(method: str) -> Array:
    """Median over seeds of the (rotation deg, translation mm) error of X, one row per noise level."""
    rows = []
    for level in NOISE_LEVELS:
        errors = []
        for seed in NOISE_SEEDS:
            scanner_from_camera, _, camera_from_marker, scanner_from_object = scenario(100 + seed)
            noisy = perturb(scanner_from_object, np.random.default_rng(seed), level, level)
            estimate = calibrate(camera_from_marker, noisy, method=method).scanner_from_camera
            errors.append(pose_error(estimate, scanner_from_camera))
        rows.append(np.median(errors, axis=0))
    return np.array(rows)


@pytest.mark.parametrize("method", METHODS)
def test_error_grows_in_proportion_to_noise(method: str) -> None:
    """Median error of X over 8 seeds at σ = 0, 0.01, 0.1, 0.5, 1 (deg and mm on every Q(i)).

    Each seed draws its noise directions once and scales them by σ, so the errors follow the first-order
    (linear) response of the solver. Checks: (1) essentially zero without noise; (2) strictly increasing with
    σ; (3) proportional: error/σ varies by less than a factor 1.5 over two decades of σ (a constant bias, an
    error floor or a quadratic term would break this); (4) bounded slopes: at most 0.75° of X rotation error
    per degree of pose noise and at most 3 mm of X translation error per unit σ. Measured (12 poses, 66 pairs,
    camera 0.5 m away): 0.43–0.48 deg/deg for all three; 1.05 mm (park, tsai) and 1.75 mm (daniilidis) per unit.
    """
    errors = median_errors(method)
    assert np.all(errors[0] < 1e-8)
    assert np.all(np.diff(errors, axis=0) > 0)
    slopes = errors[1:] / np.array(NOISE_LEVELS[1:])[:, None]
    assert np.all(slopes.max(axis=0) / slopes.min(axis=0) < 1.5), slopes
    assert slopes[:, 0].max() < 0.75 and slopes[:, 1].max() < 3.0, slopes


# --- OpenCV cross-check ---------------------------------------------------------------------------------------


def opencv_scanner_from_camera(camera_from_marker: Array, scanner_from_object: Array, flag: int) -> Array:
    """X from ``cv2.calibrateHandEye`` with the mapping of DESIGN.md §2.

    OpenCV's eye-in-hand model is ``base_from_gripper(i) · gripper_from_cam · cam_from_target(i) = const``.
    Ours rearranges to ``Q(i)⁻¹ · X · P(i) = M⁻¹ = const``: base = object, gripper = scanner, cam = camera,
    target = marker. So ``R/t_gripper2base`` = Q(i)⁻¹, ``R/t_target2cam`` = P(i), and ``cam2gripper`` = X
    (scanner_from_camera); the DESIGN.md mapping is right, and test_opencv_mapping checks it on exact data.
    """
    cv2 = pytest.importorskip("cv2")
    object_from_scanner = invert_rigid(scanner_from_object)
    rotation, translation = cv2.calibrateHandEye(
        list(object_from_scanner[:, :3, :3]),
        list(object_from_scanner[:, :3, 3]),
        list(camera_from_marker[:, :3, :3]),
        list(camera_from_marker[:, :3, 3]),
        method=flag,
    )
    return make_transform(rotation, np.ravel(translation))


def test_opencv_mapping() -> None:
    cv2 = pytest.importorskip("cv2")
    scanner_from_camera, _, camera_from_marker, scanner_from_object = scenario(7)
    estimate = opencv_scanner_from_camera(camera_from_marker, scanner_from_object, cv2.CALIB_HAND_EYE_PARK)
    assert np.abs(estimate - scanner_from_camera).max() < 1e-6


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_opencv_on_noisy_data(method: str, seed: int) -> None:
    """Same pairs (all i < j), same algorithms: agreement to rounding on noisy head-like motion.

    The poses keep every relative rotation between 20° and 110° on purpose. OpenCV ≥ 4.10 (PR #24897) drops
    from Tsai's system the motions it deems uninformative (measured with 4.14: rotations below ~17° and above
    ~116°), where we use every pair unweighted; and near 180° OpenCV does not align quaternion signs (its
    Daniilidis then errs by tens of mm on noisy data; see test_motions_near_half_turn_with_noise for ours).
    """
    cv2 = pytest.importorskip("cv2")
    flags = {
        "park": cv2.CALIB_HAND_EYE_PARK,
        "tsai": cv2.CALIB_HAND_EYE_TSAI,
        "daniilidis": cv2.CALIB_HAND_EYE_DANIILIDIS,
    }
    rng = np.random.default_rng(200 + seed)
    scanner_from_camera = random_rigid(rng, translation_mm=500.0)
    marker_from_object = random_rigid(rng, translation_mm=50.0)
    camera_from_marker = spread_poses(rng, 10)
    exact = scanner_from_camera @ camera_from_marker @ marker_from_object
    noisy = perturb(exact, rng, sigma_deg=0.5, sigma_mm=0.5)
    ours = calibrate(camera_from_marker, noisy, method=method).scanner_from_camera
    theirs = opencv_scanner_from_camera(camera_from_marker, noisy, flags[method])
    rotation_deg, translation_mm = pose_error(ours, theirs)
    assert rotation_deg < 1e-6 and translation_mm < 1e-6
    # and both are actually near the truth, not merely near each other
    rotation_deg, translation_mm = pose_error(ours, scanner_from_camera)
    assert rotation_deg < 1.0 and translation_mm < 10.0


# --- bad input ------------------------------------------------------------------------------------------------


def _good_inputs(count: int = 6) -> tuple[Array, Array]:
    _, _, camera_from_marker, scanner_from_object = scenario(8, count=count)
    return camera_from_marker, scanner_from_object


def test_rejects_scaling_or_shear() -> None:
    camera_from_marker, scanner_from_object = _good_inputs()
    scaled = scanner_from_object.copy()
    scaled[2, :3, :3] *= 1.01
    with pytest.raises(TransformError, match=r"scanner_from_object\[2\] is not a rigid transform.*scaling or shear"):
        calibrate(camera_from_marker, scaled)
    sheared = camera_from_marker.copy()
    sheared[4, 0, 1] += 0.05
    with pytest.raises(TransformError, match=r"camera_from_marker\[4\] is not a rigid transform.*scaling or shear"):
        calibrate(sheared, scanner_from_object)


def test_rejects_reflection() -> None:
    camera_from_marker, scanner_from_object = _good_inputs()
    reflected = camera_from_marker.copy()
    reflected[1, :3, :3] = reflected[1, :3, :3] @ np.diag([1.0, 1.0, -1.0])
    with pytest.raises(TransformError, match=r"camera_from_marker\[1\] .*reflection"):
        calibrate(reflected, scanner_from_object)


def test_rejects_nan() -> None:
    camera_from_marker, scanner_from_object = _good_inputs()
    broken = scanner_from_object.copy()
    broken[3, 0, 3] = np.nan
    with pytest.raises(TransformError, match=r"scanner_from_object\[3\]: contains NaN or infinite"):
        calibrate(camera_from_marker, broken)


@pytest.mark.parametrize("shape_of", [lambda poses: poses[:, :3, :], lambda poses: poses[0], lambda poses: poses[None]])
def test_rejects_wrong_shapes(shape_of) -> None:
    camera_from_marker, scanner_from_object = _good_inputs()
    with pytest.raises(TransformError, match=r"camera_from_marker: expected shape \(N, 4, 4\)"):
        calibrate(shape_of(camera_from_marker), scanner_from_object)


def test_rejects_non_numbers() -> None:
    _, scanner_from_object = _good_inputs()
    with pytest.raises(TransformError, match="camera_from_marker: expected an"):
        calibrate([["a"]], scanner_from_object)


def test_rejects_mismatched_counts() -> None:
    camera_from_marker, scanner_from_object = _good_inputs()
    with pytest.raises(CalibrationError, match="camera_from_marker has 6 poses but scanner_from_object has 5"):
        calibrate(camera_from_marker, scanner_from_object[:5])


@pytest.mark.parametrize("count", [0, 1, 2])
def test_rejects_fewer_than_three_pairs(count: int) -> None:
    camera_from_marker, scanner_from_object = _good_inputs()
    with pytest.raises(CalibrationError, match=f"needs at least 3 pose pairs, got {count}"):
        calibrate(camera_from_marker[:count], scanner_from_object[:count])


def test_rejects_rotation_about_one_axis() -> None:
    rng = np.random.default_rng(9)
    scanner_from_camera = random_rigid(rng, translation_mm=500.0)
    marker_from_object = random_rigid(rng, translation_mm=50.0)
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    base = Rotation.random(random_state=rng)
    angles = np.radians(rng.uniform(-40.0, 40.0, size=(8, 1)))
    # the same axis in the camera frame for every relative motion: P(i) = Rot(axis, θ_i) · base
    rotations = (Rotation.from_rotvec(angles * axis) * base).as_matrix()
    camera_from_marker = make_transform(rotations, rng.normal(scale=100.0, size=(8, 3)))
    scanner_from_object = scanner_from_camera @ camera_from_marker @ marker_from_object
    for method in METHODS:
        with pytest.raises(CalibrationError, match="not identifiable.*about one axis.*at least two different axes"):
            calibrate(camera_from_marker, scanner_from_object, method=method)


def test_rejects_no_rotation() -> None:
    rng = np.random.default_rng(10)
    rotation = Rotation.random(random_state=rng).as_matrix()
    camera_from_marker = make_transform(rotation, rng.normal(scale=100.0, size=(6, 3)))
    scanner_from_object = random_rigid(rng) @ camera_from_marker
    with pytest.raises(CalibrationError, match="not identifiable.*do not rotate.*at least two different axes"):
        calibrate(camera_from_marker, scanner_from_object)


def test_rejects_unknown_method() -> None:
    camera_from_marker, scanner_from_object = _good_inputs()
    with pytest.raises(CalibrationError, match="unknown calibration method 'horaud'.*park, tsai, daniilidis"):
        calibrate(camera_from_marker, scanner_from_object, method="horaud")


def test_errors_are_project_errors() -> None:
    assert issubclass(CalibrationError, MrMotionError) and issubclass(TransformError, MrMotionError)


# --- property -------------------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), count=st.integers(min_value=3, max_value=15))
def test_property_recovers_x(seed: int, count: int) -> None:
    scanner_from_camera, marker_from_object, camera_from_marker, scanner_from_object = scenario(seed, count)
    for method in METHODS:
        result = calibrate(camera_from_marker, scanner_from_object, method=method)
        assert np.abs(result.scanner_from_camera - scanner_from_camera).max() < 1e-6, method
        assert np.abs(result.marker_from_object - marker_from_object).max() < 1e-6, method
