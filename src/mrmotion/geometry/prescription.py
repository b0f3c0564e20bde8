"""Slice and volume prescriptions: the logical frame of each slice, and voxel ↔ logical ↔ scanner.

Frames (DESIGN.md §2):

* **scanner**: patient coordinates, LPS, mm, origin at the isocentre.
* **logical**: one per slice, axes ``LOGICAL_AXES = (read, phase, slice)`` in that order, mm, origin at the slice
  (FOV) centre. ``scanner_from_logical = [[r p s c], [0 0 0 1]]`` with the unit read/phase/slice directions r, p,
  s as columns and the centre c: a proper rigid transform, so ``s = r × p`` (right-handed; a left-handed set of
  directions is refused with a clear error).
* **voxel**: array indices ``(i_read, j_phase, k_slice)``; voxel centres, the FOV centre at index ``(n − 1)/2``.

Builders read the three common sources of geometry: ISMRMRD acquisition headers (position and read/phase/slice
directions), DICOM (ImageOrientationPatient, ImagePositionPatient, PixelSpacing, SliceThickness) and NIfTI
affines (voxel → RAS, converted here to LPS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from mrmotion.errors import MrMotionError, TransformError
from mrmotion.geometry.transforms import FloatArray, as_transform, make_transform

LOGICAL_AXES = ("read", "phase", "slice")
#: RAS = LPS_FROM_RAS · LPS and vice versa (the matrix is its own inverse).
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DIRECTION_TOLERANCE = 1e-4


def _vector(values: ArrayLike, name: str, width: int = 3) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise MrMotionError(f"{name}: expected {width} numbers, got {values!r}") from None
    if array.shape[-1:] != (width,):
        raise MrMotionError(f"{name}: expected shape (..., {width}), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise MrMotionError(f"{name}: contains NaN or infinite values")
    return array


def scanner_from_logical(
    position_mm: ArrayLike, read_dir: ArrayLike, phase_dir: ArrayLike, slice_dir: ArrayLike | None = None
) -> FloatArray:
    """``(..., 4, 4)`` scanner_from_logical transforms from slice centres and read/phase/slice directions (LPS).

    Directions must be unit length and mutually orthogonal within 1e-4 (they are re-orthonormalised to machine
    precision); ``slice_dir`` defaults to ``read_dir × phase_dir`` and, if given, must equal it (right-handed).
    """
    position = _vector(position_mm, "position_mm")
    read = _vector(read_dir, "read_dir")
    phase = _vector(phase_dir, "phase_dir")
    normal = np.cross(read, phase)
    for name, vector in (("read_dir", read), ("phase_dir", phase)):
        if np.any(np.abs(np.linalg.norm(vector, axis=-1) - 1.0) > _DIRECTION_TOLERANCE):
            raise MrMotionError(f"{name} must be a unit vector, got length {np.linalg.norm(vector, axis=-1)}")
    if np.any(np.abs(np.sum(read * phase, axis=-1)) > _DIRECTION_TOLERANCE):
        raise MrMotionError("read_dir and phase_dir must be orthogonal")
    if slice_dir is not None:
        given = _vector(slice_dir, "slice_dir")
        if np.any(np.sum(given * normal, axis=-1) < 0):
            raise TransformError(
                "slice_dir points opposite to read_dir × phase_dir: the directions are left-handed; "
                "flip slice_dir (and the slice index order) to get a proper logical frame"
            )
        if np.any(np.abs(given - normal) > 10 * _DIRECTION_TOLERANCE):
            raise MrMotionError("slice_dir must be orthogonal to read_dir and phase_dir and of unit length")
    # Gram–Schmidt to machine precision, keeping the read direction.
    read = read / np.linalg.norm(read, axis=-1, keepdims=True)
    phase = phase - np.sum(phase * read, axis=-1, keepdims=True) * read
    phase = phase / np.linalg.norm(phase, axis=-1, keepdims=True)
    rotation = np.stack([read, phase, np.cross(read, phase)], axis=-1)
    return make_transform(rotation, position)


def logical_from_voxel(matrix_size: ArrayLike, voxel_size_mm: ArrayLike) -> FloatArray:
    """``(4, 4)`` logical_from_voxel: voxel centres, scaled by the voxel size, FOV centre at index (n − 1)/2.

    ``matrix_size`` and ``voxel_size_mm`` are given in logical order (read, phase, slice); a 2-D slice has
    ``matrix_size[2] == 1``, which puts the slice centre at index 0.
    """
    size = _vector(matrix_size, "matrix_size")
    spacing = _vector(voxel_size_mm, "voxel_size_mm")
    if np.any(size < 1) or np.any(spacing <= 0):
        raise MrMotionError(f"matrix_size must be ≥ 1 and voxel_size_mm > 0, got {size} and {spacing}")
    return make_transform(np.diag(spacing), -(size - 1.0) / 2.0 * spacing)


@dataclass(frozen=True)
class SlicePrescription:
    """Where one slice (or a 3-D slab) is acquired: its logical frame in scanner LPS mm, FOV and thickness.

    Attributes
    ----------
    position_mm : (3,) centre of the slice/FOV in scanner LPS coordinates, mm.
    read_dir, phase_dir, slice_dir : (3,) unit vectors in scanner LPS coordinates, right-handed.
    fov_mm : (2,) in-plane field of view along (read, phase), mm.
    thickness_mm : slice (or slab) thickness along ``slice_dir``, mm.
    matrix : optional in-plane matrix (n_read, n_phase), used for voxel ↔ logical.
    """

    position_mm: FloatArray
    read_dir: FloatArray
    phase_dir: FloatArray
    slice_dir: FloatArray
    fov_mm: FloatArray
    thickness_mm: float
    matrix: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        # Validates directions (unit, orthogonal, right-handed) once, at construction.
        scanner_from_logical(self.position_mm, self.read_dir, self.phase_dir, self.slice_dir)
        fov = _vector(self.fov_mm, "fov_mm", 2)
        if np.any(fov <= 0) or not np.isfinite(self.thickness_mm) or self.thickness_mm <= 0:
            raise MrMotionError(f"fov_mm and thickness_mm must be > 0, got {fov} and {self.thickness_mm}")
        if self.matrix is not None and (len(self.matrix) != 2 or min(self.matrix) < 1):
            raise MrMotionError(f"matrix must be two positive integers (n_read, n_phase), got {self.matrix}")

    @classmethod
    def from_transform(
        cls,
        scanner_from_logical_matrix: ArrayLike,
        fov_mm: ArrayLike,
        thickness_mm: float,
        matrix: tuple[int, int] | None = None,
    ) -> SlicePrescription:
        """The slice whose logical frame is ``scanner_from_logical_matrix`` (rigid 4×4)."""
        transform = as_transform(scanner_from_logical_matrix, "scanner_from_logical")
        return cls(
            position_mm=transform[:3, 3].copy(),
            read_dir=transform[:3, 0].copy(),
            phase_dir=transform[:3, 1].copy(),
            slice_dir=transform[:3, 2].copy(),
            fov_mm=np.asarray(fov_mm, dtype=np.float64),
            thickness_mm=float(thickness_mm),
            matrix=matrix,
        )

    def scanner_from_logical(self) -> FloatArray:
        """``(4, 4)`` transform from this slice's logical (read, phase, slice) mm to scanner LPS mm."""
        return scanner_from_logical(self.position_mm, self.read_dir, self.phase_dir, self.slice_dir)

    def scanner_from_voxel(self) -> FloatArray:
        """``(4, 4)`` transform from voxel indices (i_read, j_phase, 0) to scanner LPS mm; needs ``matrix``."""
        if self.matrix is None:
            raise MrMotionError("scanner_from_voxel needs the slice's matrix (n_read, n_phase)")
        size = np.array([*self.matrix, 1], dtype=np.float64)
        spacing = np.array([*(np.asarray(self.fov_mm) / size[:2]), self.thickness_mm])
        return self.scanner_from_logical() @ logical_from_voxel(size, spacing)


