"""Sampling builders: Cartesian coverage and orders, timing, radial geometry, and input validation."""

from __future__ import annotations

import numpy as np
import pytest

from mrmotion.errors import MrMotionError
from mrmotion.physics.sampling import (
    CARTESIAN_ORDERS,
    GOLDEN_ANGLE_RAD,
    RADIAL_ORDERS,
    Sampling,
    cartesian,
    grid_k,
    radial,
)

MATRICES = [(6, 8, 4), (5, 7, 3)]  # even and odd sizes
VOXEL = (1.0, 1.5, 2.0)


def _build(matrix: tuple[int, int, int], mode: str, order: str) -> Sampling:
    shots = 3 if order == "interleaved" else 1
    return cartesian(matrix, VOXEL, mode=mode, order=order, shots=shots, seed=4)


def _lines(sampling: Sampling) -> np.ndarray:
    """(phase, third) index of every readout line in acquisition order (readouts are contiguous)."""
    n_read = int(sampling.matrix[0])
    grid = sampling.grid_index.reshape(-1, n_read, 3)
    assert np.all(grid[:, :, 0] == np.arange(n_read))  # each readout holds the whole read axis in order
    assert np.all(grid[:, :, 1:] == grid[:, :1, 1:])
    return grid[:, 0, 1:]


