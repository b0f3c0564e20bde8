"""Receive coil sensitivities: analytic loop arrays, maps on voxel grids, and estimation from coil images.

Coils do not move with the head, so a sensitivity is a function of position in the **scanner frame** (LPS mm).
Every coil model implements :class:`CoilMaps`: ``sensitivities(points_mm)`` takes ``(..., 3)`` scanner points
and returns ``(count, ...)`` complex128 values, so the simulator can evaluate coils wherever the moved object is
(e.g. at ``A · u`` for object points ``u``).

Conventions
-----------
* B0 is along the scanner z axis. The receive sensitivity of a coil is the transverse part of the (real,
  quasi-static) field it makes per unit current, written as ``S = B_x + i·B_y`` (= ``conj(B_x − i·B_y)``, the
  reciprocity receive field of Hoult 2000 up to a factor 1/2). The field component along z does not receive.
* :class:`LoopCoils` are scaled so that the root-sum-of-squares over coils is 1 at their ``centre_mm``.
* Maps estimated from images (:func:`estimate_coil_maps`) have unit rSoS inside the object and 0 outside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from mrmotion.errors import MrMotionError
from mrmotion.geometry.transforms import apply, as_transform, invert

ComplexArray = NDArray[np.complex128]

#: Points (GridCoilMaps) or matrix entries (estimation) handled at once: bounds memory.
_CHUNK = 1 << 20
#: Points × loop segments per Biot–Savart block (1 MB of weights: cache-sized, 3× faster than 1 << 20).
_LOOP_CHUNK = 1 << 17


@runtime_checkable
class CoilMaps(Protocol):
    """Anything that gives coil sensitivities at scanner points (LPS mm)."""

    @property
    def count(self) -> int:
        """Number of coils."""
        ...

    def sensitivities(self, points_mm: ArrayLike) -> np.ndarray:
        """``(..., 3)`` scanner LPS points, mm → ``(count, ...)`` complex128 sensitivities."""
        ...


def _as_points(points_mm: ArrayLike, name: str = "points_mm") -> NDArray[np.float64]:
    try:
        points = np.asarray(points_mm, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise MrMotionError(f"{name}: expected numbers, got {type(points_mm).__name__} ({error})") from None
    if points.ndim < 1 or points.shape[-1] != 3:
        raise MrMotionError(f"{name}: expected shape (..., 3) scanner LPS points in mm, got {points.shape}")
    if points.size == 0:
        raise MrMotionError(f"{name}: no points given (shape {points.shape})")
    if not np.isfinite(points).all():
        raise MrMotionError(f"{name}: contains NaN or infinite coordinates")
    return points


def _as_coil_array(array: ArrayLike, name: str, keep_single: bool = False) -> ComplexArray:
    """``(count, X, Y[, Z])`` finite, non-empty → complex128 (complex64 kept as it is with ``keep_single``)."""
    single = keep_single and getattr(array, "dtype", None) == np.complex64
    try:
        out = np.asarray(array, dtype=np.complex64 if single else np.complex128)
    except (TypeError, ValueError) as error:
        raise MrMotionError(f"{name}: expected a numeric array, got {type(array).__name__} ({error})") from None
    if out.ndim not in (3, 4):
        raise MrMotionError(f"{name}: expected shape (count, X, Y) or (count, X, Y, Z), got {out.shape}")
    if out.size == 0:
        raise MrMotionError(f"{name}: empty array of shape {out.shape}; need at least one coil and one voxel")
    if not np.isfinite(out).all():
        raise MrMotionError(f"{name}: contains NaN or infinite values")
    return out


# ---------------------------------------------------------------------------------------------- analytic loops
@dataclass(frozen=True, eq=False)
class LoopCoils:
    """Circular loop coils; sensitivities from the Biot–Savart field of each loop.

    Parameters
    ----------
    centres_mm : (N, 3) float, loop centres in scanner LPS, mm.
    normals : (N, 3) float, loop axes (normalised here; the sign only flips a coil's overall sign).
    radius_mm : float, loop radius, mm (all loops alike).
    centre_mm : (3,) float or None, where the rSoS over coils is scaled to 1 (default: mean of the centres).
    segments : int, quadrature points on each loop. The line integral is evaluated with the trapezoidal rule on
        the exact circle (tangents, not chords), which converges geometrically away from the wire: for a 50 mm
        loop, 64 gives relative errors ≤ 1e-6 at 15 mm from the wire and ≤ 1e-10 at 25 mm.
    """

    centres_mm: ArrayLike
    normals: ArrayLike
    radius_mm: float
    centre_mm: ArrayLike | None = None
    segments: int = 64
    _points: np.ndarray = field(init=False, repr=False)  # (N, S, 3) quadrature points, mm
    _tangents: np.ndarray = field(init=False, repr=False)  # (N, S, 3) dl, mm
    _scale: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        centres = _as_points(self.centres_mm, "centres_mm")
        normals = _as_points(self.normals, "normals")
        if centres.ndim != 2 or normals.shape != centres.shape:
            raise MrMotionError(
                f"centres_mm and normals: expected equal shapes (count, 3), got {centres.shape} and {normals.shape}"
            )
        lengths = np.linalg.norm(normals, axis=1, keepdims=True)
        if (lengths < 1e-12).any():
            raise MrMotionError("normals: every loop needs a non-zero axis vector")
        if not (np.isfinite(self.radius_mm) and self.radius_mm > 0):
            raise MrMotionError(f"radius_mm: expected a positive loop radius in mm, got {self.radius_mm}")
        if int(self.segments) != self.segments or self.segments < 8:
            raise MrMotionError(f"segments: expected an integer ≥ 8, got {self.segments}")
        normals = normals / lengths
        # In-plane axes: u = z projected onto the loop plane (x if the axis is along z), v = n × u. This choice
        # rotates with the loop about z, so rotated arrays give exactly rotated fields.
        helper = np.where(np.abs(normals[:, 2:3]) > 0.999, [[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]])
        u = helper - np.sum(helper * normals, axis=1, keepdims=True) * normals
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        v = np.cross(normals, u)
        theta = 2 * np.pi * (np.arange(int(self.segments)) + 0.5) / self.segments
        cos, sin = np.cos(theta)[None, :, None], np.sin(theta)[None, :, None]
        radius = float(self.radius_mm)
        points = centres[:, None] + radius * (cos * u[:, None] + sin * v[:, None])
        tangents = radius * (2 * np.pi / self.segments) * (-sin * u[:, None] + cos * v[:, None])
        object.__setattr__(self, "centres_mm", centres)
        object.__setattr__(self, "normals", normals)
        object.__setattr__(self, "_points", points)
        object.__setattr__(self, "_tangents", tangents)
        object.__setattr__(self, "_scale", 1.0)
        reference = centres.mean(axis=0) if self.centre_mm is None else _as_points(self.centre_mm, "centre_mm")
        if reference.shape != (3,):
            raise MrMotionError(f"centre_mm: expected one point of shape (3,), got {reference.shape}")
        object.__setattr__(self, "centre_mm", reference)
        rss = float(np.sqrt(np.sum(np.abs(self.sensitivities(reference)) ** 2)))
        if not rss > 0:
            raise MrMotionError(f"centre_mm: the coils have no transverse field at {reference}; cannot normalise")
        object.__setattr__(self, "_scale", 1.0 / rss)

    @property
    def count(self) -> int:
        """Number of coils."""
        return int(self._points.shape[0])

    def magnetic_field(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """Biot–Savart field of every loop at scanner points, unnormalised.

        Parameters
        ----------
        points_mm : (..., 3) scanner LPS points, mm.

        Returns
        -------
        (count, ..., 3) float64: ``B · 4π / (μ0 I)`` in 1/mm (scanner x, y, z components), i.e. the field
        ``Σ dl × (r − r') / |r − r'|³`` of a unit current. Not defined on the wire itself.
        """
        points = _as_points(points_mm)
        flat = points.reshape(-1, 3)
        out = np.empty((self.count, flat.shape[0], 3))
        loop_points = self._points.reshape(-1, 3)  # (N·S, 3)
        # (N, S, 6): dl and dl × r' side by side, so one batched matrix product sums both over the segments.
        stacked = np.concatenate([self._tangents, np.cross(self._tangents, self._points)], axis=2)
        squared = np.sum(loop_points**2, axis=1)
        step = max(1, _LOOP_CHUNK // loop_points.shape[0])
        for start in range(0, flat.shape[0], step):
            p = flat[start : start + step]
            # Σ_j dl_j × (p − r'_j) w_j = (Σ_j w_j dl_j) × p − Σ_j w_j (dl_j × r'_j), w_j = |p − r'_j|⁻³.
            distance2 = (p @ (-2.0 * loop_points.T)) + squared
            distance2 += np.sum(p**2, axis=1)[:, None]
            weights = distance2 * np.sqrt(distance2)
            np.reciprocal(weights, out=weights)
            summed = np.matmul(weights.reshape(p.shape[0], self.count, -1).transpose(1, 0, 2), stacked)  # (N, m, 6)
            out[:, start : start + step] = np.cross(summed[..., :3], p[None]) - summed[..., 3:]
        return out.reshape(self.count, *points.shape[:-1], 3)

    def sensitivities(self, points_mm: ArrayLike) -> ComplexArray:
        """Receive sensitivities ``S = scale · (B_x + i·B_y)`` at ``(..., 3)`` scanner points, mm → ``(count, ...)``."""
        b = self.magnetic_field(points_mm)
        return self._scale * (b[..., 0] + 1j * b[..., 1])


def loop_coils(
    count: int,
    head_radius_mm: float = 120.0,
    centre_mm: ArrayLike = (0.0, 0.0, 0.0),
    rings: int = 1,
    coil_radius_mm: float | None = None,
    ring_spacing_mm: float | None = None,
    segments: int = 64,
) -> LoopCoils:
    """A head array: ``count`` flat loops evenly spaced in angle on a cylinder about the scanner z axis.

    Parameters
    ----------
    count : number of coils (even when ``rings=2``).
    head_radius_mm : radius of the cylinder the loop centres lie on, mm (the head fits inside it).
    centre_mm : (3,) centre of the array in scanner LPS, mm; the rSoS is 1 there.
    rings : 1 (one ring, coil c at angle 2πc/count from +x towards +y) or 2 (count/2 coils per ring at
        z = centre ± ring_spacing/2; the second ring is turned by half a spacing).
    coil_radius_mm : loop radius, mm; default ``min(π R / n, 0.6 R)`` for n coils per ring (neighbours touch).
    ring_spacing_mm : distance between the rings along z, mm; default 1.5 × the loop radius.
    segments : quadrature points per loop.

    Each loop's axis points radially outward from the cylinder axis.
    """
    if int(count) != count or count <= 0:
        raise MrMotionError(f"count: expected a positive number of coils, got {count}")
    if rings not in (1, 2):
        raise MrMotionError(f"rings: expected 1 or 2, got {rings}")
    if rings == 2 and count % 2:
        raise MrMotionError(f"count: two rings need an even number of coils, got {count}")
    if not (np.isfinite(head_radius_mm) and head_radius_mm > 0):
        raise MrMotionError(f"head_radius_mm: expected a positive radius in mm, got {head_radius_mm}")
    centre = _as_points(centre_mm, "centre_mm")
    if centre.shape != (3,):
        raise MrMotionError(f"centre_mm: expected shape (3,), got {centre.shape}")
    per_ring = int(count) // rings
    radius = (
        coil_radius_mm if coil_radius_mm is not None else min(np.pi * head_radius_mm / per_ring, 0.6 * head_radius_mm)
    )
    spacing = 1.5 * radius if ring_spacing_mm is None else float(ring_spacing_mm)
    angles, heights = [], []
    for ring in range(rings):
        angles.append(2 * np.pi * (np.arange(per_ring) + 0.5 * ring) / per_ring)
        heights.append(np.full(per_ring, 0.0 if rings == 1 else (ring - 0.5) * spacing))
    angle, height = np.concatenate(angles), np.concatenate(heights)
    normals = np.stack([np.cos(angle), np.sin(angle), np.zeros_like(angle)], axis=1)
    centres = centre + head_radius_mm * normals + height[:, None] * np.array([0.0, 0.0, 1.0])
    return LoopCoils(centres, normals, float(radius), centre_mm=centre, segments=segments)


def head_array(grid, count: int, two_d: bool = False) -> LoopCoils:
    """The receive array that ``mrmotion simulate`` (and the TorchIO transform) puts around an image: ``count``
    loops (:func:`loop_coils`) on a cylinder about the scanner z axis through the centre of ``grid`` (an
    :class:`~mrmotion.physics.encoding.ImageGrid`), of radius 1.1 × the grid's largest half-extent along a scanner
    axis + 20 mm; two rings for a 3-D image with an even count ≥ 4, else one.

    The radius clears the head, not every corner of a wide field of view: the wires may pass through its corners
    (in-plane diagonal beyond the radius), where the maps are large and not smooth. There is only air there, so the
    simulated k-space does not see it."""
    centre = grid.positions(grid.centre_index)
    extent = float(np.max(np.abs(grid.corners() - centre)))
    rings = 2 if not two_d and count % 2 == 0 and count >= 4 else 1
    return loop_coils(count, head_radius_mm=1.1 * extent + 20.0, centre_mm=centre, rings=rings)


# ------------------------------------------------------------------------------------------------ voxel grids
@dataclass(frozen=True, eq=False)
class GridCoilMaps:
    """Coil maps sampled on a voxel grid, interpolated anywhere in the scanner frame.

    Parameters
    ----------
    maps : (count, X, Y) or (count, X, Y, Z) complex sensitivities. A 2-D grid is one slice: its value is used
        for every through-plane position.
    scanner_from_voxel : (4, 4) affine from voxel indices (i, j, k) to scanner LPS mm.
    order : spline order for the real and imaginary parts (1 linear, 3 cubic; scipy.ndimage.map_coordinates,
        mirror boundary, so the spline passes exactly through every grid value).

    Single-precision (complex64) maps are kept as they are and their spline coefficients in float32: half the
    memory (1.1 GB instead of 2.2 GB for 8 coils on a 1-mm head), where a reconstruction needs it most.

    Points outside the grid take the value at the nearest point of the grid's boundary (voxel coordinates are
    clamped to ``[0, n − 1]``): sensitivities are extended, never zeroed, outside the grid.
    """

    maps: ArrayLike
    scanner_from_voxel: ArrayLike
    order: int = 3
    _coefficients: np.ndarray = field(init=False, repr=False)  # (2, count, X, Y, Z) spline coefficients
    _voxel_from_scanner: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        maps = _as_coil_array(self.maps, "maps", keep_single=True)
        if self.order not in (0, 1, 2, 3, 4, 5):
            raise MrMotionError(f"order: expected a spline order 0–5 (1 or 3 usual), got {self.order}")
        affine = as_transform(self.scanner_from_voxel, "scanner_from_voxel")
        if affine.shape != (4, 4):
            raise MrMotionError(f"scanner_from_voxel: expected one (4, 4) affine, got {affine.shape}")
        volume = maps[..., None] if maps.ndim == 3 else maps
        real = np.float32 if maps.dtype == np.complex64 else np.float64
        parts = np.stack([volume.real, volume.imag]).astype(real, copy=False)  # (2, count, X, Y, Z)
        if self.order > 1:  # spline coefficients once, along the spatial axes only
            for axis in (2, 3, 4):
                parts = ndimage.spline_filter1d(parts, self.order, axis=axis, output=real, mode="mirror")
        object.__setattr__(self, "maps", maps)
        object.__setattr__(self, "scanner_from_voxel", affine)
        object.__setattr__(self, "_coefficients", parts)
        object.__setattr__(self, "_voxel_from_scanner", invert(affine, "scanner_from_voxel"))

    @property
    def count(self) -> int:
        """Number of coils."""
        return int(self.maps.shape[0])

    def sensitivities(self, points_mm: ArrayLike) -> ComplexArray:
        """Interpolated sensitivities at ``(..., 3)`` scanner LPS points (mm) → ``(count, ...)`` complex128."""
        points = _as_points(points_mm)
        flat = points.reshape(-1, 3)
        out = np.empty((self.count, flat.shape[0]), dtype=np.complex128)
        for start in range(0, flat.shape[0], _CHUNK):
            coords = apply(self._voxel_from_scanner, flat[start : start + _CHUNK]).T
            coords = np.clip(coords, 0.0, np.array(self._coefficients.shape[2:])[:, None] - 1.0)
            for coil in range(self.count):
                real, imag = (
                    ndimage.map_coordinates(
                        self._coefficients[part, coil], coords, order=self.order, mode="mirror", prefilter=False
                    )
                    for part in (0, 1)
                )
                out[coil, start : start + _CHUNK] = real + 1j * imag
        return out.reshape(self.count, *points.shape[:-1])


def sample_on_grid(coils: CoilMaps, shape: tuple[int, ...], scanner_from_voxel: ArrayLike) -> ComplexArray:
    """Evaluate any :class:`CoilMaps` at the centres of a voxel grid.

    Parameters
    ----------
    coils : the coil model.
    shape : (X, Y) or (X, Y, Z) grid size; a 2-D grid is the slice k = 0.
    scanner_from_voxel : (4, 4) affine from voxel indices to scanner LPS mm.

    Returns
    -------
    (count, *shape) complex128 sensitivities.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) <= 0:
        raise MrMotionError(f"shape: expected (X, Y) or (X, Y, Z) with positive sizes, got {shape}")
    affine = as_transform(scanner_from_voxel, "scanner_from_voxel")
    out = np.empty((coils.count, *shape), dtype=np.complex128)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape[1:]], indexing="ij"), axis=-1).astype(np.float64)
    if len(shape) == 2:
        index = np.concatenate([index, np.zeros((*index.shape[:-1], 1))], axis=-1)
    for i in range(shape[0]):  # one x-plane at a time keeps the point array small
        voxels = np.concatenate([np.full((*index.shape[:-1], 1), float(i)), index], axis=-1)
        out[:, i] = coils.sensitivities(apply(affine, voxels))
    return out