def stack_scanner_from_logical(slices: list[SlicePrescription]) -> FloatArray:
    """``(N, 4, 4)`` scanner_from_logical of a list of slices."""
    if not slices:
        raise MrMotionError("the prescription holds no slices")
    return np.stack([item.scanner_from_logical() for item in slices])


def slice_from_ismrmrd(acquisition: Any, field_of_view_mm: ArrayLike, matrix: tuple[int, int] | None = None):
    """The slice of an ISMRMRD acquisition header (``ismrmrd.AcquisitionHeader`` or any object/dict with
    ``position``, ``read_dir``, ``phase_dir``, ``slice_dir``), with the encoded ``field_of_view_mm`` (x, y, z) of the
    XML header, z being the slice thickness. ISMRMRD positions and directions are already in LPS mm."""
    fields = {}
    for name in ("position", "read_dir", "phase_dir", "slice_dir"):
        value = acquisition.get(name) if isinstance(acquisition, dict) else getattr(acquisition, name, None)
        if value is None:
            raise MrMotionError(f"ISMRMRD acquisition header lacks the field {name!r}")
        fields[name] = _vector(np.asarray(value, dtype=np.float64), name)
    fov = _vector(field_of_view_mm, "field_of_view_mm")
    return SlicePrescription(
        fields["position"],
        fields["read_dir"],
        fields["phase_dir"],
        fields["slice_dir"],
        fov[:2],
        float(fov[2]),
        matrix,
    )


def dicom_scanner_from_voxel(
    image_orientation_patient: ArrayLike,
    image_position_patient: ArrayLike,
    pixel_spacing: ArrayLike,
    slice_spacing_mm: float,
) -> FloatArray:
    """``(4, 4)`` map from DICOM voxel indices (column c, row r, frame k) to scanner LPS mm (DICOM PS3.3 C.7.6.2).

    ``image_orientation_patient`` = (row direction: column index increases; column direction: row index
    increases); ``pixel_spacing`` = (between rows, between columns) mm; frames step along row × column direction.
    """
    orientation = _vector(image_orientation_patient, "ImageOrientationPatient", 6)
    position = _vector(image_position_patient, "ImagePositionPatient")
    spacing = _vector(pixel_spacing, "PixelSpacing", 2)
    row_dir, column_dir = orientation[:3], orientation[3:]
    linear = np.stack([row_dir * spacing[1], column_dir * spacing[0], np.cross(row_dir, column_dir) * slice_spacing_mm])
    return make_transform(linear.T, position)


