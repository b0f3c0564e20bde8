"""Motion estimated from the k-space data itself: joint estimation of the image and one rigid pose per motion state.

Aligned SENSE (Cordero-Grande et al., "Sensitivity encoding for aligned multishot magnetic resonance
reconstruction", IEEE TCI 2016): the data consistency ``‖E(θ) x − y‖²`` of the motion-aware SENSE model is minimised
over the image x and the motion θ in turn. For fixed θ, x is a CG-SENSE solve (:func:`~mrmotion.recon.sense.cg_sense`,
warm-started); for fixed x, the cost separates into one term per motion state (the samples acquired in that pose),
and each state's six (or, for one 2-D slice, three in-plane) parameters take a Levenberg–Marquardt step. The
Jacobian columns come from finite differences of the forward model with one parameter moved in every state at once:
one forward evaluation per parameter, however many states.

Conventions as in :mod:`mrmotion.physics.trajectory`: each state's transform moves the object away from where it is
in the reconstructed image, in scanner LPS mm about the isocentre. Only relative motion can be seen in the data: the
state that acquired the centre of k-space is the reference (the identity), so the image shows the object as it was
then. Parameters: a rotation vector about the object's centre (rad inside, degrees in the results) and a translation
(mm), both in the scanner frame. A single 2-D slice shows in-plane motion only (rotation about the slice normal,
translation along read and phase); through-plane motion is not estimated (it changes what the slice contains).

During the iterations the coils are taken to move with the head (``coil_model="moving"``: every sample sees the same
coil weighting, so EᴴE is a convolution and each step costs a few NUFFTs); the final image is reconstructed with the
estimated motion and the exact model (coils fixed in the scanner) by
:func:`~mrmotion.recon.reconstruct.sense_reconstruction`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import FloatArray
from mrmotion.physics.coil_weighting import coil_maps_on_grid
from mrmotion.physics.combine import coil_power
from mrmotion.physics.encoding import ImageGrid, MotionEncoding
from mrmotion.physics.sampling import Sampling
from mrmotion.physics.trajectory import MotionTrajectory
from mrmotion.recon.reconstruct import acquisition_grid, object_box, sense_reconstruction
from mrmotion.recon.sense import SenseResult, cg_sense, largest_eigenvalue

#: finite-difference steps of the Jacobian: rotation (rad, 0.003°) and translation (mm); the forward model is smooth
#: and the NUFFT accurate to ~1e-6, so the differences are exact to a few parts in 10⁴
ROTATION_STEP_RAD = 5e-5
TRANSLATION_STEP_MM = 5e-3

#: the resolutions (mm) of the coarse-to-fine stages, each using the samples with |k| ≤ π / resolution, before a last
#: stage with all samples (stages at or finer than the scan's own resolution are skipped): large motion is found
#: first on the low frequencies, where its cost has no local minima within a voxel's shift
STAGE_RESOLUTIONS_MM = (8.0, 4.0, 2.0)

#: the coil model of the coarse stages and of the last (all samples): coils moving with the head make each step a
#: few convolutions and widen the capture range; coils fixed in the scanner (exact) then remove the bias that
#: approximation leaves where the coils are close to the head (a third of the rotation lost in a loop-coil test)
COIL_MODELS = ("moving", "exact")

#: margin (mm) around the object seen in the uncorrected image that the estimation reconstructs (moved copies of the
#: object must fit in it)
BOX_MARGIN_MM = 16.0

#: Levenberg–Marquardt trials per outer iteration: a state whose step raises its cost tries again, 10× more damped
MAX_STEP_TRIALS = 4

#: at most this many shots are each a motion state by default: every state needs enough samples to fix its
#: parameters (a linear scan's shots are single phase lines)
MAX_SHOT_STATES = 64

EstimationProgress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class MotionEstimate:
    """Result of :func:`estimate_motion`.

    ``motion``: the estimated motion, one state per group of samples (scanner LPS mm, about the isocentre; the
    reference state is the identity). ``rotation_deg`` (S, 3) and ``translation_mm`` (S, 3): the same states as a
    rotation vector (degrees) about ``centre_mm`` and a translation, scanner frame. ``result``: the final
    reconstruction (exact coil model) with that motion, on ``grid``. ``residuals``: the relative data residual
    ``‖E(θ)x − y‖ / ‖y‖`` over the current stage's samples after every outer iteration. ``state_of_sample``: the
    state of every sample (acquisition order).
    """

    motion: MotionTrajectory
    rotation_deg: FloatArray
    translation_mm: FloatArray
    centre_mm: FloatArray
    reference_state: int
    result: SenseResult
    grid: ImageGrid
    residuals: list[float]
    state_of_sample: np.ndarray


def motion_states(sampling: Sampling, states: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Group the samples into motion states: ``(state of every sample, start time of every state (s))``.

    ``states=None``: one state per shot when the scan has 2 to :data:`MAX_SHOT_STATES` shots, each acquired in one
    stretch of time (a multi-shot scan), else 8 states of equal duration. A number: that many states of equal
    duration (for single-shot orders, or to follow motion within shots). States no sample falls in are dropped."""
    times = np.asarray(sampling.time_s, dtype=np.float64)
    shots = np.unique(sampling.shot)
    if states is None and 1 < len(shots) <= MAX_SHOT_STATES:
        first = np.array([times[sampling.shot == s].min() for s in shots])
        last = np.array([times[sampling.shot == s].max() for s in shots])
        order = np.argsort(first, kind="stable")
        if np.all(first[order][1:] > last[order][:-1]):  # each shot in its own stretch of time
            starts = first[order]
            return np.searchsorted(starts, times, side="right") - 1, starts
    states = 8 if states is None else states
    if isinstance(states, bool) or not isinstance(states, (int, np.integer)) or states < 1:
        raise MrMotionError(f"states must be a whole number ≥ 1 of motion states, got {states!r}")
    low, high = float(times.min()), float(times.max())
    edges = np.linspace(low, high, int(states) + 1)[:-1] if high > low else np.array([low])
    index = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, len(edges) - 1)
    used = np.unique(index)
    renumber = np.zeros(len(edges), dtype=np.int64)
    renumber[used] = np.arange(len(used))
    starts = np.array([times[index == u].min() for u in used])
    return renumber[index], starts


