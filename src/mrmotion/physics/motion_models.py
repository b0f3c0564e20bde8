"""Motion models: seeded random or prescribed motion over a scan, as a :class:`MotionTrajectory`.

Every model returns states covering the scan ``[start_s, end_s]`` (s): the first state starts at ``start_s``,
``end_s`` is the trajectory's end. Each state is a 4×4 transform that **moves the object away from where it is in
the image**, in scanner LPS mm about the isocentre. Models that take ``centre_mm`` (3,) (LPS mm) rotate (or
scale) about that point instead, ``T(c) A T(−c)``: about the head centre rather than the isocentre. The first
state is the identity unless a docstring says otherwise.

Random models take a keyword-only ``seed`` (an int, or a ``numpy.random.Generator``): the same seed gives the
same output, bit for bit. Severity is explicit (maximum rotation in degrees, translation in mm) and can be
checked afterwards with :func:`severity`. Families: :func:`sudden` (Shaw et al. 2019), :func:`drift`,
:func:`periodic`, :func:`respiratory` (affine), :func:`from_tracking` (recorded), and :func:`random_motion`
(severity presets over the first three).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.transform import Rotation

from mrmotion.errors import MrMotionError
from mrmotion.geometry.motion import camera_motion
from mrmotion.geometry.parameters import sphere_rms_displacement, transform_from_rotvec
from mrmotion.geometry.transforms import FloatArray, as_rigid, invert_rigid, make_transform
from mrmotion.io.tracking import TrackingLog
from mrmotion.physics.trajectory import MotionTrajectory

SeedLike = int | np.random.Generator

#: Scanner LPS axes by name: left–right (x), anterior–posterior (y), superior–inferior (z).
AXES = {"lr": 0, "ap": 1, "si": 2}

#: Severity presets for :func:`random_motion`: maximum rotation (deg) and translation (mm), and the mean
#: numbers of large and small movements per scan of the "sudden" family.
SEVERITIES = {
    "light": {"max_rotation_deg": 1.0, "max_translation_mm": 1.0, "rate_large": 0.5, "rate_small": 2.0},
    "moderate": {"max_rotation_deg": 3.0, "max_translation_mm": 3.0, "rate_large": 1.0, "rate_small": 3.0},
    "severe": {"max_rotation_deg": 8.0, "max_translation_mm": 8.0, "rate_large": 2.0, "rate_small": 4.0},
}
FAMILIES = ("sudden", "drift", "periodic")


# --- validation helpers


def _generator(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise MrMotionError(f"seed: expected an int or a numpy Generator (for reproducibility), got {seed!r}")


def _number(name: str, value: float, maximum: float = math.inf, positive: bool = False) -> float:
    """``value`` as a float, finite, ≥ 0 (> 0 if ``positive``) and ≤ ``maximum``, else :class:`MrMotionError`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or number > maximum or (positive and number == 0):
        bound = ("> 0" if positive else "≥ 0") + ("" if math.isinf(maximum) else f" and ≤ {maximum:g}")
        raise MrMotionError(f"{name}: expected a finite number {bound}, got {value!r}")
    return number


def _span(start_s: float, end_s: float) -> float:
    """Duration (s) of the scan ``[start_s, end_s]``, checked finite and positive."""
    if not all(isinstance(t, int | float | np.number) and math.isfinite(t) for t in (start_s, end_s)):
        raise MrMotionError(f"scan span: start_s and end_s must be finite seconds, got {start_s!r} and {end_s!r}")
    if end_s <= start_s:
        raise MrMotionError(f"scan span: end_s ({end_s} s) must be after start_s ({start_s} s)")
    return float(end_s - start_s)


def _states(states: int) -> int:
    if isinstance(states, bool) or not isinstance(states, int | np.integer) or states < 1:
        raise MrMotionError(f"states: expected an integer ≥ 1, got {states!r}")
    return int(states)


def _fine_states(states: int | None, duration: float, period: float) -> int:
    return max(64, math.ceil(32 * duration / period)) if states is None else _states(states)


def _centre(centre_mm: ArrayLike | None) -> FloatArray:
    if centre_mm is None:
        return np.zeros(3)
    centre = np.asarray(centre_mm, dtype=np.float64)
    if centre.shape != (3,) or not np.all(np.isfinite(centre)):
        raise MrMotionError(f"centre_mm: expected 3 finite LPS coordinates in mm, got {centre_mm!r}")
    return centre