@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("mode", ["3d", "2d"])
@pytest.mark.parametrize("order", CARTESIAN_ORDERS)
def test_cartesian_samples_every_grid_point_once(matrix, mode, order):
    s = _build(matrix, mode, order)
    assert len(s) == np.prod(matrix)
    assert s.grid_index.dtype == np.int64 and s.shot.dtype == np.int64 and s.slice_index.dtype == np.int64
    flat = np.ravel_multi_index(s.grid_index.T, matrix)
    assert np.array_equal(np.sort(flat), np.arange(np.prod(matrix)))
    expected = grid_k(s.grid_index, matrix, VOXEL)
    if mode == "2d":
        expected[:, 2] = 0.0
        assert np.array_equal(s.slice_index, s.grid_index[:, 2])
    else:
        assert np.all(s.slice_index == 0)
    np.testing.assert_allclose(s.k_logical, expected, rtol=0, atol=1e-12)
    assert np.all(np.diff(s.time_s) >= 0) and s.time_s[0] == 0.0
    centre = np.all(s.grid_index == np.asarray(matrix) // 2, axis=1)
    if mode == "3d":
        assert centre.sum() == 1 and np.all(s.k_logical[centre] == 0.0)
    k_zero = np.all(s.k_logical[:, :2] == 0.0, axis=1)
    assert np.array_equal(k_zero, np.all(s.grid_index[:, :2] == np.asarray(matrix[:2]) // 2, axis=1))


def test_all_slices_share_one_line_order_and_slices_are_interleaved():
    s = cartesian((4, 6, 5), VOXEL, mode="2d", order="random", seed=1)
    lines = _lines(s)
    per_slice = [lines[s.slice_index[::4] == z, 0] for z in range(5)]
    assert all(np.array_equal(p, per_slice[0]) for p in per_slice)
    first_tr = s.slice_index[::4][s.shot[::4] == 0]
    assert first_tr.tolist() == [0, 2, 4, 1, 3]
    tr = 5 * 0.01  # default: 10 ms per slice
    starts = s.time_s[::4][s.shot[::4] == 0]
    np.testing.assert_allclose(starts, np.arange(5) * tr / 5)


def test_linear_order_kz_outer_ky_inner_and_default_timing():
    s = cartesian((4, 3, 2), VOXEL, order="linear", dwell_s=1e-5)
    assert _lines(s).tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]]
    np.testing.assert_allclose(s.time_s[:5], [0.0, 1e-5, 2e-5, 3e-5, 0.01])
    assert np.array_equal(s.shot[::4], np.arange(6))


@pytest.mark.parametrize("matrix", MATRICES)
def test_centric_starts_at_centre_and_increases_in_k(matrix):
    for mode in ("2d", "3d"):
        s = cartesian(matrix, VOXEL, mode=mode, order="centric")
        lines = _lines(s)
        assert lines[0, 0] == matrix[1] // 2
        if mode == "3d":
            assert lines[0, 1] == matrix[2] // 2
            k = s.k_logical[:: matrix[0], 1:]
        else:
            k = s.k_logical[:: matrix[0], 1:][s.slice_index[:: matrix[0]] == 0]
        assert np.all(np.diff(np.linalg.norm(k, axis=1)) >= -1e-12)


@pytest.mark.parametrize("mode", ["3d", "2d"])
@pytest.mark.parametrize("shots", [1, 3, 4])
def test_interleaved_shots_hold_every_shots_th_line(mode, shots):
    matrix = (4, 10, 3)
    s = cartesian(matrix, VOXEL, mode=mode, order="interleaved", shots=shots, echo_spacing_s=0.004, tr_s=3.0)
    n_lines = 10 * (3 if mode == "3d" else 1)
    assert np.unique(s.shot).tolist() == list(range(shots))
    head = s.slice_index[::4] == 0 if mode == "2d" else np.ones(len(s) // 4, bool)
    linear = _lines(s)[:, 0] + (10 * _lines(s)[:, 1] if mode == "3d" else 0)
    for shot in range(shots):
        mine = (s.shot[::4] == shot) & head
        assert linear[mine].tolist() == list(range(shot, n_lines, shots))
        starts = s.time_s[::4][mine]
        np.testing.assert_allclose(starts - starts[0], 0.004 * np.arange(starts.size))
        np.testing.assert_allclose(starts[0], 3.0 * shot)
    assert np.all(np.diff(s.time_s) >= 0)


def test_interleaved_default_tr_is_two_seconds_or_longer():
    s = cartesian((4, 8, 2), VOXEL, order="interleaved", shots=2)
    np.testing.assert_allclose(s.time_s[s.shot == 1].min(), 2.0)
    s = cartesian((4, 64, 50), VOXEL, mode="2d", order="interleaved", shots=2)  # 50 slices × 32 × 5 ms = 8 s
    assert s.time_s[s.shot == 1].min() == pytest.approx(50 * (31 * 0.005 + 4 * 5e-6))


def test_random_order_is_reproducible_and_seeded():
    a = cartesian((2, 16, 4), VOXEL, order="random", seed=3)
    b = cartesian((2, 16, 4), VOXEL, order="random", seed=3)
    c = cartesian((2, 16, 4), VOXEL, order="random", seed=5)
    assert np.array_equal(a.grid_index, b.grid_index) and np.array_equal(a.time_s, b.time_s)
    assert not np.array_equal(a.grid_index, c.grid_index)


def _spoke_k(s: Sampling) -> np.ndarray:
    return s.k_logical.reshape(-1, int(s.matrix[0]), 3)


@pytest.mark.parametrize("n_read", [8, 9])
@pytest.mark.parametrize("order", RADIAL_ORDERS)
def test_radial_2d_spokes_through_centre_within_nyquist(n_read, order):
    s = radial((n_read, n_read, 2), (2.0, 2.0, 3.0), order=order)
    spokes = int(np.ceil(np.pi / 2 * n_read))
    assert len(s) == spokes * n_read * 2 and s.grid_index is None
    k = _spoke_k(s)
    assert np.all(k[:, n_read // 2] == 0.0) and np.all(s.k_logical[:, 2] == 0.0)
    assert np.max(np.linalg.norm(s.k_logical, axis=1)) <= np.pi / 2.0 + 1e-12
    np.testing.assert_allclose(np.linalg.norm(k[:, 0], axis=1), 2 * np.pi * (n_read // 2) / n_read / 2.0)
    direction = k[:, -1] / np.linalg.norm(k[:, -1], axis=1, keepdims=True)
    assert np.allclose(np.cross(k, direction[:, None, :]), 0.0, atol=1e-12)  # collinear spokes
    assert np.all(np.diff(s.time_s) >= 0) and np.array_equal(np.unique(s.slice_index), [0, 1])
    first_slice = s.slice_index[::n_read] == 0
    assert np.array_equal(k[first_slice], k[~first_slice])  # every slice acquires the same spokes


def test_radial_golden_angle_increments_and_uniform_angles():
    s = radial((16, 16, 1), (1.0, 1.0, 1.0), spokes=40, order="golden")
    last = _spoke_k(s)[:, -1]
    angle = np.arctan2(last[:, 1], last[:, 0])
    assert np.all((angle >= 0) & (angle < np.pi))
    np.testing.assert_allclose(np.degrees(GOLDEN_ANGLE_RAD), 111.246, atol=1e-3)
    np.testing.assert_allclose(np.mod(np.diff(angle) - GOLDEN_ANGLE_RAD + 1, np.pi) - 1, 0.0, atol=1e-9)
    u = _spoke_k(radial((16, 16, 1), (1.0, 1.0, 1.0), spokes=40, order="uniform"))[:, -1]
    np.testing.assert_allclose(np.arctan2(u[:, 1], u[:, 0]), np.arange(40) * np.pi / 40, atol=1e-12)
    assert np.all(np.diff(s.time_s[::16]) == pytest.approx(0.01))


@pytest.mark.parametrize("order", RADIAL_ORDERS)
def test_radial_3d_directions_cover_the_sphere_uniformly(order):
    s = radial((4, 4, 4), (1.0, 1.0, 1.0), mode="3d", spokes=4000, order=order, seed=2)
    k = _spoke_k(s)
    assert np.all(k[:, 4 // 2] == 0.0) and np.all(s.slice_index == 0)
    assert np.max(np.linalg.norm(s.k_logical, axis=1)) <= np.pi + 1e-12
    d = -k[:, 0] / np.linalg.norm(k[:, 0], axis=1, keepdims=True)  # a spoke starts at −k_max along −d
    assert np.all(d[:, 2] >= 0)  # hemisphere: a full spoke covers ±d
    assert np.all(np.abs(d[:, :2].mean(axis=0)) < 0.05) and abs(d[:, 2].mean() - 0.5) < 0.02
    np.testing.assert_allclose(d.T @ d / len(d), np.eye(3) / 3, atol=0.02)  # axially uniform
    if order != "uniform":  # golden and random orders also cover the sphere early in the scan
        np.testing.assert_allclose(d[:200].T @ d[:200] / 200, np.eye(3) / 3, atol=0.06)


def test_radial_3d_default_spokes_and_anisotropic_voxels():
    s = radial((6, 6, 6), (1.0, 2.0, 4.0), mode="3d")
    assert len(s) == int(np.ceil(np.pi / 2 * 36)) * 6
    bound = np.pi / np.array([1.0, 2.0, 4.0])
    assert np.all(np.abs(s.k_logical) <= bound + 1e-12)


def test_radial_random_is_seeded():
    a, b = radial((8, 8, 1), (1, 1, 1), order="random", seed=1), radial((8, 8, 1), (1, 1, 1), order="random", seed=1)
    c = radial((8, 8, 1), (1, 1, 1), order="random", seed=2)
    assert np.array_equal(a.k_logical, b.k_logical) and not np.array_equal(a.k_logical, c.k_logical)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"matrix": (4, 4)}, r"matrix must be 3 integers .* got \(4, 4\)"),
        ({"matrix": (4, 0, 4)}, r"matrix must be .*>= 1, got \(4, 0, 4\)"),
        ({"matrix": (4.0, 4.0, 4.0)}, r"matrix must be 3 integers"),
        ({"voxel_size_mm": (1.0, 0.0, 1.0)}, r"voxel_size_mm must be 3 finite sizes > 0 .* got \(1.0, 0.0, 1.0\)"),
        ({"voxel_size_mm": (1.0, float("nan"), 1.0)}, r"voxel_size_mm must be"),
        ({"mode": "4d"}, r"mode must be one of \('2d', '3d'\), got '4d'"),
        ({"order": "spiral"}, r"order must be one of \('linear', 'centric', 'interleaved', 'random'\), got 'spiral'"),
        ({"order": "interleaved", "shots": 0}, r"shots must be an integer >= 1 and <= 16, got 0"),
        ({"order": "interleaved", "shots": 17}, r"shots must be an integer >= 1 and <= 16, got 17"),
        ({"order": "interleaved", "shots": 2.0}, r"shots must be an integer"),
        ({"order": "linear", "shots": 2}, r"shots must be 1 for order='linear'"),
        ({"tr_s": -1.0}, r"tr_s must be a finite time in s > 0, got -1.0"),
        ({"tr_s": float("inf")}, r"tr_s must be a finite time in s > 0, got inf"),
        ({"dwell_s": -1e-6}, r"dwell_s must be a finite time in s >= 0, got -1e-06"),
        ({"echo_spacing_s": float("nan")}, r"echo_spacing_s must be a finite time in s > 0, got nan"),
        ({"tr_s": 1e-5}, r"tr_s must be >= 2e-05 s to hold 1 slice visit"),
        ({"order": "interleaved", "shots": 2, "dwell_s": 2e-3}, r"echo_spacing_s must be >= the readout"),
        ({"order": "interleaved", "shots": 2, "tr_s": 0.01}, r"tr_s must be >= 0.03502 s"),
    ],
)
def test_cartesian_rejects_bad_input(kwargs, match):
    args = {"matrix": (4, 4, 4), "voxel_size_mm": (1.0, 1.0, 1.0)} | kwargs
    with pytest.raises(MrMotionError, match=r"^cartesian: " + match):
        cartesian(**args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"matrix": (4, 4, -1)}, r"matrix must be 3 integers"),
        ({"voxel_size_mm": (1.0, 1.0, -2.0)}, r"voxel_size_mm must be 3 finite sizes > 0"),
        ({"mode": "2D"}, r"mode must be one of \('2d', '3d'\), got '2D'"),
        ({"order": "linear"}, r"order must be one of \('golden', 'uniform', 'random'\), got 'linear'"),
        ({"spokes": 0}, r"spokes must be an integer >= 1, got 0"),
        ({"dwell_s": float("nan")}, r"dwell_s must be a finite time in s >= 0, got nan"),
        ({"tr_s": 0.0}, r"tr_s must be a finite time in s > 0, got 0.0"),
        ({"matrix": (4, 4, 8), "tr_s": 1e-4}, r"tr_s must be >= 0.00016 s to hold 8 slice visit"),
    ],
)
def test_radial_rejects_bad_input(kwargs, match):
    args = {"matrix": (4, 4, 4), "voxel_size_mm": (1.0, 1.0, 1.0)} | kwargs
    with pytest.raises(MrMotionError, match=r"^radial: " + match):
        radial(**args)


@pytest.mark.parametrize(("order", "where"), [("linear", 0.5), ("centric", 0.0)])
def test_centre_time_is_when_the_kspace_centre_is_sampled(order, where):
    sampling = cartesian((16, 32, 1), (1.0, 1.0, 1.0), mode="2d", order=order)
    at_centre = sampling.time_s[np.linalg.norm(sampling.k_logical, axis=1) == 0]
    assert sampling.centre_time_s == pytest.approx(at_centre.min())
    assert sampling.centre_time_s == pytest.approx(where * sampling.duration_s, abs=0.05 * sampling.duration_s)