def _free_axes(scanner_from_logical: FloatArray) -> tuple[np.ndarray, np.ndarray]:
    """Unit rotation axes and translation directions (scanner frame) that one 2-D slice can show: the slice normal,
    and the read and phase directions (a volume would free all three of each)."""
    frame = np.asarray(scanner_from_logical, dtype=np.float64)[:3, :3]
    return frame[:, 2:3].T, frame[:, :2].T


def _transforms(parameters: np.ndarray, rotation_axes, translation_axes, centre: np.ndarray) -> np.ndarray:
    """(S, 4, 4) rigid transforms ``x ↦ R (x − c) + c + t`` from parameters (S, a + b): rotation about the axes (rad)
    then translation along the directions (mm)."""
    a = len(rotation_axes)
    rotvec = parameters[:, :a] @ rotation_axes
    translation = parameters[:, a:] @ translation_axes
    rotation = Rotation.from_rotvec(rotvec).as_matrix()
    out = np.tile(np.eye(4), (len(parameters), 1, 1))
    out[:, :3, :3] = rotation
    out[:, :3, 3] = centre - rotation @ centre + translation
    return out


def _reference_state(starts: np.ndarray, sampling: Sampling, reference_time_s: float | None) -> int:
    """The state holding at ``reference_time_s`` (scan time, s; None: the first state)."""
    if reference_time_s is None:
        return 0
    low, high = float(np.min(sampling.time_s)), float(np.max(sampling.time_s))
    if not np.isfinite(reference_time_s) or not low <= reference_time_s <= high:
        raise MrMotionError(f"reference time {reference_time_s} s is outside the scan's {low:g}–{high:g} s")
    return int(np.searchsorted(starts, reference_time_s, side="right") - 1)