# ------------------------------------------------------------------------------------------------- estimation
METHODS = ("walsh", "espirit")


def estimate_coil_maps(
    coil_images: ArrayLike,
    method: str = "walsh",
    kernel: int | tuple[int, ...] | None = None,
    threshold: float = 0.05,
    reference: str | int = "virtual",
    calibration: int = 24,
) -> ComplexArray:
    """Coil sensitivity maps from fully sampled coil images (same voxel grid, any frame).

    Parameters
    ----------
    coil_images : (count, X, Y) or (count, X, Y, Z) complex coil images.
    method : ``"walsh"``: Walsh, Gmitro & Marcellin, MRM 43:682 (2000): per voxel, the dominant eigenvector of
        the coil covariance averaged over a box of ``kernel`` voxels. ``"espirit"``: Uecker et al., MRM 71:990
        (2014): the eigenvalue-1 eigenvector of the image-space ESPIRiT operator, from ``kernel``-wide k-space
        kernels (singular values above 2% of the largest) fitted in the central ``calibration``-wide region.
    kernel : box width in voxels (walsh, odd, default 7) or k-space kernel width (espirit, default 6); an int or
        one value per spatial axis.
    threshold : background mask: maps are 0 where the rSoS image, box-smoothed (rSoS of the box-averaged power,
        over the Walsh box or 7 voxels for espirit), is below ``threshold`` × its maximum; holes enclosed by
        the mask are filled (dark CSF or bone inside the head keeps its maps). 0 keeps every voxel.
    reference : the phase reference, ``"virtual"``: the phase of a virtual coil, the global principal
        component of the coil images (Buehrer 2007's virtual body coil; its sensitivity rarely vanishes), or an
        int: the phase of that coil. The maps' phase varies smoothly and the combined image takes this phase.
    calibration : width of the central k-space calibration region, samples (espirit only).

    Returns
    -------
    (count, X, Y[, Z]) complex128 maps with Σ_c |S_c|² = 1 inside the mask, 0 outside. The combination
    ``Σ_c conj(S_c) x_c`` then approximates the object up to a smooth phase (the rSoS image in magnitude).
    """
    images = _as_coil_array(coil_images, "coil_images")
    count, spatial = images.shape[0], images.shape[1:]
    if method not in METHODS:
        raise MrMotionError(f"method: expected one of {METHODS}, got {method!r}")
    width = (7 if method == "walsh" else 6) if kernel is None else kernel
    if np.ndim(width) > 1 or np.size(width) not in (1, len(spatial)) or np.min(width) < 1:
        raise MrMotionError(f"kernel: expected a positive int or {len(spatial)} of them, got {width}")
    sizes = tuple(int(k) for k in np.broadcast_to(np.asarray(width), (len(spatial),)))
    if method == "walsh" and any(k % 2 == 0 for k in sizes):
        raise MrMotionError(f"kernel: Walsh box widths must be odd (centred on the voxel), got {sizes}")
    if not (0 <= threshold < 1):
        raise MrMotionError(f"threshold: expected a fraction of the maximum in [0, 1), got {threshold}")
    if not (reference == "virtual" or (isinstance(reference, int | np.integer) and 0 <= reference < count)):
        raise MrMotionError(f"reference: expected 'virtual' or a coil index 0…{count - 1}, got {reference!r}")
    peak = np.abs(images).max()
    if peak == 0:
        raise MrMotionError("coil_images: all values are zero; nothing to estimate maps from")
    images = images / peak
    power = ndimage.uniform_filter(np.sum(np.abs(images) ** 2, axis=0), sizes if method == "walsh" else 7)
    mask = ndimage.binary_fill_holes(power >= threshold**2 * power.max())
    if reference == "virtual":
        gram = np.zeros((count, count), dtype=np.complex128)
        for plane in range(spatial[0]):  # plane by plane: no copy of the whole masked volume
            inside = images[:, plane][:, mask[plane]]
            gram += inside @ inside.conj().T
        weight = np.linalg.eigh(gram)[1][:, -1]
    else:
        weight = np.eye(count)[int(reference)]

    maps = np.zeros(images.shape, dtype=np.complex128)
    if method == "walsh":
        vectors = _walsh(images, sizes, mask)
    else:
        vectors = _espirit(images, sizes, mask, calibration)
    phase = vectors @ weight.conj()  # (V,) the reference coil's value
    phase = np.where(np.abs(phase) > 0, np.conj(phase) / np.maximum(np.abs(phase), 1e-300), 1.0)
    maps[:, mask] = (vectors * phase[:, None]).T
    return maps


