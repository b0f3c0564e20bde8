import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings

from mrmotion.errors import MrMotionError, TransformError
from mrmotion.geometry.prescription import (
    LPS_FROM_RAS,
    SlicePrescription,
    dicom_scanner_from_voxel,
    logical_from_voxel,
    scanner_from_logical,
    slice_from_dicom,
    slice_from_ismrmrd,
    slices_from_nifti,
)
from mrmotion.geometry.transforms import apply, is_rigid
from tests.helpers import random_rigid, seeds


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_scanner_from_logical_is_rigid_with_directions_as_columns(seed):
    frame = random_rigid(np.random.default_rng(seed))
    rebuilt = scanner_from_logical(frame[:3, 3], frame[:3, 0], frame[:3, 1], frame[:3, 2])
    np.testing.assert_allclose(rebuilt, frame, atol=1e-12)
    assert is_rigid(rebuilt, tol=1e-14)


def test_voxel_logical_scanner_chain():
    size, spacing = np.array([4, 6, 1]), np.array([2.0, 3.0, 5.0])
    logical = logical_from_voxel(size, spacing)
    np.testing.assert_allclose(apply(logical, [1.5, 2.5, 0]), [0, 0, 0])  # FOV centre at (n − 1)/2
    np.testing.assert_allclose(apply(logical, [0, 0, 0]), [-3.0, -7.5, 0])
    item = SlicePrescription([10, 20, 30], [0, 1, 0], [1, 0, 0], [0, 0, -1], [8.0, 18.0], 5.0, (4, 6))
    np.testing.assert_allclose(apply(item.scanner_from_voxel(), [1.5, 2.5, 0]), [10, 20, 30])
    np.testing.assert_allclose(apply(item.scanner_from_voxel(), [2.5, 2.5, 0]), [10, 22, 30])


def test_ismrmrd_header_object():
    ismrmrd = pytest.importorskip("ismrmrd")
    header = ismrmrd.AcquisitionHeader()
    header.position[:] = [1.0, -2.0, 3.0]
    header.read_dir[:] = [0.0, 1.0, 0.0]
    header.phase_dir[:] = [1.0, 0.0, 0.0]
    header.slice_dir[:] = [0.0, 0.0, -1.0]
    item = slice_from_ismrmrd(header, [220.0, 200.0, 4.0])
    np.testing.assert_allclose(item.scanner_from_logical()[:3, 3], [1, -2, 3])
    np.testing.assert_allclose(item.fov_mm, [220, 200])
    assert item.thickness_mm == 4.0
    with pytest.raises(MrMotionError, match="lacks the field 'slice_dir'"):
        slice_from_ismrmrd({"position": [0, 0, 0], "read_dir": [1, 0, 0], "phase_dir": [0, 1, 0]}, [1, 1, 1])


def test_dicom_geometry_against_the_standard_formula():
    # Sagittal-ish oblique slice: row direction along −P, column direction along −S (typical sagittal).
    iop = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
    ipp = [-5.0, -100.0, 80.0]
    spacing = [0.8, 0.5]  # between rows, between columns
    rows, columns = 200, 256
    item = slice_from_dicom(iop, ipp, spacing, 3.0, rows, columns)
    voxel = dicom_scanner_from_voxel(iop, ipp, spacing, 3.0)
    # Pixel (column c, row r) at IPP + c·Δcol·row_dir + r·Δrow·col_dir
    np.testing.assert_allclose(apply(voxel, [10, 20, 0]), np.add(ipp, [0, 10 * 0.5, -20 * 0.8]))
    np.testing.assert_allclose(item.position_mm, apply(voxel, [(columns - 1) / 2, (rows - 1) / 2, 0]))
    np.testing.assert_allclose(item.read_dir, [0, 1, 0])
    np.testing.assert_allclose(item.fov_mm, [256 * 0.5, 200 * 0.8])
    row_phase = slice_from_dicom(iop, ipp, spacing, 3.0, rows, columns, phase_encoding_direction="ROW")
    np.testing.assert_allclose(row_phase.phase_dir, [0, 1, 0])
    np.testing.assert_allclose(row_phase.fov_mm, [200 * 0.8, 256 * 0.5])
    assert is_rigid(row_phase.scanner_from_logical())
    with pytest.raises(MrMotionError, match="InPlanePhaseEncodingDirection"):
        slice_from_dicom(iop, ipp, spacing, 3.0, rows, columns, phase_encoding_direction="X")