def _about(transforms: FloatArray, centre: FloatArray) -> FloatArray:
    """``T(c) A T(−c)``: the same motion with its rotation (or scaling) about ``c`` instead of the origin."""
    linear = transforms[..., :3, :3]
    return make_transform(linear, transforms[..., :3, 3] + centre - linear @ centre)


def _random_vector(rng: np.random.Generator, maximum: float) -> FloatArray:
    """A vector with uniformly random direction and a length uniform in ``[0, maximum]``."""
    direction = rng.normal(size=3)
    return direction / np.linalg.norm(direction) * rng.uniform(0.0, maximum)


def _shrink(vector: FloatArray, maximum: float) -> FloatArray:
    norm = float(np.linalg.norm(vector))
    return vector * (maximum / norm) if norm > maximum else vector


def _trajectory(times: FloatArray, transforms: FloatArray, end_s: float, rigid: bool = True) -> MotionTrajectory:
    """Sort states by time and merge states starting at the same time (the later one wins)."""
    order = np.argsort(times, kind="stable")
    times, transforms = times[order], transforms[order]
    keep = np.append(times[1:] != times[:-1], True)
    return MotionTrajectory(times[keep], transforms[keep], float(end_s), rigid)


def _regular_times(start_s: float, end_s: float, states: int) -> FloatArray:
    return start_s + (end_s - start_s) * np.arange(states) / states


# --- families


def sudden(
    start_s: float,
    end_s: float,
    max_rotation_deg: float,
    max_translation_mm: float,
    *,
    rate_large: float = 1.0,
    rate_small: float = 3.0,
    small_fraction: float = 0.15,
    window: float = 1.0,
    centre_mm: ArrayLike | None = None,
    seed: SeedLike,
) -> MotionTrajectory:
    """Sudden rigid movements (Shaw et al. 2019): the head jumps at random times and stays put in between.

    The numbers of large and small movements are Poisson with means ``rate_large`` and ``rate_small`` (per
    scan, not per second); their times are uniform in the scan, or in its central fraction ``window``. A large
    movement moves the head to a new random pose: rotation about a uniformly random axis by an angle uniform in
    ``[0, max_rotation_deg]``, translation in a random direction by a length uniform in
    ``[0, max_translation_mm]``. A small movement composes the current pose with such a jump whose maxima are
    ``small_fraction`` of the large ones (a twitch about where the head is), then shrinks the result back to
    the maxima if needed. So every state honours the maxima (measured about ``centre_mm``, see
    :func:`severity`). A draw may have no movement at all (probability ``exp(−rate_large − rate_small)``).

    Parameters
    ----------
    start_s, end_s : scan start and end, s.
    max_rotation_deg : largest rotation angle of any state relative to the image, degrees, ≤ 180.
    max_translation_mm : largest translation of any state, mm.
    rate_large, rate_small : mean numbers of large and small movements in the scan.
    small_fraction : size of a small movement relative to the maxima, in (0, 1].
    window : central fraction of the scan time in which movements happen, in (0, 1]; default 1 (whole scan).
        Movements near the k-space centre corrupt images most; with a linear or sequential phase-encode order
        the centre is acquired mid-scan, so e.g. ``window=0.5`` puts all movements in the middle half of the
        scan, which is near the k-space centre **only** for such orders (not for centric orders).
    centre_mm : (3,) LPS mm, rotation centre (default: the isocentre).
    seed : int or numpy Generator.

    Returns
    -------
    MotionTrajectory
        Rigid; identity from ``start_s``, one new state at each movement time, ending at ``end_s``.
    """
    duration = _span(start_s, end_s)
    max_rotation = math.radians(_number("max_rotation_deg", max_rotation_deg, 180.0))
    max_translation = _number("max_translation_mm", max_translation_mm)
    rates = _number("rate_large", rate_large), _number("rate_small", rate_small)
    fraction = _number("small_fraction", small_fraction, 1.0, positive=True)
    width = _number("window", window, 1.0, positive=True)
    centre, rng = _centre(centre_mm), _generator(seed)
    counts = rng.poisson(rates[0]), rng.poisson(rates[1])
    large = np.repeat([True, False], counts)
    low = start_s + 0.5 * (1.0 - width) * duration
    jump_times = rng.uniform(low, low + width * duration, large.size)
    order = np.argsort(jump_times, kind="stable")
    rotation, translation = Rotation.identity(), np.zeros(3)
    rotvecs, translations = [np.zeros(3)], [np.zeros(3)]
    for is_large in large[order]:
        scale = 1.0 if is_large else fraction
        step = Rotation.from_rotvec(_random_vector(rng, scale * max_rotation))
        shift = _random_vector(rng, scale * max_translation)
        if is_large:
            rotation, translation = step, shift
        else:
            rotation = Rotation.from_rotvec(_shrink((step * rotation).as_rotvec(), max_rotation))
            translation = _shrink(translation + shift, max_translation)
        rotvecs.append(rotation.as_rotvec())
        translations.append(translation)
    transforms = _about(transform_from_rotvec(np.array(rotvecs), np.array(translations)), centre)
    return _trajectory(np.concatenate([[start_s], jump_times[order]]), transforms, end_s)


