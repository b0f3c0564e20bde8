"""Coarse coil weightings: the local interpolation and its independence from the box it is evaluated on."""

import numpy as np
import pytest

from mrmotion.geometry.parameters import transform_from_euler
from mrmotion.geometry.transforms import make_transform
from mrmotion.physics.coil_weighting import (
    NODES_BEYOND,
    _interpolation_matrix,
    cluster_states,
    coarse_axes,
    coarse_weights,
    coil_maps_on_grid,
    upsample,
)
from mrmotion.physics.coils import loop_coils
from mrmotion.physics.encoding import ImageGrid


def test_local_interpolation_reproduces_polynomials_up_to_degree_five():
    rng = np.random.default_rng()
    size, h = int(rng.integers(30, 90)), rng.uniform(2.5, 9.0)
    nodes = np.arange(-NODES_BEYOND, int(np.ceil((size - 1) / h)) + NODES_BEYOND + 1) * h
    matrix = _interpolation_matrix(size, nodes)
    x = np.arange(size, dtype=np.float64)
    for degree in range(6):
        coefficients = rng.normal(size=degree + 1)
        np.testing.assert_allclose(
            matrix @ np.polyval(coefficients, nodes / size), np.polyval(coefficients, x / size), atol=1e-10
        )
    degree_six = matrix @ (nodes / size) ** 6 - (x / size) ** 6
    assert np.abs(degree_six).max() > 1e-12  # not a global interpolant in disguise
    assert np.all(np.count_nonzero(matrix, axis=1) <= 6)


def test_nodes_that_do_not_reach_beyond_the_grid_are_refused():
    with pytest.raises(ValueError, match="reach"):
        _interpolation_matrix(40, np.linspace(0, 39, 6))
    with pytest.raises(ValueError, match="equally spaced"):
        _interpolation_matrix(40, np.array([-20.0, -10.0, 0.0, 5.0, 10.0, 20.0, 40.0, 50.0, 60.0]))


def test_a_box_interpolated_from_its_own_nodes_equals_the_whole_grid_restricted():
    """Sub-boxes use the nodes of the whole grid's lattice they depend on, and agree with it to rounding: so a
    simulation on the object's box and a reconstruction on the whole grid model the coils the same way."""
    rng = np.random.default_rng()
    shape = (int(rng.integers(40, 60)), int(rng.integers(40, 60)), int(rng.integers(3, 30)))
    affine = make_transform(np.diag(rng.uniform(1.0, 3.0, 3)), -np.array(shape) // 2 * 2.0)
    grid = ImageGrid(shape, affine)
    coils = loop_coils(4, head_radius_mm=150.0, rings=1)
    whole = coil_maps_on_grid(coils, grid, 8.0)
    starts = [int(rng.integers(0, n // 2)) for n in shape]
    box = tuple(slice(start, int(rng.integers(start + 1, n + 1))) for start, n in zip(starts, shape, strict=True))
    box_grid = ImageGrid(
        tuple(part.stop - part.start for part in box), affine @ make_transform(np.eye(3), [p.start for p in box])
    )
    axes = coarse_axes(grid, 8.0, box)
    values, _ = coarse_weights(coils, box_grid, np.eye(4)[None], 8.0, axes)
    part = upsample(values[0].reshape(coils.count, *(len(a) for a in axes)), box_grid, axes)
    np.testing.assert_allclose(part, whole[(slice(None), *box)], atol=1e-12 * np.abs(whole).max())
    # and both are close to the coils themselves (8-mm nodes)
    index = np.argwhere(np.ones(box_grid.shape, dtype=bool))[::11]
    truth = coils.sensitivities(box_grid.positions(index))
    assert np.abs(part[:, index[:, 0], index[:, 1], index[:, 2]] - truth).max() < 1e-3 * np.abs(truth).max()


def greedy_clusters_one_state_at_a_time(grid, transforms, tol_mm):
    """The clustering rule of cluster_states, state by state (the slow reference)."""
    moved = np.einsum("tij,pj->tpi", transforms[:, :3, :3], grid.corners()) + transforms[:, None, :3, 3]
    labels, representatives, last = [], [], -1
    for state in range(len(transforms)):
        distance = [np.max(np.linalg.norm(moved[state] - moved[r], axis=-1)) for r in representatives]
        if last >= 0 and distance[last] <= tol_mm:
            labels.append(last)
        elif distance and min(distance) <= tol_mm:
            last = int(np.argmin(distance))
            labels.append(last)
        else:
            representatives.append(state)
            last = len(representatives) - 1
            labels.append(last)
    return np.array(labels), np.array(representatives)


@pytest.mark.parametrize("motion", ["drift", "jitter", "back and forth"])
def test_clusters_found_a_block_of_states_at_a_time_equal_the_state_by_state_rule(motion):
    rng = np.random.default_rng()
    grid = ImageGrid((20, 18, 16), make_transform(np.diag([4.0, 4.0, 4.0]), [-40.0, -36.0, -32.0]))
    states = int(rng.integers(150, 400))
    if motion == "drift":  # long runs in one cluster, runs longer than a block
        steps = rng.normal(size=(states, 6)) * 0.05
    elif motion == "jitter":  # a new cluster or a jump back at almost every state
        steps = rng.normal(size=(states, 6)) * 2.0
    else:  # the head returns to earlier poses
        steps = np.sign(np.sin(np.arange(states) / 7.0))[:, None] * rng.uniform(0.2, 0.6, (states, 6))
    parameters = np.cumsum(steps, axis=0)
    transforms = transform_from_euler(parameters[:, :3], parameters[:, 3:])
    for tol in (0.5, 2.0, 6.0):
        labels, representatives = cluster_states(grid, transforms, tol)
        expected_labels, expected_representatives = greedy_clusters_one_state_at_a_time(grid, transforms, tol)
        np.testing.assert_array_equal(labels, expected_labels)
        np.testing.assert_array_equal(representatives, expected_representatives)
