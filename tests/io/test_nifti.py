import gzip

import nibabel
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mrmotion.errors import InputFileError, MrMotionError, OutputFileError
from mrmotion.geometry.prescription import LPS_FROM_RAS
from mrmotion.geometry.transforms import make_transform
from mrmotion.io.nifti import Image, read_image, write_image
from tests.helpers import save_with_sform_only


def _oblique(spacing=(1.5, 2.0, 3.0)):
    """An oblique voxel → LPS transform: rotation, anisotropic voxels, offset."""
    rotation = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    return make_transform(rotation @ np.diag(spacing), [12.5, -30.25, 44.0])


def _volume(shape=(5, 4, 3), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("name", ["image.nii", "image.nii.gz"])
def test_3d_oblique_round_trip(tmp_path, name):
    data, transform = _volume(), _oblique()
    path = write_image(tmp_path / name, data, transform)
    image = read_image(path)
    assert isinstance(image, Image) and image.data.dtype == np.float64
    np.testing.assert_array_equal(image.data, data)
    stored = nibabel.load(path)
    np.testing.assert_array_equal(image.scanner_from_voxel, LPS_FROM_RAS @ stored.affine)
    np.testing.assert_allclose(image.scanner_from_voxel, transform, rtol=0, atol=1e-5)  # NIfTI-1: float32 affine
    assert stored.header.get_sform(coded=True)[1] == 2  # aligned
    assert stored.header.get_xyzt_units() == ("mm", "sec")
    assert _files(tmp_path) == [name]


def test_lps_conversion_against_nibabel_world_coordinates(tmp_path):
    transform = _oblique()
    path = write_image(tmp_path / "a.nii", _volume(), transform)
    voxel = np.array([2.0, 1.0, 2.0, 1.0])
    ras = nibabel.load(path).affine @ voxel
    lps = read_image(path).scanner_from_voxel @ voxel
    np.testing.assert_allclose(lps[:3], [-ras[0], -ras[1], ras[2]], atol=1e-9)


def test_2d_round_trip_and_single_slice_3d(tmp_path):
    data = _volume((6, 5))
    path = write_image(tmp_path / "slice.nii", data, _oblique())
    assert nibabel.load(path).shape == (6, 5)
    image = read_image(path)
    assert image.data.shape == (6, 5)
    np.testing.assert_array_equal(image.data, data)
    single = tmp_path / "single.nii"
    nibabel.save(nibabel.Nifti1Image(data[:, :, None], np.diag([-2.0, 2.0, 3.0, 1.0])), single)
    image = read_image(single)
    assert image.data.shape == (6, 5)
    np.testing.assert_array_equal(image.scanner_from_voxel, np.diag([2.0, -2.0, 3.0, 1.0]))
    with pytest.raises(InputFileError, match=r"single.nii: expected a 3-D image with more than one slice"):
        read_image(single, allow_2d=False)
    with pytest.raises(InputFileError, match=r"expected a 3-D image with more than one slice, got shape \(6, 5\)"):
        read_image(path, allow_2d=False)


def test_complex_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    data = (rng.normal(size=(4, 3, 2)) + 1j * rng.normal(size=(4, 3, 2))).astype(np.complex64)
    path = write_image(tmp_path / "complex.nii.gz", data.astype(np.complex128), np.eye(4))
    assert nibabel.load(path).get_data_dtype() == np.complex64
    image = read_image(path)
    assert image.data.dtype == np.complex64
    np.testing.assert_array_equal(image.data, data)


def test_scaling_applied_and_header_preserved(tmp_path):
    source = tmp_path / "scaled.nii"
    stored = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    original = nibabel.Nifti1Image(stored, np.diag([2.0, 3.0, 4.0, 1.0]))
    original.header.set_slope_inter(2.0, 1.0)
    original.header.set_xyzt_units("mm", "msec")
    original.header["descrip"] = b"subject 7"
    original.header.set_intent("estimate")
    original.set_sform(original.affine, code="scanner")
    original.set_qform(original.affine, code="scanner")
    nibabel.save(original, source)

    image = read_image(source)
    np.testing.assert_array_equal(image.data, 2.0 * stored + 1.0)
    moved = image.scanner_from_voxel @ make_transform(np.eye(3), [1.0, 0.0, 0.0])
    out = write_image(tmp_path / "out.nii", image.data, moved, header=image.header, inputs=[source])
    back = nibabel.load(out)
    assert back.header["descrip"] == b"subject 7"
    assert back.header.get_intent()[0] == "estimate"
    assert back.header.get_xyzt_units() == ("mm", "msec")
    assert back.header.get_sform(coded=True)[1] == 1 and back.header.get_qform(coded=True)[1] == 1
    assert back.get_data_dtype() == np.float32
    np.testing.assert_array_equal(read_image(out).data, 2.0 * stored + 1.0)
    np.testing.assert_array_equal(read_image(out).scanner_from_voxel, moved)


def test_nifti2_header_writes_nifti2(tmp_path):
    source = tmp_path / "two.nii"
    nibabel.save(nibabel.Nifti2Image(_volume(), np.eye(4)), source)
    image = read_image(source)
    out = write_image(tmp_path / "copy.nii", image.data, _oblique(), header=image.header)
    assert isinstance(nibabel.load(out), nibabel.Nifti2Image)
    np.testing.assert_array_equal(read_image(out).scanner_from_voxel, _oblique())  # NIfTI-2 keeps float64


def test_singleton_fourth_axis_squeezed(tmp_path):
    path = tmp_path / "v.nii"
    nibabel.save(nibabel.Nifti1Image(_volume((3, 4, 5, 1)), np.eye(4)), path)
    assert read_image(path).data.shape == (3, 4, 5)


def test_gz_output_is_reproducible(tmp_path):
    first = write_image(tmp_path / "a.nii.gz", _volume(), _oblique())
    second = write_image(tmp_path / "b.nii.gz", _volume(), _oblique())
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((3, 4, 5, 2), np.float32), r"expected a 2-D or 3-D image, got shape \(3, 4, 5, 2\)"),
        (np.zeros(7, np.float32), r"expected a 2-D or 3-D image, got shape \(7,\)"),
        (np.zeros((0, 4, 3), np.float32), r"the image is empty \(shape \(0, 4, 3\)\)"),
        (np.array([[[np.nan, np.inf], [1, 2]], [[np.nan, 0], [0, 0]]], np.float32), r"has 3 NaN or infinite voxel"),
    ],
)
def test_bad_images_refused_on_read(tmp_path, array, message):
    path = tmp_path / "bad.nii"
    nibabel.save(nibabel.Nifti1Image(array, np.eye(4)), path)
    with pytest.raises(InputFileError, match=message) as info:
        read_image(path)
    assert "bad.nii" in str(info.value)