def drift(
    start_s: float,
    end_s: float,
    max_rotation_deg: float,
    max_translation_mm: float,
    *,
    states: int = 32,
    centre_mm: ArrayLike | None = None,
    seed: SeedLike,
) -> MotionTrajectory:
    """Slow drift along a straight path (geodesic in rotation) from the identity to a random final pose.

    The final pose rotates about a uniformly random axis by exactly ``max_rotation_deg`` and translates in a
    uniformly random direction by exactly ``max_translation_mm``. State i of ``states`` starts at
    ``start_s + i (end_s − start_s) / states`` and holds the fraction ``i / (states − 1)`` of the final pose, so
    the first state is the identity and the last is the final pose (``states=1``: identity only).

    Parameters
    ----------
    start_s, end_s : scan start and end, s.
    max_rotation_deg, max_translation_mm : magnitudes of the final pose, degrees (≤ 180) and mm.
    states : number of piecewise-constant steps, ≥ 1.
    centre_mm : (3,) LPS mm, rotation centre (default: the isocentre).
    seed : int or numpy Generator.
    """
    _span(start_s, end_s)
    angle = math.radians(_number("max_rotation_deg", max_rotation_deg, 180.0))
    length = _number("max_translation_mm", max_translation_mm)
    count, centre, rng = _states(states), _centre(centre_mm), _generator(seed)
    axis, direction = (vector / np.linalg.norm(vector) for vector in rng.normal(size=(2, 3)))
    fraction = np.arange(count)[:, None] / max(count - 1, 1)
    transforms = transform_from_rotvec(fraction * angle * axis, fraction * length * direction)
    return _trajectory(_regular_times(start_s, end_s, count), _about(transforms, centre), end_s)


def periodic(
    start_s: float,
    end_s: float,
    amplitude_deg: float,
    period_s: float,
    *,
    axis: str = "lr",
    amplitude_mm: float = 0.0,
    states: int | None = None,
    centre_mm: ArrayLike | None = None,
    seed: SeedLike,
) -> MotionTrajectory:
    """Periodic motion: nodding, ``θ(t) = amplitude_deg · sin(2π (t − start_s) / period_s)`` about a scanner axis.

    ``axis`` is "lr" (left–right, LPS x: nodding, the default), "ap" (LPS y: rolling the head towards a shoulder)
    or "si" (LPS z: shaking the head "no"); the angle is right-handed about +x, +y or +z. An optional translation
    ``amplitude_mm · sin(…) · u`` moves in phase along a uniformly random unit direction ``u``: the only use of
    ``seed`` (with ``amplitude_mm=0`` the output does not depend on it). The first state is the identity.

    Parameters
    ----------
    start_s, end_s : scan start and end, s.
    amplitude_deg : peak rotation, degrees (≤ 180).
    period_s : period, s, > 0.
    axis : "lr", "ap" or "si".
    amplitude_mm : peak translation, mm.
    states : number of states, sampled at ``start_s + i (end_s − start_s) / states``; default
        ``max(64, ceil(32 (end_s − start_s) / period_s))``, i.e. at least 32 states per period.
    centre_mm : (3,) LPS mm, rotation centre (default: the isocentre).
    seed : int or numpy Generator.
    """
    duration = _span(start_s, end_s)
    amplitude = math.radians(_number("amplitude_deg", amplitude_deg, 180.0))
    period = _number("period_s", period_s, positive=True)
    shift = _number("amplitude_mm", amplitude_mm)
    if axis not in AXES:
        raise MrMotionError(f"axis: expected one of {', '.join(AXES)}, got {axis!r}")
    count = _fine_states(states, duration, period)
    centre, rng = _centre(centre_mm), _generator(seed)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    times = _regular_times(start_s, end_s, count)
    wave = np.sin(2.0 * np.pi * (times - start_s) / period)[:, None]
    rotvec = wave * amplitude * np.eye(3)[AXES[axis]]
    transforms = transform_from_rotvec(rotvec, wave * shift * direction)
    return _trajectory(times, _about(transforms, centre), end_s)