@pytest.mark.parametrize("flip", [False, True])
def test_nifti_slices_agree_with_nibabel_affine(flip):
    affine = nib.affines.from_matvec(np.diag([0.9, 0.9, 3.0]), [-90.0, -100.0, -20.0])
    if flip:  # left-handed voxel axes (LAS storage)
        affine = affine @ np.diag([-1.0, 1.0, 1.0, 1.0])
    shape = (10, 12, 5)
    slices = slices_from_nifti(affine, shape)
    assert len(slices) == 5
    lps_from_voxel = LPS_FROM_RAS @ affine
    for k, item in enumerate(slices):
        np.testing.assert_allclose(item.position_mm, apply(lps_from_voxel, [4.5, 5.5, k]))
        assert is_rigid(item.scanner_from_logical())
        np.testing.assert_allclose(apply(item.scanner_from_voxel(), [3, 7, 0]), apply(lps_from_voxel, [3, 7, k]))
    with pytest.raises(MrMotionError, match="sheared"):
        slices_from_nifti(nib.affines.from_matvec([[1, 0.3, 0], [0, 1, 0], [0, 0, 1]]), shape)


def test_bad_directions():
    with pytest.raises(TransformError, match="left-handed"):
        scanner_from_logical([0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, -1])
    with pytest.raises(MrMotionError, match="unit vector"):
        scanner_from_logical([0, 0, 0], [2, 0, 0], [0, 1, 0])
    with pytest.raises(MrMotionError, match="orthogonal"):
        scanner_from_logical([0, 0, 0], [1, 0, 0], [np.sqrt(0.5), np.sqrt(0.5), 0])
    with pytest.raises(MrMotionError, match="NaN"):
        scanner_from_logical([0, np.nan, 0], [1, 0, 0], [0, 1, 0])
    with pytest.raises(MrMotionError, match=r"position_mm: expected shape"):
        scanner_from_logical([0, 0], [1, 0, 0], [0, 1, 0])
    with pytest.raises(MrMotionError, match="fov_mm and thickness_mm must be > 0"):
        SlicePrescription([0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [100.0, 100.0], 0.0)
    with pytest.raises(MrMotionError, match="needs the slice's matrix"):
        SlicePrescription([0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [100.0, 100.0], 2.0).scanner_from_voxel()


def test_dicom_dataset_attributes():
    from types import SimpleNamespace

    from mrmotion.geometry.prescription import slice_from_dicom_dataset

    dataset = SimpleNamespace(
        ImageOrientationPatient=["1", "0", "0", "0", "1", "0"],
        ImagePositionPatient=[-100.0, -120.0, 30.0],
        PixelSpacing=[1.0, 0.5],
        SliceThickness="3",
        Rows=240,
        Columns=400,
        InPlanePhaseEncodingDirection="ROW",
    )
    item = slice_from_dicom_dataset(dataset)
    np.testing.assert_allclose(item.position_mm, [-100 + 199.5 * 0.5, -120 + 119.5, 30])
    np.testing.assert_allclose(item.phase_dir, [1, 0, 0])
    np.testing.assert_allclose(item.fov_mm, [240.0, 200.0])
    del dataset.PixelSpacing
    with pytest.raises(MrMotionError, match="lacks PixelSpacing"):
        slice_from_dicom_dataset(dataset)
