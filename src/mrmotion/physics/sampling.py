"""Where and when k-space is sampled: Cartesian (2-D multi-slice, 3-D) with acquisition orders, and radial.

Every sample carries its k-space position in the acquisition's **logical** frame (read, phase, slice), in rad/mm,
and its acquisition time in seconds. Cartesian samples also carry their integer grid index.

Cartesian grid convention, used everywhere in the project: along an axis with n points and field of view
``FOV = n · voxel`` (mm), grid index j (0 … n−1) is ``k = 2π (j − n//2) / FOV`` rad/mm, so index ``n//2`` is the
k-space centre (the ``fftshift`` layout).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import FloatArray

MODES = ("2d", "3d")


@dataclass(frozen=True, eq=False)
class Sampling:
    """k-space samples of one scan, in acquisition order.

    Attributes
    ----------
    k_logical : (M, 3) float64, rad/mm, logical (read, phase, slice) axes; ``k[:, 2] = 0`` in 2-D mode.
    time_s : (M,) float64, acquisition time of each sample, s, from the start of the scan.
    shot : (M,) int64, index of the shot / echo train / TR that acquired the sample.
    slice_index : (M,) int64, the slice excited for the sample (2-D multi-slice); 0 in 3-D mode.
    matrix : (3,) int64, image matrix (n_read, n_phase, n_slice) the sampling is designed for.
    voxel_size_mm : (3,) float64, voxel size of that matrix along (read, phase, slice), mm.
    mode : ``"2d"`` (multi-slice: each slice excited and encoded in-plane) or ``"3d"``.
    grid_index : (M, 3) int64 Cartesian indices (read, phase, slice) into the centred k-space grid, or ``None``
        for non-Cartesian sampling. In 2-D mode the third index is the slice.
    """

    k_logical: FloatArray
    time_s: FloatArray
    shot: np.ndarray
    slice_index: np.ndarray
    matrix: np.ndarray
    voxel_size_mm: FloatArray
    mode: str
    grid_index: np.ndarray | None = None

    def __post_init__(self) -> None:
        k = np.asarray(self.k_logical, dtype=np.float64)
        count = k.shape[0] if k.ndim == 2 else -1
        if k.ndim != 2 or k.shape[1] != 3 or count == 0:
            raise MrMotionError(f"sampling: k_logical must be a non-empty (M, 3) array, got shape {k.shape}")
        for name in ("time_s", "shot", "slice_index"):
            if np.shape(getattr(self, name)) != (count,):
                raise MrMotionError(f"sampling: {name} must have shape ({count},), got {np.shape(getattr(self, name))}")
        if self.grid_index is not None and np.shape(self.grid_index) != (count, 3):
            raise MrMotionError(f"sampling: grid_index must have shape ({count}, 3), got {np.shape(self.grid_index)}")
        if self.mode not in MODES:
            raise MrMotionError(f"sampling: mode must be one of {MODES}, got {self.mode!r}")
        if not (np.all(np.isfinite(k)) and np.all(np.isfinite(self.time_s))):
            raise MrMotionError("sampling: k-space positions and times must be finite")
        object.__setattr__(self, "k_logical", k)
        object.__setattr__(self, "time_s", np.asarray(self.time_s, dtype=np.float64))
        object.__setattr__(self, "matrix", np.asarray(self.matrix, dtype=np.int64))
        object.__setattr__(self, "voxel_size_mm", np.asarray(self.voxel_size_mm, dtype=np.float64))

    def __len__(self) -> int:
        return self.k_logical.shape[0]

    @property
    def fov_mm(self) -> FloatArray:
        """Field of view (read, phase, slice) in mm: matrix × voxel size."""
        return self.matrix * self.voxel_size_mm

    @property
    def centre_time_s(self) -> float:
        """Time (s) of the first sample acquired at the k-space centre (the smallest ``|k|``; in 2-D multi-slice
        mode, the first slice's)."""
        radius = np.linalg.norm(self.k_logical, axis=1)
        nearest = np.flatnonzero(radius <= radius.min() + 1e-12)
        return float(self.time_s[nearest].min())

    @property
    def duration_s(self) -> float:
        """Time of the last sample, s."""
        return float(self.time_s.max())


def grid_k(index: np.ndarray, matrix: np.ndarray, voxel_size_mm: np.ndarray) -> FloatArray:
    """k (rad/mm) of Cartesian grid indices ``(..., 3)``: ``2π (j − n//2) / (n · voxel)``."""
    matrix = np.asarray(matrix)
    return 2.0 * np.pi * (np.asarray(index) - matrix // 2) / (matrix * np.asarray(voxel_size_mm, dtype=np.float64))


# --- builders (below) ---------------------------------------------------------------------------------------
#
# Timing model shared by all builders. A scan is a sequence of TRs (index r, stored as ``shot``). In 3-D mode a TR
# holds one readout (single-line orders) or one echo train (``order="interleaved"``). In 2-D multi-slice mode a TR
# visits every slice once, in interleaved slice order (even slices, then odd), slice at position p starting at
# ``p · TR / n_slice``; each visit acquires that TR's line (or train). Line m of a train starts ``m · echo_spacing_s``
# after the train; sample i of a readout is taken ``i · dwell_s`` after the readout starts. Samples are stored in
# that acquisition order, so ``time_s`` is non-decreasing over the whole array in both modes.

CARTESIAN_ORDERS = ("linear", "centric", "interleaved", "random")
RADIAL_ORDERS = ("golden", "uniform", "random")
#: 180° golden angle (Winkelmann et al. 2007), rad: 111.246°.
GOLDEN_ANGLE_RAD = np.pi * (np.sqrt(5.0) - 1.0) / 2.0
#: Real root of λ³ = λ² + 1; the 3-D golden means (Chan et al. 2009) are 1/λ² ≈ 0.4656 and 1/λ ≈ 0.6823.
_LAMBDA = float(next(r.real for r in np.roots([1.0, -1.0, 0.0, -1.0]) if abs(r.imag) < 1e-9))
GOLDEN_MEANS_3D = (1.0 / _LAMBDA**2, 1.0 / _LAMBDA)
#: Default time per slice visit for single-readout TRs (GRE-like), s.
GRE_SLOT_S = 0.01
#: Default shortest TR for echo-train (interleaved) scans (TSE / segmented-3-D-like), s.
TRAIN_TR_S = 2.0


def _fail(where: str, name: str, expected: str, got: object) -> MrMotionError:
    return MrMotionError(f"{where}: {name} must be {expected}, got {got!r}")


def _check_matrix(where: str, matrix: np.typing.ArrayLike) -> np.ndarray:
    arr = np.asarray(matrix)
    if arr.shape != (3,) or arr.dtype.kind not in "iu" or np.any(arr < 1):
        raise _fail(where, "matrix", "3 integers (n_read, n_phase, n_slice) each >= 1", matrix)
    return arr.astype(np.int64)


def _check_voxel(where: str, voxel_size_mm: np.typing.ArrayLike) -> FloatArray:
    arr = np.asarray(voxel_size_mm)
    if arr.shape != (3,) or arr.dtype.kind not in "iuf" or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise _fail(where, "voxel_size_mm", "3 finite sizes > 0 in mm (read, phase, slice)", voxel_size_mm)
    return arr.astype(np.float64)


def _check_choice(where: str, name: str, value: object, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise _fail(where, name, f"one of {choices}", value)


def _check_count(where: str, name: str, value: object, low: int, high: int | None = None) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
        raise _fail(where, name, bound, value)
    return int(value)  # type: ignore[arg-type]


def _check_time(where: str, name: str, value: object, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        raise _fail(where, name, "a finite time in s " + (">= 0" if allow_zero else "> 0"), value)
    return float(value)  # type: ignore[arg-type]


def _schedule(
    where: str,
    shot: np.ndarray,
    pos: np.ndarray,
    n_slots: int,
    n_read: int,
    tr_s: float | None,
    echo_spacing_s: float,
    dwell_s: float,
    min_tr_s: float,
    min_slot_s: float,
) -> tuple[np.ndarray, np.ndarray, FloatArray]:
    """Order readouts in time (module comment above): returns (line, slice, start time s) per readout.

    ``shot`` / ``pos`` (L,) give each line's TR and its position in that TR's train, in acquisition order. With
    ``tr_s=None`` the TR is ``max(min_tr_s, n_slots · max(min_slot_s, time one slice visit needs))``.
    """
    readout_s = n_read * dwell_s
    train_length = int(pos.max()) + 1
    if train_length > 1 and readout_s > echo_spacing_s * (1 + 1e-9):
        raise _fail(where, "echo_spacing_s", f">= the readout {n_read} × dwell_s = {readout_s:.6g} s", echo_spacing_s)
    visit_s = (train_length - 1) * echo_spacing_s + readout_s
    if tr_s is None:
        tr_s = max(min_tr_s, n_slots * max(min_slot_s, visit_s))
    tr_s = _check_time(where, "tr_s", tr_s)
    if visit_s * n_slots > tr_s * (1 + 1e-9):
        what = f"{n_slots} slice visit(s) of {visit_s:.6g} s ({train_length} line(s), {n_read} samples each)"
        raise _fail(where, "tr_s", f">= {visit_s * n_slots:.6g} s to hold {what}", tr_s)
    slice_order = np.concatenate([np.arange(0, n_slots, 2), np.arange(1, n_slots, 2)])
    line = np.tile(np.arange(shot.size), n_slots)
    slot = np.repeat(np.arange(n_slots), shot.size)
    order = np.lexsort((pos[line], slot, shot[line]))
    line, slot = line[order], slot[order]
    start = shot[line] * tr_s + slot * (tr_s / n_slots) + pos[line] * echo_spacing_s
    return line, slice_order[slot], start


def _readout_times(start: FloatArray, n_read: int, dwell_s: float) -> FloatArray:
    """Time (s) of every sample, (R · n_read,): readout start + i · dwell_s."""
    return (start[:, None] + np.arange(n_read) * dwell_s).ravel()


def cartesian(
    matrix: np.typing.ArrayLike,
    voxel_size_mm: np.typing.ArrayLike,
    mode: str = "3d",
    order: str = "linear",
    shots: int = 1,
    tr_s: float | None = None,
    echo_spacing_s: float = 0.005,
    dwell_s: float = 5e-6,
    seed: int = 0,
) -> Sampling:
    """Fully sampled Cartesian k-space, 3-D or 2-D multi-slice, in a given phase-encode order.

    Readout runs along logical axis 0: every readout line holds all ``n_read`` grid points. Phase encoding runs
    along axis 1 (2-D) or axes 1 and 2 (3-D: a line is a (ky, kz) pair). Every grid point is sampled once.

    Parameters
    ----------
    matrix : (3,) int, (n_read, n_phase, n_slice), each >= 1. In 2-D mode n_slice is the number of slices.
    voxel_size_mm : (3,) float, voxel size (read, phase, slice) in mm, > 0.
    mode : ``"3d"`` or ``"2d"`` (multi-slice; every slice uses the same line order).
    order : phase-encode line order. Lines are first listed linearly: ky ascending from −n_phase/2 (index 0), and
        in 3-D kz as the outer loop, ky inner. Then

        - ``"linear"``: that list, one line per TR;
        - ``"centric"``: by increasing |k| (rad/mm, of (ky, kz) in 3-D), ties in linear order; starts at k = 0;
        - ``"interleaved"``: ``shots`` echo trains; train s acquires linear lines s, s + shots, s + 2·shots, …,
          ``echo_spacing_s`` apart, trains ``tr_s`` apart (segmented multi-shot: motion between shots gives ghosts);
        - ``"random"``: a permutation of the linear list drawn with ``seed``, one line per TR.
    shots : number of echo trains, 1 … number of lines (n_phase in 2-D, n_phase·n_slice in 3-D); only
        ``order="interleaved"`` uses it, other orders require 1.
    tr_s : repetition time, s. Default: single-line orders 10 ms per slice visit (3-D: 10 ms; 2-D: n_slice × 10 ms,
        GRE-like), lengthened if the readout needs more; ``"interleaved"``: 2 s (TSE / segmented-3-D-like) or the
        time all slices' trains need, if longer. Must hold all visits of a TR (checked).
    echo_spacing_s : time between lines of an echo train, s (default 5 ms); must be >= the readout duration.
    dwell_s : time between readout samples, s (default 5 µs: 200 kHz, 781 Hz/pixel at 256). 0 = instant readout.
    seed : seed of ``order="random"``.

    Returns
    -------
    Sampling with ``grid_index`` (M, 3) = (read, phase, kz or slice) and ``k_logical = grid_k(grid_index)`` (rad/mm;
    ``k[:, 2] = 0`` and ``slice_index = grid_index[:, 2]`` in 2-D). ``shot`` is the TR / echo-train index (in 2-D all
    slices visited in TR r carry shot r). M = n_read · n_phase · n_slice; ``time_s`` is non-decreasing.
    """
    where = "cartesian"
    size = _check_matrix(where, matrix)
    voxel = _check_voxel(where, voxel_size_mm)
    _check_choice(where, "mode", mode, MODES)
    _check_choice(where, "order", order, CARTESIAN_ORDERS)
    n_read, n_phase, n_slice = (int(v) for v in size)
    n_lines = n_phase * (n_slice if mode == "3d" else 1)
    shots = _check_count(where, "shots", shots, 1, n_lines)
    if order != "interleaved" and shots != 1:
        raise _fail(where, "shots", f"1 for order={order!r} (only 'interleaved' has several echo trains)", shots)
    echo_spacing_s = _check_time(where, "echo_spacing_s", echo_spacing_s)
    dwell_s = _check_time(where, "dwell_s", dwell_s, allow_zero=True)

    kz, ky = np.divmod(np.arange(n_lines), n_phase)  # linear list: kz outer, ky inner
    if order == "centric":
        k = grid_k(np.stack([np.zeros_like(ky), ky, kz], axis=-1), size, voxel)
        perm = np.argsort(np.hypot(k[:, 1], k[:, 2]) if mode == "3d" else np.abs(k[:, 1]), kind="stable")
    elif order == "random":
        perm = np.random.default_rng(seed).permutation(n_lines)
    elif order == "interleaved":
        perm = np.concatenate([np.arange(s, n_lines, shots) for s in range(shots)])
    else:
        perm = np.arange(n_lines)
    if order == "interleaved":
        counts = np.array([len(range(s, n_lines, shots)) for s in range(shots)])
        shot = np.repeat(np.arange(shots), counts)
        pos = np.arange(n_lines) - np.repeat(np.cumsum(counts) - counts, counts)
    else:
        shot, pos = np.arange(n_lines), np.zeros(n_lines, dtype=np.int64)
    min_tr, min_slot = (TRAIN_TR_S, 0.0) if order == "interleaved" else (0.0, GRE_SLOT_S)
    n_slots = n_slice if mode == "2d" else 1
    line, slice_index, start = _schedule(
        where, shot, pos, n_slots, n_read, tr_s, echo_spacing_s, dwell_s, min_tr, min_slot
    )

    third = slice_index if mode == "2d" else kz[perm[line]]
    grid = np.empty((line.size * n_read, 3), dtype=np.int64)
    grid[:, 0] = np.tile(np.arange(n_read), line.size)
    grid[:, 1] = np.repeat(ky[perm[line]], n_read)
    grid[:, 2] = np.repeat(third, n_read)
    k = grid_k(grid, size, voxel)
    if mode == "2d":
        k[:, 2] = 0.0
    return Sampling(
        k_logical=k,
        time_s=_readout_times(start, n_read, dwell_s),
        shot=np.repeat(shot[line], n_read).astype(np.int64),
        slice_index=np.repeat(slice_index if mode == "2d" else np.zeros_like(line), n_read).astype(np.int64),
        matrix=size,
        voxel_size_mm=voxel,
        mode=mode,
        grid_index=grid,
    )


def _spoke_directions(mode: str, order: str, spokes: int, seed: int) -> FloatArray:
    """Unit spoke directions (spokes, 3) in (read, phase, slice), in acquisition order."""
    j = np.arange(spokes)
    if mode == "2d":
        angle = (j * GOLDEN_ANGLE_RAD) % np.pi if order == "golden" else j * (np.pi / spokes)
        z = np.zeros(spokes)
        cos_polar = np.ones(spokes)
    else:
        if order == "golden":  # multidimensional golden means (Chan et al., MRM 2009), z on [0, 1)
            z = (j * GOLDEN_MEANS_3D[0]) % 1.0
            angle = 2.0 * np.pi * ((j * GOLDEN_MEANS_3D[1]) % 1.0)
        else:  # Fibonacci spiral on the hemisphere: equal-area rings in z, azimuth stepped by 137.5°
            z = (j + 0.5) / spokes
            angle = j * np.pi * (3.0 - np.sqrt(5.0))
        cos_polar = np.sqrt(1.0 - z**2)
    directions = np.stack([cos_polar * np.cos(angle), cos_polar * np.sin(angle), z], axis=-1)
    if order == "random":
        directions = directions[np.random.default_rng(seed).permutation(spokes)]
    return directions


def radial(
    matrix: np.typing.ArrayLike,
    voxel_size_mm: np.typing.ArrayLike,
    mode: str = "2d",
    spokes: int | None = None,
    order: str = "golden",
    tr_s: float | None = None,
    dwell_s: float = 5e-6,
    seed: int = 0,
) -> Sampling:
    """Radial k-space: full spokes through the centre, one spoke per TR (per slice visit in 2-D).

    Spoke sample i (0 … n_read−1) along unit direction d is ``k = 2π (i − n_read//2) / n_read · d / voxel``
    (elementwise), so each axis spans [−π/voxel, π/voxel) (Nyquist; an ellipsoid for anisotropic voxels) and sample
    ``n_read//2`` is k = 0. A full spoke covers d and −d, so directions span 180° (2-D) or a hemisphere (3-D, kz >= 0).

    Parameters
    ----------
    matrix : (3,) int, (n_read, n_phase, n_slice); n_read samples per spoke. In 2-D mode n_slice = number of slices.
    voxel_size_mm : (3,) float, voxel size (read, phase, slice) in mm, > 0.
    mode : ``"2d"`` (spokes in the read/phase plane, every slice acquires the same spokes) or ``"3d"``.
    spokes : number of spokes >= 1. Default: fully sampled at the edge of k-space (Nyquist), ``ceil(π/2 · n_read)``
        in 2-D and ``ceil(π/2 · n_read²)`` in 3-D (sphere surface π n² / 2 spokes × 2 ends); about π/2 times the
        Cartesian sample count. Pass fewer to undersample.
    order : ``"golden"``: 2-D angles j · 111.246° mod 180°; 3-D multidimensional golden means (Chan et al. 2009):
        kz = frac(j · 0.4656), azimuth = 2π frac(j · 0.6823). ``"uniform"``: 2-D angles j · 180° / spokes; 3-D a
        Fibonacci spiral over the hemisphere (kz = (j + ½)/spokes, azimuth step 137.5°). ``"random"``: the
        ``"uniform"`` set in a permutation drawn with ``seed``.
    tr_s : repetition time, s. Default: 10 ms per slice visit (3-D 10 ms, 2-D n_slice × 10 ms), or the readout
        duration per visit if longer.
    dwell_s : time between samples along a spoke, s (default 5 µs). 0 = instant readout.
    seed : seed of ``order="random"``.

    Returns
    -------
    Sampling with ``grid_index=None``; ``shot`` = spoke (TR) index; in 2-D ``k[:, 2] = 0`` and ``slice_index`` the
    slice. Samples of one spoke are contiguous; M = spokes · n_read (· n_slice in 2-D); ``time_s`` non-decreasing.
    """
    where = "radial"
    size = _check_matrix(where, matrix)
    voxel = _check_voxel(where, voxel_size_mm)
    _check_choice(where, "mode", mode, MODES)
    _check_choice(where, "order", order, RADIAL_ORDERS)
    n_read = int(size[0])
    if spokes is None:
        spokes = int(np.ceil(np.pi / 2.0 * (n_read if mode == "2d" else n_read**2)))
    spokes = _check_count(where, "spokes", spokes, 1)
    dwell_s = _check_time(where, "dwell_s", dwell_s, allow_zero=True)
    n_slots = int(size[2]) if mode == "2d" else 1
    line, slice_index, start = _schedule(
        where, np.arange(spokes), np.zeros(spokes, dtype=np.int64), n_slots, n_read, tr_s, 1.0, dwell_s, 0.0, GRE_SLOT_S
    )
    radius = 2.0 * np.pi * (np.arange(n_read) - n_read // 2) / n_read
    directions = _spoke_directions(mode, order, spokes, seed) / voxel
    k = (directions[line][:, None, :] * radius[None, :, None]).reshape(-1, 3) + 0.0  # + 0.0: no −0.0
    return Sampling(
        k_logical=k,
        time_s=_readout_times(start, n_read, dwell_s),
        shot=np.repeat(line, n_read).astype(np.int64),
        slice_index=np.repeat(slice_index if mode == "2d" else np.zeros_like(line), n_read).astype(np.int64),
        matrix=size,
        voxel_size_mm=voxel,
        mode=mode,
        grid_index=None,
    )
