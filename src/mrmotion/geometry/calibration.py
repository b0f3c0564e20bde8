"""Cross-calibration of an external tracker to the scanner from paired poses (hand–eye, ``AX = XB``).

What comes in: N pose pairs taken at the same instants,

* ``camera_from_marker`` ``P(i)``, ``(N, 4, 4)``: the marker pose reported by the tracking camera (mm);
* ``scanner_from_object`` ``Q(i)``, ``(N, 4, 4)``: the object (head, phantom) pose in scanner coordinates (LPS mm),
  e.g. from registering navigator volumes.

Model (DESIGN.md §2, "The geometry, derived")::

    Q(i) = X · P(i) · M,     X = scanner_from_camera (unknown),  M = marker_from_object (fixed, unknown).

The relative motions ``A_ij = Q(j) Q(i)⁻¹`` (scanner frame) and ``B_ij = P(j) P(i)⁻¹`` (camera frame) satisfy
``A_ij X = X B_ij``, in which M has cancelled. Every pair ``i < j`` is used (N(N−1)/2 motions, unweighted), as
OpenCV's ``calibrateHandEye`` does. Three solvers:

* ``"park"``: Park & Martin 1994. Rotation: the rotation vectors obey ``log R_A = R_X log R_B``; R_X is the
  orthogonal Procrustes solution (SVD, det = +1 enforced). Translation: stacked linear least squares
  ``(R_A − I) t_X = R_X t_B − t_A``.
* ``"tsai"``: Tsai & Lenz 1989. Rotation from the modified Rodrigues vectors ``p = 2 sin(θ/2) n``:
  ``[p_A + p_B]× p' = p_B − p_A`` by least squares, ``p_X = 2 p' / √(1 + |p'|²)``; same translation step.
  (p' is infinite when X is an exact half-turn; the solver then re-solves in a frame turned by 90°.)
* ``"daniilidis"``: Daniilidis 1999, rotation and translation at once from the dual quaternions of A and B:
  a 6K×8 homogeneous system, the two right singular vectors of its smallest singular values, and the quadratic
  that makes the combination a unit dual quaternion.

Quaternion signs: a rotation has two quaternions ±q. Each A and B is taken with scalar part ≥ 0, which is the
consistent choice (A and B are conjugate, so their scalar parts are equal) except for rotations near 180°, where
noise can flip one of the pair. So after a first solve the sign of each A is aligned with ``q_X q_B q_X*`` and,
if any sign changed, the system is solved again. This also keeps the Park and Tsai rotation vectors consistent
near 180° (OpenCV does not do this; its results can differ there).

After X: ``M`` is the mean over i of ``(X P(i))⁻¹ Q(i)`` (chordal mean of the rotations, scipy
``Rotation.mean``; arithmetic mean of the translations), and the residuals compare ``Q(i)`` with ``X P(i) M``.

Identifiability: with rotations about one axis only, a translation of X along that axis (and more) cannot be
seen. The stacked rotation vectors of the B motions (radians, angle-weighted axes) must span at least two
dimensions: their second singular value must be ≥ :data:`MIN_AXIS_SPREAD` times the first, and the largest
relative rotation ≥ :data:`MIN_ROTATION_RAD`. These catch exact and near-exact degeneracy only; a calibration
from small, noisy rotations can pass and still be poor: check the residuals, and rotate the head well (tens of
degrees, about two axes) while calibrating.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.transform import Rotation

from mrmotion.errors import CalibrationError, TransformError
from mrmotion.geometry.parameters import rotation_distance, rotvec_from_transform, translation_distance
from mrmotion.geometry.transforms import FloatArray, as_rigid, invert_rigid, make_transform, procrustes_rotation

#: The available solvers, for ``calibrate(..., method=...)``.
METHODS = ("park", "tsai", "daniilidis")

#: Minimum ratio of the second to the first singular value of the stacked B rotation vectors.
MIN_AXIS_SPREAD = 1e-3

#: Below this largest relative rotation (radians) the poses are considered not to rotate at all.
MIN_ROTATION_RAD = 1e-6


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """Result of :func:`calibrate`.

    Attributes
    ----------
    scanner_from_camera : ndarray, shape (4, 4)
        X, maps tracking-camera coordinates to scanner coordinates (mm).
    marker_from_object : ndarray, shape (4, 4)
        M, the fixed offset from the object (head) frame to the tracked marker frame (mm).
    method : str
        The solver used, one of :data:`METHODS`.
    residual_rotation_deg : ndarray, shape (N,)
        Per pose pair, the angle (degrees) between the rotations of ``Q(i)`` and ``X P(i) M``.
    residual_translation_mm : ndarray, shape (N,)
        Per pose pair, the distance (mm) between the translations of ``Q(i)`` and ``X P(i) M``.
    """

    scanner_from_camera: FloatArray
    marker_from_object: FloatArray
    method: str
    residual_rotation_deg: FloatArray
    residual_translation_mm: FloatArray


def calibrate(camera_from_marker: ArrayLike, scanner_from_object: ArrayLike, method: str = "park") -> CalibrationResult:
    """Estimate ``scanner_from_camera`` X and ``marker_from_object`` M from paired poses ``Q(i) = X P(i) M``.

    Parameters
    ----------
    camera_from_marker : array_like, shape (N, 4, 4)
        Tracker poses P(i): marker frame → camera frame, rigid, translations in mm.
    scanner_from_object : array_like, shape (N, 4, 4)
        Object poses Q(i) at the same instants: object frame → scanner frame (LPS), rigid, mm.
    method : {"park", "tsai", "daniilidis"}
        Solver for ``A X = X B`` (see the module docstring). All pairs i < j are used.

    Returns
    -------
    CalibrationResult
        X, M, the method and the per-pose residuals (degrees, mm).

    Raises
    ------
    TransformError
        A pose is not a (N, 4, 4) stack of finite rigid transforms (the message names the entry).
    CalibrationError
        Unknown method, different N in the two inputs, fewer than 3 pairs, or motion that does not determine X
        (no rotation, or rotations about a single axis).
    """
    if method not in METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")
    poses_p = _pose_stack(camera_from_marker, "camera_from_marker")
    poses_q = _pose_stack(scanner_from_object, "scanner_from_object")
    if poses_p.shape[0] != poses_q.shape[0]:
        raise CalibrationError(
            f"camera_from_marker has {poses_p.shape[0]} poses but scanner_from_object has {poses_q.shape[0]}: "
            "they must be paired, one of each per time point"
        )
    count = poses_p.shape[0]
    if count < 3:
        raise CalibrationError(f"hand-eye calibration needs at least 3 pose pairs, got {count}")

    first, second = np.triu_indices(count, k=1)
    motion_a = poses_q[second] @ invert_rigid(poses_q[first], check=False)
    motion_b = poses_p[second] @ invert_rigid(poses_p[first], check=False)
    _check_identifiable(motion_b)

    quat_a = _quaternions(motion_a[:, :3, :3])
    quat_b = _quaternions(motion_b[:, :3, :3])
    solve = _SOLVERS[method]
    scanner_from_camera = solve(motion_a, motion_b, quat_a, quat_b)
    quat_x = _quaternions(scanner_from_camera[None, :3, :3])[0]
    predicted = _qmul(_qmul(quat_x, quat_b), _qconj(quat_x))
    flip = np.sum(predicted * quat_a, axis=-1) < 0
    if np.any(flip):
        quat_a = np.where(flip[:, None], -quat_a, quat_a)
        scanner_from_camera = solve(motion_a, motion_b, quat_a, quat_b)

    marker_from_object, rotation_deg, translation_mm = _offset_and_residuals(scanner_from_camera, poses_p, poses_q)
    return CalibrationResult(
        scanner_from_camera=_frozen(scanner_from_camera),
        marker_from_object=_frozen(marker_from_object),
        method=method,
        residual_rotation_deg=_frozen(rotation_deg),
        residual_translation_mm=_frozen(translation_mm),
    )


# --- input checks ---------------------------------------------------------------------------------------------


def _pose_stack(poses: ArrayLike, name: str) -> FloatArray:
    """Validate an ``(N, 4, 4)`` stack of rigid transforms, naming the first bad entry as ``name[i]``."""
    try:
        array = np.asarray(poses, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TransformError(f"{name}: expected an (N, 4, 4) array of numbers ({error})") from None
    if array.ndim != 3 or array.shape[1:] != (4, 4):
        raise TransformError(f"{name}: expected shape (N, 4, 4), one rigid transform per pose, got {array.shape}")
    for index, pose in enumerate(array):
        as_rigid(pose, f"{name}[{index}]")
    return array


def _check_identifiable(motion_b: FloatArray) -> None:
    """Raise unless the relative rotations of the tracker span at least two axes (see module docstring)."""
    rotvecs, _ = rotvec_from_transform(motion_b)
    largest = float(np.max(np.linalg.norm(rotvecs, axis=-1)))
    advice = "the poses need rotations about at least two different axes"
    if largest < MIN_ROTATION_RAD:
        raise CalibrationError(
            "calibration is not identifiable: camera_from_marker poses do not rotate (largest relative "
            f"rotation {np.degrees(largest):.2g} deg); {advice}"
        )
    singular = np.linalg.svd(rotvecs, compute_uv=False)
    spread = singular[1] / singular[0]
    if spread < MIN_AXIS_SPREAD:
        raise CalibrationError(
            "calibration is not identifiable: all relative rotations of camera_from_marker are about one axis "
            f"(axis spread {spread:.2g} < {MIN_AXIS_SPREAD:g}); {advice}"
        )


# --- quaternions (scalar-FIRST internally: w, x, y, z; scipy is scalar-last) ------------------------------------


def _quaternions(rotations: FloatArray) -> FloatArray:
    """Unit quaternions ``(K, 4)`` as (w, x, y, z) with w ≥ 0 of rotation matrices ``(K, 3, 3)``."""
    xyzw = Rotation.from_matrix(rotations).as_quat()
    wxyz = xyzw[:, [3, 0, 1, 2]]
    return np.where(wxyz[:, :1] < 0, -wxyz, wxyz)


def _qmul(p: FloatArray, q: FloatArray) -> FloatArray:
    """Hamilton product of scalar-first quaternions, broadcasting over leading dimensions."""
    pw, pv = p[..., :1], p[..., 1:]
    qw, qv = q[..., :1], q[..., 1:]
    scalar = pw * qw - np.sum(pv * qv, axis=-1, keepdims=True)
    vector = pw * qv + qw * pv + np.cross(pv, qv)
    return np.concatenate([scalar, vector], axis=-1)


def _qconj(q: FloatArray) -> FloatArray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def _rotation_from_quaternion(q: FloatArray) -> FloatArray:
    return Rotation.from_quat(q[[1, 2, 3, 0]]).as_matrix()


def _skew(vectors: FloatArray) -> FloatArray:
    """Cross-product matrices ``[v]×`` of ``(K, 3)`` vectors, shape ``(K, 3, 3)``."""
    out = np.zeros((*vectors.shape[:-1], 3, 3))
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    out[..., 0, 1], out[..., 0, 2] = -z, y
    out[..., 1, 0], out[..., 1, 2] = z, -x
    out[..., 2, 0], out[..., 2, 1] = -y, x
    return out


# --- solvers: (A, B, quaternions of A and B with aligned signs) -> X ---------------------------------------------


def _translation_least_squares(motion_a: FloatArray, motion_b: FloatArray, rotation_x: FloatArray) -> FloatArray:
    """Solve the stacked ``(R_A − I) t_X = R_X t_B − t_A`` by least squares; returns t_X (mm)."""
    lhs = (motion_a[:, :3, :3] - np.eye(3)).reshape(-1, 3)
    rhs = (motion_b[:, :3, 3] @ rotation_x.T - motion_a[:, :3, 3]).reshape(-1)
    return np.linalg.lstsq(lhs, rhs, rcond=None)[0]


def _log_map(q: FloatArray) -> FloatArray:
    """Rotation vectors (radians) of scalar-first quaternions, following the sign of q (angles up to 2π)."""
    norm = np.linalg.norm(q[:, 1:], axis=-1)
    angle = 2.0 * np.arctan2(norm, q[:, 0])
    small = norm < 1e-12
    scale = np.where(small, 2.0 / np.where(small, q[:, 0], 1.0), angle / np.where(small, 1.0, norm))
    return scale[:, None] * q[:, 1:]


def _solve_park(motion_a: FloatArray, motion_b: FloatArray, quat_a: FloatArray, quat_b: FloatArray) -> FloatArray:
    alpha, beta = _log_map(quat_a), _log_map(quat_b)
    rotation = procrustes_rotation(alpha.T @ beta)  # maximises Σ αᵀ R β = tr(Rᵀ H) with H = Σ α βᵀ
    return make_transform(rotation, _translation_least_squares(motion_a, motion_b, rotation))


def _solve_tsai(motion_a: FloatArray, motion_b: FloatArray, quat_a: FloatArray, quat_b: FloatArray) -> FloatArray:
    p_a = 2.0 * quat_a[:, 1:]
    # p' = tan(θ_X/2) n_X is infinite when X rotates by exactly 180° (a camera mounted upside down, in
    # synthetic data): the system is then singular. Solve instead for X' = X Cᵀ with a known 90° turn C about
    # x, y or z, using B' = C B Cᵀ (A X' = X' B', vector parts C p_B), and R_X = R_X' C. X' is again a
    # half-turn only if the turn axis is perpendicular to X's axis, which cannot hold for all three.
    for turn in (np.eye(3), *Rotation.from_rotvec(np.eye(3) * np.pi / 2).as_matrix()):
        p_b = 2.0 * quat_b[:, 1:] @ turn.T
        lhs = _skew(p_a + p_b).reshape(-1, 3)
        p_prime, _, _, singular = np.linalg.lstsq(lhs, (p_b - p_a).reshape(-1), rcond=None)
        if singular[-1] > 1e-8 * singular[0]:
            break
    # p' = tan(θ/2) n  ->  unit quaternion (cos θ/2, sin θ/2 n).
    quat_x = np.concatenate([[1.0], p_prime]) / np.sqrt(1.0 + p_prime @ p_prime)
    rotation = _rotation_from_quaternion(quat_x) @ turn
    return make_transform(rotation, _translation_least_squares(motion_a, motion_b, rotation))


def _solve_daniilidis(motion_a: FloatArray, motion_b: FloatArray, quat_a: FloatArray, quat_b: FloatArray) -> FloatArray:
    def dual(quat: FloatArray, translation: FloatArray) -> FloatArray:
        pure = np.concatenate([np.zeros((len(translation), 1)), translation], axis=-1)
        return 0.5 * _qmul(pure, quat)

    dual_a, dual_b = dual(quat_a, motion_a[:, :3, 3]), dual(quat_b, motion_b[:, :3, 3])
    a, b, a_d, b_d = quat_a[:, 1:], quat_b[:, 1:], dual_a[:, 1:], dual_b[:, 1:]
    # a q = q b (real) and a q' + a' q = q b' + q' b (dual), vector parts, unknowns (q, q') scalar-first.
    system = np.zeros((len(a), 6, 8))
    system[:, :3, 0], system[:, :3, 1:4] = a - b, _skew(a + b)
    system[:, 3:, 0], system[:, 3:, 1:4] = a_d - b_d, _skew(a_d + b_d)
    system[:, 3:, 4], system[:, 3:, 5:8] = a - b, _skew(a + b)
    _, _, vt = np.linalg.svd(system.reshape(-1, 8), full_matrices=False)
    basis = vt[-2:].T  # (8, 2): v7, v8
    real, dual_part = basis[:4], basis[4:]
    # Unit real part: λᵀ G λ = 1; orthogonal dual part: λᵀ C λ = 0 (C symmetric, indefinite in theory).
    gram = real.T @ real
    cross = 0.5 * (real.T @ dual_part + dual_part.T @ real)
    values, vectors = np.linalg.eigh(cross)
    if values[0] < 0 < values[1]:
        candidates = [
            np.sqrt(values[1]) * vectors[:, 0] + sign * np.sqrt(-values[0]) * vectors[:, 1] for sign in (1.0, -1.0)
        ]
    else:  # noise made C definite: take the direction where it is smallest
        candidates = [vectors[:, int(np.argmin(np.abs(values)))]]
    candidates = [c / np.linalg.norm(c) for c in candidates]
    best = max(candidates, key=lambda c: float(c @ gram @ c))
    weights = best / np.sqrt(best @ gram @ best)
    quat_x, quat_x_dual = real @ weights, dual_part @ weights
    quat_x = quat_x / np.linalg.norm(quat_x)
    quat_x_dual = quat_x_dual - (quat_x @ quat_x_dual) * quat_x
    translation = 2.0 * _qmul(quat_x_dual, _qconj(quat_x))[1:]
    return make_transform(_rotation_from_quaternion(quat_x), translation)


_SOLVERS = {"park": _solve_park, "tsai": _solve_tsai, "daniilidis": _solve_daniilidis}


# --- offset and residuals ------------------------------------------------------------------------------------


def _offset_and_residuals(
    scanner_from_camera: FloatArray, poses_p: FloatArray, poses_q: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """M as the mean of ``(X P(i))⁻¹ Q(i)``, and the rotation (deg) / translation (mm) residuals of Q vs X P M."""
    scanner_from_marker = scanner_from_camera @ poses_p
    offsets = invert_rigid(scanner_from_marker, check=False) @ poses_q
    mean_rotation = Rotation.from_matrix(offsets[:, :3, :3]).mean().as_matrix()
    marker_from_object = make_transform(mean_rotation, offsets[:, :3, 3].mean(axis=0))
    predicted = scanner_from_marker @ marker_from_object
    rotation_deg = np.degrees(rotation_distance(predicted, poses_q))
    translation_mm = translation_distance(predicted, poses_q)
    return marker_from_object, rotation_deg, translation_mm


def _frozen(array: FloatArray) -> FloatArray:
    out = np.array(array, dtype=np.float64)
    out.setflags(write=False)
    return out