def _dominant(matrices: np.ndarray) -> np.ndarray:
    """(V, C, C) Hermitian → (V, C) unit eigenvectors of the largest eigenvalue (batched eigh, chunked)."""
    out = np.empty(matrices.shape[:2], dtype=np.complex128)
    step = max(1, _CHUNK // matrices.shape[1] ** 2)
    for start in range(0, matrices.shape[0], step):
        out[start : start + step] = np.linalg.eigh(matrices[start : start + step])[1][..., -1]
    return out


def _walsh(images: ComplexArray, sizes: tuple[int, ...], mask: np.ndarray) -> ComplexArray:
    """Dominant eigenvectors of the box-filtered coil covariance at the masked voxels, (V, C)."""
    count, spatial = images.shape[0], images.shape[1:]
    halo = sizes[0] // 2
    rows = max(1, (16 * _CHUNK) // (int(np.prod(spatial[1:])) * count * count))  # covariance memory ≤ 256 MB
    vectors = []
    for start in range(0, spatial[0], rows):  # slabs along the first axis, padded by the box half-width
        stop = min(spatial[0], start + rows)
        low, high = max(0, start - halo), min(spatial[0], stop + halo)
        slab = images[:, low:high]
        inside = mask[start:stop]
        covariance = np.empty((int(inside.sum()), count, count), dtype=np.complex128)
        for i in range(count):
            for j in range(i, count):
                product = slab[i] * slab[j].conj()
                smooth = ndimage.uniform_filter(product.real, sizes) + 1j * ndimage.uniform_filter(product.imag, sizes)
                covariance[:, i, j] = smooth[start - low : stop - low][inside]
                covariance[:, j, i] = covariance[:, i, j].conj()
        vectors.append(_dominant(covariance))
    return np.concatenate(vectors)


def _espirit(images: ComplexArray, sizes: tuple[int, ...], mask: np.ndarray, calibration: int) -> ComplexArray:
    """Eigenvalue-1 eigenvectors of the ESPIRiT operator at the masked voxels, (V, C)."""
    count, spatial = images.shape[0], images.shape[1:]
    axes = tuple(range(1, images.ndim))
    if int(np.prod(spatial)) * count * count > 8 * _CHUNK * 16:
        raise MrMotionError(f"method='espirit': grid {spatial} with {count} coils is too large; use 'walsh'")
    # k-space of the ifftshifted images: x_c(t) = Σ_r m_c(r) exp(−2πi t·r/N).
    kspace = np.fft.fftn(np.fft.ifftshift(images, axes=axes), axes=axes)
    kspace = np.fft.fftshift(kspace, axes=axes)
    widths = [min(int(calibration), n) for n in spatial]
    if any(w < k + 1 for w, k in zip(widths, sizes, strict=True)):
        raise MrMotionError(f"calibration: region {widths} must exceed the kernel {sizes} along every axis")
    region = kspace[
        (slice(None), *(slice(n // 2 - w // 2, n // 2 - w // 2 + w) for n, w in zip(spatial, widths, strict=True)))
    ]
    blocks = np.lib.stride_tricks.sliding_window_view(region, sizes, axis=axes)  # (C, *positions, *sizes)
    blocks = np.moveaxis(blocks, 0, len(spatial)).reshape(-1, count * int(np.prod(sizes)))
    # Right singular vectors from the Gram matrix (eigh, σ² = λ): far cheaper than a full SVD of the tall matrix.
    power, vectors = np.linalg.eigh(blocks.conj().T @ blocks)
    kernels = vectors[:, power > 0.02**2 * power.max()].conj().T.reshape(-1, count, *sizes)  # rows of Vᴴ
    # Averaging the projections of all patches onto the kernel row space is, per voxel r, the matrix
    # G(r) = Σ_k α_k(r) α_k(r)ᴴ / Π(sizes) with α_k(r) = Σ_δ a_k[·, δ] exp(+2πi δ·r/N); Gs = s for true maps.
    gram = np.zeros((int(mask.sum()), count, count), dtype=np.complex128)
    # Separable DFT of the small kernels straight onto the (centred) image grid, r' = r + N//2.
    factors = [
        np.exp(2j * np.pi * np.outer(np.arange(n) - n // 2, np.arange(k)) / n)
        for n, k in zip(spatial, sizes, strict=True)
    ]
    step = max(1, (4 * _CHUNK) // (count * int(np.prod(spatial))))
    for start in range(0, kernels.shape[0], step):
        alpha = kernels[start : start + step]
        for axis, factor in enumerate(factors):
            alpha = np.moveaxis(np.tensordot(alpha, factor, axes=([2 + axis], [1])), -1, 2 + axis)
        alpha = alpha[:, :, mask].transpose(2, 1, 0)  # (V, C, K)
        gram += alpha @ alpha.conj().transpose(0, 2, 1)
    return _dominant(gram / np.prod(sizes))
