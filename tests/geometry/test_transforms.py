import numpy as np
import pytest
from hypothesis import given, settings

from mrmotion.errors import MrMotionError, TransformError
from mrmotion.geometry.transforms import (
    apply,
    as_rigid,
    as_transform,
    compose,
    invert,
    invert_rigid,
    is_rigid,
    make_transform,
    orthonormalize,
    rigidity_error,
)
from tests.helpers import random_rigid, seeds


@settings(max_examples=50, deadline=None)
@given(seeds)
def test_rigid_inverse_is_closed_form_of_general_inverse(seed):
    transform = random_rigid(np.random.default_rng(seed), 5)
    np.testing.assert_allclose(invert_rigid(transform), np.linalg.inv(transform), atol=1e-10)
    np.testing.assert_allclose(
        compose(transform, invert_rigid(transform)), np.broadcast_to(np.eye(4), (5, 4, 4)), atol=1e-12
    )


@settings(max_examples=50, deadline=None)
@given(seeds)
def test_composition_is_associative_and_applies_right_to_left(seed):
    rng = np.random.default_rng(seed)
    a, b, c = random_rigid(rng, 3)
    np.testing.assert_allclose(compose(compose(a, b), c), compose(a, compose(b, c)), atol=1e-9)
    points = rng.normal(size=(7, 3)) * 40
    np.testing.assert_allclose(apply(compose(a, b), points), apply(a, apply(b, points)), atol=1e-9)


def test_compose_broadcasts_batches():
    rng = np.random.default_rng(1)
    a, b = random_rigid(rng, (4, 1)), random_rigid(rng, (1, 3))
    out = compose(a, b)
    assert out.shape == (4, 3, 4, 4)
    np.testing.assert_allclose(out[2, 1], a[2, 0] @ b[0, 1])


def test_affine_inverse_and_orthonormalize():
    rng = np.random.default_rng(2)
    affine = make_transform(rng.normal(size=(3, 3)) + 3 * np.eye(3), rng.normal(size=3))
    np.testing.assert_allclose(invert(affine) @ affine, np.eye(4), atol=1e-10)
    rigid = random_rigid(rng)
    perturbed = rigid.copy()
    perturbed[:3, :3] += 1e-4 * rng.normal(size=(3, 3))
    assert not is_rigid(perturbed)
    fixed = orthonormalize(perturbed)
    assert rigidity_error(fixed) < 1e-14
    np.testing.assert_allclose(fixed[:3, :3], rigid[:3, :3], atol=1e-3)
    np.testing.assert_array_equal(fixed[:3, 3], rigid[:3, 3])


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.eye(3), r"expected shape \(\.\.\., 4, 4\), got \(3, 3\)"),
        (np.eye(4)[:3], r"got \(3, 4\)"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1.0]]), "last row"),
        ("not a matrix", "expected numbers"),
    ],
)
def test_bad_matrices_are_refused_with_reason(matrix, message):
    with pytest.raises(TransformError, match=message):
        as_transform(matrix, "scanner_from_camera")


def test_non_rigid_matrices_are_named():
    scaled = np.diag([1.0, 1.0, 1.1, 1.0])
    with pytest.raises(TransformError, match=r"X is not a rigid transform: .*not orthonormal.*scaling or shear"):
        as_rigid(scaled, "X")
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    with pytest.raises(TransformError, match="reflection"):
        as_rigid(mirror, "X")
    batch = np.stack([np.eye(4), np.eye(4), scaled])
    with pytest.raises(TransformError, match=r"entry \(2,\)"):
        as_rigid(batch, "poses")
    with pytest.raises(TransformError, match="reflection"):
        orthonormalize(mirror)
    with pytest.raises(TransformError, match="singular"):
        invert(np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(TransformError, match="not a rigid"):
        invert_rigid(scaled)


def test_errors_are_value_errors_for_library_users():
    assert issubclass(TransformError, MrMotionError)
    assert issubclass(MrMotionError, ValueError)


def test_procrustes_rotation_recovers_a_rotation_and_stays_proper():
    from scipy.spatial.transform import Rotation

    from mrmotion.geometry.transforms import procrustes_rotation

    rng = np.random.default_rng()
    rotation = Rotation.random(random_state=rng).as_matrix()
    b = rng.normal(size=(3, 7))
    assert np.allclose(procrustes_rotation((rotation @ b) @ b.T), rotation, atol=1e-10)
    mirrored = np.diag([1.0, 1.0, -1.0]) @ b  # best orthogonal fit is a reflection: the proper one is returned
    result = procrustes_rotation(mirrored @ b.T)
    assert np.allclose(result @ result.T, np.eye(3), atol=1e-12) and np.linalg.det(result) == pytest.approx(1)