def respiratory(
    start_s: float,
    end_s: float,
    amplitude_mm: float,
    period_s: float,
    *,
    scale: float = 0.02,
    states: int | None = None,
    centre_mm: ArrayLike | None = None,
) -> MotionTrajectory:
    """Breathing-like **affine** motion: a superior–inferior shift and an anterior–posterior scaling.

    With the breathing phase ``s(t) = sin²(π (t − start_s) / period_s)`` (0 at end-expiration, 1 at peak
    inspiration; Lujan's cos^2n model with n = 1), the state is a translation by ``−amplitude_mm · s(t)`` along
    LPS z (inferior at inspiration, as the diaphragm and abdominal organs move) after a scaling of LPS y
    (anterior–posterior) by ``1 + scale · s(t)`` about ``centre_mm``. Deterministic: no seed. The first state is
    the identity. Not rigid: only affine-capable simulators accept it.

    Parameters
    ----------
    start_s, end_s : scan start and end, s.
    amplitude_mm : peak-to-peak superior–inferior excursion, mm.
    period_s : breathing period, s, > 0 (typically 3–6 s).
    scale : relative anterior–posterior expansion at peak inspiration (0.02 = 2 %), ≥ 0.
    states : number of states, as in :func:`periodic` (default at least 32 per period).
    centre_mm : (3,) LPS mm, centre of the scaling (default: the isocentre).

    Returns
    -------
    MotionTrajectory
        With ``rigid=False``.
    """
    duration = _span(start_s, end_s)
    amplitude = _number("amplitude_mm", amplitude_mm)
    period = _number("period_s", period_s, positive=True)
    expansion = _number("scale", scale)
    count = _fine_states(states, duration, period)
    times = _regular_times(start_s, end_s, count)
    phase = np.sin(np.pi * (times - start_s) / period) ** 2
    linear = np.broadcast_to(np.eye(3), (count, 3, 3)).copy()
    linear[:, 1, 1] += expansion * phase
    scaling = _about(make_transform(linear, np.zeros(3)), _centre(centre_mm))
    scaling[:, 2, 3] -= amplitude * phase
    return _trajectory(times, scaling, end_s, rigid=False)


def from_tracking(
    log: TrackingLog,
    scanner_from_camera: ArrayLike | None = None,
    *,
    reference_index: int = 0,
    time_offset_s: float = 0.0,
) -> MotionTrajectory:
    """Motion recorded by a tracker: ``A(t) = P(t) P(t0)⁻¹``, in the scanner frame ``X A(t) X⁻¹`` if X is given.

    Only the log's valid samples are used. The image is taken to show the object as at the reference sample
    ``t0`` (the first valid sample by default), so that state is the identity.

    Parameters
    ----------
    log : camera_from_marker poses ``P`` (mm) at times (s).
    scanner_from_camera : (4, 4) rigid calibration ``X`` (mm). Without it the motion stays in the camera frame,
        which is only right if the camera frame is the scanner frame.
    reference_index : index among the **valid** samples of the pose the image shows.
    time_offset_s : the tracker clock's time at the scan start; state times are ``log.times_s − time_offset_s``.

    Returns
    -------
    MotionTrajectory
        Rigid; one state per valid sample, ending at the last valid sample's time (so it covers exactly the
        tracked span, and the last state holds only at that instant).
    """
    if not isinstance(log, TrackingLog):
        raise MrMotionError(f"log: expected a TrackingLog, got {type(log).__name__}")
    offset = float(time_offset_s)
    if not math.isfinite(offset):
        raise MrMotionError(f"time_offset_s: expected a finite number of seconds, got {time_offset_s!r}")
    known = log.valid_only()
    motion = camera_motion(known.camera_from_marker, reference_index)
    if scanner_from_camera is not None:
        calibration = as_rigid(scanner_from_camera, "scanner_from_camera")
        if calibration.shape != (4, 4):
            raise MrMotionError(f"scanner_from_camera: expected shape (4, 4), got {calibration.shape}")
        motion = calibration @ motion @ invert_rigid(calibration, check=False)
    times = known.times_s - offset
    return MotionTrajectory(times, motion, float(times[-1]))