@pytest.mark.parametrize(
    "affine",
    [np.diag([2.0, 2.0, 0.0, 1.0]), np.array([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1]])],
    ids=["zero-length axis", "parallel axes"],
)
def test_singular_affines_refused_on_read_and_write(tmp_path, affine):
    path = tmp_path / "flat.nii"
    save_with_sform_only(path, _volume((4, 4, 3)), affine)
    with pytest.raises(InputFileError, match=r"flat.nii: the affine is singular"):
        read_image(path)
    with pytest.raises(MrMotionError, match=r"the affine is singular"):
        write_image(tmp_path / "out.nii", _volume((4, 4, 3)), LPS_FROM_RAS @ affine)
    assert _files(tmp_path) == ["flat.nii"]


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(InputFileError, match=r"absent.nii: NIfTI image file does not exist"):
        read_image(tmp_path / "absent.nii")
    junk = tmp_path / "junk.nii"
    junk.write_bytes(b"this is not an image" * 30)
    with pytest.raises(InputFileError, match=r"junk.nii: not a readable NIfTI image"):
        read_image(junk)
    good = write_image(tmp_path / "good.nii.gz", _volume((20, 20, 20)), np.eye(4))
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(gzip.compress(gzip.decompress(good.read_bytes())[:1000]))
    with pytest.raises(InputFileError, match=r"truncated.nii.gz: cannot read the voxel data"):
        read_image(truncated)
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # gzip stream ends early
    with pytest.raises(InputFileError, match=r"cut.nii.gz: cannot read the voxel data \(EOFError"):
        read_image(cut)
    analyze = tmp_path / "old.img"
    nibabel.save(nibabel.AnalyzeImage(_volume(), np.eye(4)), analyze)
    with pytest.raises(InputFileError, match=r"old.img: not a NIfTI image \(nibabel reads it as \w*AnalyzeImage\)"):
        read_image(analyze)


def test_output_equal_to_input_is_refused_and_untouched(tmp_path):
    path = write_image(tmp_path / "in.nii", _volume(), np.eye(4))
    before = path.read_bytes()
    with pytest.raises(OutputFileError, match="is also an input"):
        write_image(path, _volume(seed=3), np.eye(4), inputs=[path])
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["in.nii"]


@pytest.mark.parametrize(
    ("name", "data", "transform", "error", "message"),
    [
        ("x.nii", np.zeros((2, 3, 4, 5)), np.eye(4), MrMotionError, r"expected a 2-D or 3-D image, got shape"),
        ("x.nii", np.zeros((0, 3)), np.eye(4), MrMotionError, r"the image is empty"),
        ("x.nii", np.full((2, 2), np.nan), np.eye(4), MrMotionError, r"has 4 NaN or infinite voxel\(s\)"),
        ("x.nii", np.array([["a"]]), np.eye(4), MrMotionError, r"must be real or complex numbers"),
        ("x.nii", np.zeros((2, 2)), np.eye(3), MrMotionError, r"scanner_from_voxel: expected shape \(\.\.\., 4, 4\)"),
        ("x.img", np.zeros((2, 2)), np.eye(4), OutputFileError, r"expected a file name ending in .nii or .nii.gz"),
        ("missing/x.nii", np.zeros((2, 2)), np.eye(4), OutputFileError, r"folder .* does not exist"),
    ],
)
def test_bad_writes_leave_nothing(tmp_path, name, data, transform, error, message):
    existing = write_image(tmp_path / "x.nii", np.ones((2, 2)), np.eye(4)) if name == "x.nii" else None
    before = existing.read_bytes() if existing else None
    with pytest.raises(error, match=message):
        write_image(tmp_path / name, data, transform)
    assert _files(tmp_path) == (["x.nii"] if existing else [])
    if existing:
        assert existing.read_bytes() == before