def _check_centre_coverage(centre_states: np.ndarray, count: int) -> None:
    """Refuse states with no sample near the k-space centre (``centre_states``: the states of the samples of the
    coarsest stage): a state that only saw an outer band of k-space has no coarse image to align, and its pose is
    found poorly if at all (sequential orders; measured: the real slice in 8 linear bands kept 2–3.5° errors)."""
    blind = np.flatnonzero(np.bincount(centre_states, minlength=count) == 0)
    if len(blind):
        raise MrMotionError(
            f"motion states {', '.join(str(int(s)) for s in blind)} of {count} hold no samples near the k-space "
            "centre, so their motion cannot be estimated from this scan (sequential sampling orders give each state "
            "one band of k-space); estimation needs every state to sample the centre, as interleaved multi-shot "
            "scans do: use fewer --states, or give the motion (--motion)"
        )


def _checked(data: np.ndarray, sampling: Sampling) -> np.ndarray:
    samples = len(sampling.k_logical)
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != samples or data.shape[0] == 0:
        raise MrMotionError(f"k-space data: expected (coils, {samples}) samples, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise MrMotionError("k-space data contain NaN or infinite values")
    if not np.any(data):
        raise MrMotionError("k-space data are all zero: no motion to estimate")
    if sampling.matrix[2] != 1:
        raise MrMotionError(
            "motion estimation from the data supports single 2-D slices so far (in-plane motion); this scan has "
            f"{sampling.matrix[2]} slices or partitions: give the motion (--motion) instead"
        )
    return data


def estimate_motion(
    data: np.ndarray,
    sampling: Sampling,
    scanner_from_logical: FloatArray,
    coils,
    states: int | None = None,
    iterations: int = 24,
    image_iterations: int = 4,
    regularization: float = 1e-4,
    final_iterations: int = 15,
    reference_time_s: float | None = None,
    progress: EstimationProgress | None = None,
) -> MotionEstimate:
    """Estimate rigid motion (one pose per state, :func:`motion_states`) and the image from multi-coil ``data``.

    ``iterations`` outer iterations (image step, then one Levenberg–Marquardt step of every state's pose), spread over
    the coarse-to-fine stages (:data:`STAGE_RESOLUTIONS_MM`); ``image_iterations`` CG iterations per image step. The
    final image comes from :func:`~mrmotion.recon.reconstruct.sense_reconstruction` with the estimate
    (``final_iterations``, exact coils). ``reference_time_s``: the scan time (s) whose state is the identity, the
    pose the image shows (None: the first state). ``progress(iteration, of, relative residual of the stage's
    samples)`` after each outer iteration.
    """
    data = _checked(data, sampling)
    for name, value, least in (("iterations", iterations, 1), ("image_iterations", image_iterations, 1),
                               ("final_iterations", final_iterations, 0)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise MrMotionError(f"{name} must be a whole number ≥ {least}, got {value!r}")
    if not np.isfinite(regularization) or regularization < 0:
        raise MrMotionError(f"regularization must be a finite number ≥ 0, got {regularization}")
    state_of_sample, starts = motion_states(sampling, states)
    count = len(starts)
    grid = acquisition_grid(sampling, scanner_from_logical)
    full = tuple(slice(0, n) for n in grid.shape)
    box = object_box(data, sampling, grid, margin_mm=BOX_MARGIN_MM) if sampling.grid_index is not None else full
    region = grid.cropped(box)
    settings = {
        "origin_mm": np.asarray(scanner_from_logical)[:3, 3],
        "k_frame": np.asarray(scanner_from_logical)[:3, :3],
    }
    rot_axes, shift_axes = _free_axes(scanner_from_logical)
    steps = np.repeat([ROTATION_STEP_RAD, TRANSLATION_STEP_MM], [len(rot_axes), len(shift_axes)])
    parameters = np.zeros((count, len(steps)))
    radius = np.linalg.norm(sampling.k_logical, axis=1)
    reference = _reference_state(starts, sampling, reference_time_s)
    power = coil_power(coil_maps_on_grid(coils, region))
    weight = 1.0 / np.maximum(power, 0.05 * power.max())
    damping = np.full(count, 1e-3)
    stage = functools.partial(
        _stage_encoding, region=region, sampling=sampling, starts=starts, axes=(rot_axes, shift_axes), coils=coils,
        settings=settings,
    )  # fmt: skip
    # the band-limited image of the coarsest stage, from zero; rotations are about its centre of mass (scanner mm),
    # where they barely move the object
    stages = [np.pi / mm for mm in STAGE_RESOLUTIONS_MM if np.pi / mm < 0.99 * radius.max()] + [np.inf]
    within = radius <= stages[0]
    _check_centre_coverage(state_of_sample[within], count)
    still = stage(parameters, within=within, centre=np.zeros(3), coil_model=COIL_MODELS[0])
    if still.coils != data.shape[0]:
        raise MrMotionError(f"the data have {data.shape[0]} coils but the coil maps {still.coils}")
    lam = regularization * largest_eigenvalue(still)
    image = cg_sense(still, data[:, within], 2 * image_iterations, preconditioner=weight, lam=lam).image
    centre = _centre_of_mass(np.abs(image), region)
    residuals, done = [], 0
    # half the iterations for the last stage (exact coils, all samples), the rest shared by the coarse stages
    coarse = iterations // 2 if len(stages) > 1 else 0
    per_stage = [*np.diff(np.round(np.linspace(0, coarse, len(stages))).astype(int)), iterations - coarse]
    for limit, stage_iterations in zip(stages, per_stage, strict=True):
        if stage_iterations == 0:
            continue
        within = radius <= limit
        part, part_states = data[:, within], state_of_sample[within]
        model = COIL_MODELS[1] if np.isinf(limit) else COIL_MODELS[0]
        operator = functools.partial(stage, within=within, centre=centre, coil_model=model)
        current = operator(parameters)
        lam = regularization * largest_eigenvalue(current)
        for _ in range(stage_iterations):
            image = cg_sense(current, part, image_iterations, preconditioner=weight, initial=image, lam=lam).image
            parameters, cost = _pose_step(operator, current, parameters, steps, image, part, part_states, damping)
            current = operator(parameters)
            residuals.append(float(np.sqrt(cost.sum()) / np.linalg.norm(part)))
            done += 1
            if progress is not None:
                progress(done, iterations, residuals[-1])
    # every state moved freely (the image and all poses together are free to drift, which the alternation
    # would otherwise fight); now the reference state becomes the identity and the image is made in its pose
    motion = _trajectory(parameters, starts, sampling, (rot_axes, shift_axes), centre)
    motion = motion.relative_to_pose(motion.transforms[reference])
    transforms = motion.transforms
    result, final_grid = sense_reconstruction(
        data, sampling, scanner_from_logical, coils, motion=motion, iterations=final_iterations,
        regularization=regularization,
    )  # fmt: skip
    rotation_deg = np.degrees(Rotation.from_matrix(transforms[:, :3, :3]).as_rotvec())
    translation = transforms[:, :3, 3] - centre + transforms[:, :3, :3] @ centre
    return MotionEstimate(
        motion, rotation_deg, translation, centre, reference, result, final_grid, residuals, state_of_sample
    )


def _trajectory(parameters: np.ndarray, starts: np.ndarray, sampling: Sampling, axes, centre: np.ndarray):
    """The motion of parameters (S, P): state s from ``starts[s]`` (s), the last until the scan's last sample."""
    end = float(np.max(sampling.time_s)) + 1e-9
    return MotionTrajectory(starts, _transforms(parameters, *axes, centre), end_s=end)


def _stage_encoding(
    parameters: np.ndarray, *, region, sampling, starts, axes, coils, settings, within, centre, coil_model
) -> MotionEncoding:
    """The moving-coil encoding of the samples ``within`` (a stage's k-space radius) for parameters (S, P)."""
    motion = _trajectory(parameters, starts, sampling, axes, centre)
    k, times = sampling.k_logical[within], sampling.time_s[within]
    return MotionEncoding(region, k, times, motion, coils, coil_model, **settings)


def _pose_step(
    operator: Callable[[np.ndarray], MotionEncoding],
    current: MotionEncoding,
    parameters: np.ndarray,
    steps: np.ndarray,
    image: np.ndarray,
    data: np.ndarray,
    state_of_sample: np.ndarray,
    damping: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One Levenberg–Marquardt step of every state's parameters (S, P) for a fixed image: the new parameters and
    each state's cost ``Σ|E(θ)x − y|²`` there.

    ``operator(parameters)`` is the model whose cost is minimised (``current`` = ``operator(parameters)``); its
    Jacobian comes from finite differences of ``steps`` (P,) (one forward per parameter, every state moved at once).
    The P × P normal equations are solved per state, and a step is kept only by the states whose cost it lowers (the
    others retry, more damped, up to :data:`MAX_STEP_TRIALS` times). ``damping`` (S,) is updated in place. (A
    Jacobian from the cheaper moving-coil model while the cost is the exact model's was tried: no faster overall,
    where the CG image steps dominate, and it slowed the convergence near loop coils: 1.4° against 0.12° left after
    the last stage.)"""
    count, size = len(damping), len(steps)

    def per_state(values: np.ndarray) -> np.ndarray:  # (coils, m) → (S,) sums over each state's samples
        return np.bincount(state_of_sample, np.sum(values, 0), count)

    predicted = current.forward(image)
    residual = predicted - data
    jacobian = []
    for j, step in enumerate(steps):
        moved = parameters.copy()
        moved[:, j] += step
        jacobian.append((operator(moved).forward(image) - predicted) / step)
    normal, gradient = np.zeros((count, size, size)), np.zeros((count, size))
    for j in range(size):
        gradient[:, j] = per_state(np.real(np.conj(jacobian[j]) * residual))
        for k in range(j, size):
            normal[:, j, k] = normal[:, k, j] = per_state(np.real(np.conj(jacobian[j]) * jacobian[k]))
    del jacobian
    cost = per_state(np.abs(residual) ** 2)
    diagonal = np.einsum("sii->si", normal)
    parameters = parameters.copy()
    pending = np.ones(count, dtype=bool)  # states still looking for a step that lowers their cost
    for _ in range(MAX_STEP_TRIALS):
        damped = normal + (damping[:, None] * diagonal + 1e-30)[:, :, None] * np.eye(size)
        step = -np.linalg.solve(damped, gradient[:, :, None])[:, :, 0]
        trial = np.where(pending[:, None], parameters + step, parameters)
        trial_cost = per_state(np.abs(operator(trial).forward(image) - data) ** 2)
        better = pending & (trial_cost <= cost)
        parameters[better], cost[better] = trial[better], trial_cost[better]
        damping[better] = np.maximum(damping[better] / 3, 1e-6)
        pending &= ~better
        damping[pending] *= 10
        if not np.any(pending):
            break
    return parameters, cost


def _centre_of_mass(magnitude: np.ndarray, region: ImageGrid) -> np.ndarray:
    """Centre of mass (scanner mm) of an image on ``region``."""
    index = np.indices(magnitude.shape).reshape(magnitude.ndim, -1)
    mean_index = index @ magnitude.reshape(-1) / max(float(magnitude.sum()), 1e-300)
    return region.positions(mean_index)