def slice_from_dicom(
    image_orientation_patient: ArrayLike,
    image_position_patient: ArrayLike,
    pixel_spacing: ArrayLike,
    slice_thickness_mm: float,
    rows: int,
    columns: int,
    phase_encoding_direction: str = "COL",
) -> SlicePrescription:
    """The slice of a DICOM image (attributes as named in the standard; LPS mm).

    The centre is the middle of the pixel grid (ImagePositionPatient is the centre of the first pixel).
    DICOM does not say which in-plane axis is read: ``phase_encoding_direction`` is the
    InPlanePhaseEncodingDirection attribute: ``"COL"`` (phase along the column direction, the default) or ``"ROW"``.
    """
    if phase_encoding_direction not in ("ROW", "COL"):
        raise MrMotionError(f"InPlanePhaseEncodingDirection must be 'ROW' or 'COL', got {phase_encoding_direction!r}")
    if rows < 1 or columns < 1:
        raise MrMotionError(f"Rows and Columns must be ≥ 1, got {rows} and {columns}")
    voxel = dicom_scanner_from_voxel(image_orientation_patient, image_position_patient, pixel_spacing, 1.0)
    centre = voxel[:3, :3] @ np.array([(columns - 1) / 2.0, (rows - 1) / 2.0, 0.0]) + voxel[:3, 3]
    spacing = _vector(pixel_spacing, "PixelSpacing", 2)
    row_dir = np.asarray(image_orientation_patient, dtype=np.float64)[:3]
    column_dir = np.asarray(image_orientation_patient, dtype=np.float64)[3:]
    extent_row_dir, extent_column_dir = columns * spacing[1], rows * spacing[0]
    if phase_encoding_direction == "COL":
        read, phase, fov = row_dir, column_dir, (extent_row_dir, extent_column_dir)
    else:
        read, phase, fov = column_dir, row_dir, (extent_column_dir, extent_row_dir)
    return SlicePrescription(centre, read, phase, np.cross(read, phase), np.array(fov), float(slice_thickness_mm))


def scanner_from_voxel_nifti(affine_ras: ArrayLike) -> FloatArray:
    """Convert a NIfTI affine (voxel → RAS mm) to voxel → scanner LPS mm."""
    return LPS_FROM_RAS @ as_transform(affine_ras, "NIfTI affine")


def slices_from_nifti(affine_ras: ArrayLike, shape: tuple[int, ...]) -> list[SlicePrescription]:
    """One prescription per slice along the third voxel axis of a NIfTI image (voxel → RAS ``affine_ras``).

    Read runs along voxel axis 0 and phase along axis 1; slice is read × phase (which is voxel axis 2, or its
    opposite when the voxel axes are left-handed). Sheared affines are refused.
    """
    if len(shape) < 3 or min(shape[:3]) < 1:
        raise MrMotionError(f"NIfTI shape must have three positive spatial sizes, got {shape}")
    voxel = scanner_from_voxel_nifti(affine_ras)
    columns = voxel[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0):
        raise MrMotionError("NIfTI affine has a zero-length voxel axis")
    directions = columns / spacing
    gram = directions.T @ directions
    if np.abs(gram - np.eye(3)).max() > _DIRECTION_TOLERANCE:
        raise MrMotionError("NIfTI affine is sheared (voxel axes not orthogonal): not a slice prescription")
    read, phase = directions[:, 0], directions[:, 1]
    fov = np.array([shape[0] * spacing[0], shape[1] * spacing[1]])
    slices = []
    for k in range(shape[2]):
        centre = voxel[:3, :3] @ np.array([(shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0, k]) + voxel[:3, 3]
        slices.append(SlicePrescription(centre, read, phase, np.cross(read, phase), fov, float(spacing[2]), shape[:2]))
    return slices


def slice_from_dicom_dataset(dataset: Any) -> SlicePrescription:
    """The slice of a DICOM dataset (a ``pydicom.Dataset`` or any object with the standard attribute names:
    ImageOrientationPatient, ImagePositionPatient, PixelSpacing, SliceThickness, Rows, Columns and, optionally,
    InPlanePhaseEncodingDirection)."""
    required = ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "SliceThickness", "Rows", "Columns")
    missing = [name for name in required if getattr(dataset, name, None) is None]
    if missing:
        raise MrMotionError(f"DICOM dataset lacks {', '.join(missing)}: cannot place the slice")
    direction = str(getattr(dataset, "InPlanePhaseEncodingDirection", None) or "COL")
    return slice_from_dicom(
        [float(v) for v in dataset.ImageOrientationPatient],
        [float(v) for v in dataset.ImagePositionPatient],
        [float(v) for v in dataset.PixelSpacing],
        float(dataset.SliceThickness),
        int(dataset.Rows),
        int(dataset.Columns),
        direction,
    )