def random_motion(
    severity: str,
    start_s: float,
    end_s: float,
    *,
    seed: SeedLike,
    family: str | None = None,
    centre_mm: ArrayLike | None = None,
) -> MotionTrajectory:
    """Random rigid motion from a named severity preset; ``family`` None picks one of the three (seeded).

    ============  =========  ==========  ========================================================================
    severity      max rot.   max trans.  family parameters
    ============  =========  ==========  ========================================================================
    ``light``     1°         1 mm        sudden: 0.5 large + 2 small movements per scan on average
    ``moderate``  3°         3 mm        sudden: 1 large + 3 small
    ``severe``    8°         8 mm        sudden: 2 large + 4 small
    ============  =========  ==========  ========================================================================

    For every severity, "drift" ends at a rotation and a translation each uniform in [0.5, 1] × the maxima;
    "periodic" nods about the left–right axis with an amplitude uniform in [0.5, 1] × max rotation, a
    translation amplitude uniform in [0, 0.5] × max translation and a period uniform in [2, 6] s.

    Why these numbers: light is sub-degree, sub-millimetre motion of a cooperative adult (typical framewise
    displacement in fMRI), barely visible; moderate is the few-degree motion of ordinary clinical scans with
    clear ghosting; severe approaches TorchIO's ``RandomMotion`` defaults (10°, 10 mm), gross motion of
    children or distressed patients. Maxima are measured about ``centre_mm`` (see :func:`severity`).
    """
    if severity not in SEVERITIES:
        raise MrMotionError(f"severity: expected one of {', '.join(SEVERITIES)}, got {severity!r}")
    if family is not None and family not in FAMILIES:
        raise MrMotionError(f"family: expected one of {', '.join(FAMILIES)} or None, got {family!r}")
    preset, rng = SEVERITIES[severity], _generator(seed)
    chosen = family if family is not None else FAMILIES[int(rng.integers(len(FAMILIES)))]
    rotation, translation = preset["max_rotation_deg"], preset["max_translation_mm"]
    common = {"centre_mm": centre_mm, "seed": int(rng.integers(2**63))}
    if chosen == "sudden":
        rates = {"rate_large": preset["rate_large"], "rate_small": preset["rate_small"]}
        return sudden(start_s, end_s, rotation, translation, **rates, **common)
    if chosen == "drift":
        low, high = rng.uniform(0.5, 1.0, 2)
        return drift(start_s, end_s, low * rotation, high * translation, **common)
    amplitude, shift, period = rng.uniform(0.5, 1.0), rng.uniform(0.0, 0.5), rng.uniform(2.0, 6.0)
    return periodic(start_s, end_s, amplitude * rotation, period, amplitude_mm=shift * translation, **common)


def severity(
    trajectory: MotionTrajectory, radius_mm: float = 64.0, centre_mm: ArrayLike | None = None
) -> dict[str, float]:
    """Measured severity of a trajectory, to check that a model honoured its maxima.

    The states are expressed about ``centre_mm`` (``T(−c) A T(c)``; default the isocentre), then:

    * ``max_rotation_deg``: largest rotation angle of any state (geodesic, degrees);
    * ``max_translation_mm``: largest translation length (mm);
    * ``max_rms_displacement_mm``: largest RMS displacement of points on a sphere of radius ``radius_mm``
      centred at ``centre_mm`` (mm).

    For affine (``rigid=False``) trajectories the rotation is that of the polar decomposition of the linear
    part, and the RMS displacement uses the same closed form ``|d|² + r²/3 ‖L − I‖²_F``, which holds for any
    linear part ``L``.
    """
    if not isinstance(trajectory, MotionTrajectory):
        raise MrMotionError(f"trajectory: expected a MotionTrajectory, got {type(trajectory).__name__}")
    radius = _number("radius_mm", radius_mm)
    transforms = _about(trajectory.transforms, -_centre(centre_mm))
    linear, translation = transforms[:, :3, :3], transforms[:, :3, 3]
    if trajectory.rigid:
        rotations = linear
        displacement = sphere_rms_displacement(transforms, radius)
    else:
        u, _, vt = np.linalg.svd(linear)
        rotations = u @ vt
        deviation = np.sum((linear - np.eye(3)) ** 2, axis=(-2, -1))
        displacement = np.sqrt(np.sum(translation**2, axis=-1) + radius**2 / 3.0 * deviation)
    angles = Rotation.from_matrix(rotations).magnitude()
    return {
        "max_rotation_deg": float(np.degrees(angles.max())),
        "max_translation_mm": float(np.linalg.norm(translation, axis=-1).max()),
        "max_rms_displacement_mm": float(displacement.max()),
    }
