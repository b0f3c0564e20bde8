import numpy as np
import pytest
from hypothesis import given, settings
from scipy.spatial.transform import Rotation

from mrmotion.errors import TransformError
from mrmotion.geometry.parameters import (
    euler_from_transform,
    framewise_displacement,
    quaternion_from_transform,
    rotation_angle,
    rotation_distance,
    rotvec_from_transform,
    sphere_rms_displacement,
    transform_from_euler,
    transform_from_quaternion,
    transform_from_rotvec,
    translation_distance,
)
from mrmotion.geometry.transforms import apply
from tests.helpers import random_rigid, seeds


@settings(max_examples=40, deadline=None)
@given(seeds)
def test_parameter_round_trips(seed):
    transform = random_rigid(np.random.default_rng(seed), (2, 3))
    np.testing.assert_allclose(transform_from_rotvec(*rotvec_from_transform(transform)), transform, atol=1e-10)
    quat, translation = quaternion_from_transform(transform)
    assert np.all(quat[..., 3] >= 0)
    np.testing.assert_allclose(np.linalg.norm(quat, axis=-1), 1.0)
    np.testing.assert_allclose(transform_from_quaternion(quat, translation), transform, atol=1e-10)
    for seq in ("xyz", "ZYX"):
        np.testing.assert_allclose(
            transform_from_euler(*euler_from_transform(transform, seq), seq=seq), transform, atol=1e-9
        )


def test_conventions_against_known_rotation():
    # 90° about z maps x to y; quaternion scalar-last (0, 0, sin 45°, cos 45°).
    transform = transform_from_euler([0, 0, 90], [1, 2, 3])
    np.testing.assert_allclose(apply(transform, [1, 0, 0]), [1, 3, 3], atol=1e-12)
    quat, _ = quaternion_from_transform(transform)
    np.testing.assert_allclose(quat, [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(rotvec_from_transform(transform)[0], [0, 0, np.pi / 2], atol=1e-12)
    np.testing.assert_allclose(rotation_angle(transform), np.pi / 2)


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_distances(seed):
    rng = np.random.default_rng(seed)
    a, b = random_rigid(rng, 2)
    relative = np.linalg.inv(a) @ b
    np.testing.assert_allclose(rotation_distance(a, b), Rotation.from_matrix(relative[:3, :3]).magnitude(), atol=1e-9)
    np.testing.assert_allclose(rotation_distance(a, b), rotation_distance(b, a), atol=1e-9)
    np.testing.assert_allclose(translation_distance(a, b), np.linalg.norm(a[:3, 3] - b[:3, 3]))


def test_sphere_displacement_matches_monte_carlo():
    rng = np.random.default_rng(3)
    transform = random_rigid(rng, scale_mm=2.0)
    points = rng.normal(size=(200_000, 3))
    points *= 50.0 / np.linalg.norm(points, axis=1, keepdims=True)
    brute = np.sqrt(np.mean(np.sum((apply(transform, points) - points) ** 2, axis=1)))
    np.testing.assert_allclose(sphere_rms_displacement(transform, 50.0), brute, rtol=5e-3)


def test_framewise_displacement():
    poses = np.stack([transform_from_rotvec([0, 0, 0], [0, 0, z]) for z in (0.0, 1.0, 1.0, 4.0)])
    np.testing.assert_allclose(framewise_displacement(poses), [0, 1, 0, 3])
    rotated = transform_from_rotvec([0, 0, 0.01])
    expected = np.sqrt(50.0**2 / 3 * np.sum((rotated[:3, :3] - np.eye(3)) ** 2))
    np.testing.assert_allclose(framewise_displacement(np.stack([np.eye(4), rotated]))[1], expected)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: transform_from_rotvec([0, 0]), r"expected shape \(\.\.\., 3\)"),
        (lambda: transform_from_rotvec([0, np.nan, 0]), "NaN"),
        (lambda: transform_from_quaternion([0, 0, 0, 0]), "zero-length"),
        (lambda: transform_from_quaternion([0, 0, 1]), r"\(\.\.\., 4\)"),
        (lambda: transform_from_euler([1, 2, 3], seq="abc"), "Euler sequence"),
        (lambda: rotvec_from_transform(np.diag([2.0, 1, 1, 1])), "not a rigid"),
        (lambda: sphere_rms_displacement(np.eye(4), -1.0), "radius"),
        (lambda: framewise_displacement(np.eye(4)), r"\(T, 4, 4\)"),
    ],
)
def test_bad_parameters(call, message):
    with pytest.raises(TransformError, match=message):
        call()
