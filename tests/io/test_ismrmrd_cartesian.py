"""Cartesian ISMRMRD files from other tools: read from their standard fields (mrmotion.io.ismrmrd_cartesian)."""

import h5py
import ismrmrd
import ismrmrd.xsd as xsd
import numpy as np
import pytest

from mrmotion.errors import InputFileError
from mrmotion.io.kspace_h5 import KSpaceData, read_kspace, write_kspace
from mrmotion.physics.sampling import Sampling, cartesian
from tests.helpers import random_rigid


def _as_foreign(ours, path):
    """The file ``ours`` as another tool would have written it: the same header without mrmotion's user parameters,
    the same acquisitions, no exact copies and no coil maps."""
    with h5py.File(ours, "r") as source:
        header = xsd.CreateFromDocument(source["dataset/xml"][0])
        header.userParameters = None
        with ismrmrd.Dataset(str(path), mode="w") as dataset:
            dataset.write_xml_header(xsd.ToXML(header))
        with h5py.File(path, "a") as target:
            source.copy(source["dataset/data"], target["dataset"], "data")
    return path


def _scan(sampling, seed=0):
    rng = np.random.default_rng(seed)
    data = (rng.normal(size=(3, len(sampling))) + 1j * rng.normal(size=(3, len(sampling)))).astype(np.complex64)
    return KSpaceData(data, sampling, random_rigid(rng))


@pytest.mark.parametrize(
    "sampling",
    [
        cartesian((8, 6, 4), (2.0, 2.5, 3.0), mode="3d", order="interleaved", shots=2, seed=1),
        cartesian((8, 6, 5), (2.0, 2.5, 4.0), mode="2d", order="random", seed=2),
        cartesian((8, 6, 1), (1.5, 1.5, 5.0), mode="2d", order="centric"),
    ],
    ids=["3d-interleaved", "2d-multislice-random", "2d-single-slice"],
)
def test_standard_fields_give_the_same_scan(tmp_path, sampling):
    kspace = _scan(sampling)
    foreign = _as_foreign(write_kspace(tmp_path / "ours.h5", kspace), tmp_path / "foreign.h5")
    back = read_kspace(foreign)
    order = back.sampling
    np.testing.assert_array_equal(back.data, kspace.data)
    np.testing.assert_array_equal(order.grid_index, sampling.grid_index)
    np.testing.assert_allclose(order.k_logical, sampling.k_logical, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(order.matrix, sampling.matrix)
    np.testing.assert_allclose(order.voxel_size_mm, sampling.voxel_size_mm, rtol=1e-6)
    assert order.mode == sampling.mode
    np.testing.assert_array_equal(order.slice_index, sampling.slice_index)
    # time stamps are 2.5 ms ticks of each readout's start (ours starts at 0): within half a tick, order kept
    assert np.abs(order.time_s - (sampling.time_s - sampling.time_s.min())).max() <= 1.25e-3 + 1e-9
    np.testing.assert_allclose(back.scanner_from_logical, kspace.scanner_from_logical, atol=2e-5)
    assert back.coil_maps is None and back.noise_std is None


def test_reversed_lines(tmp_path):
    sampling = cartesian((6, 4, 2), (2.0, 2.0, 2.0), mode="3d")
    order = np.arange(len(sampling)).reshape(-1, 6)
    order[1::2] = order[1::2, ::-1]  # every other line read backwards (EPI), at the same times
    index = order.ravel()
    backwards = Sampling(
        sampling.k_logical[index], sampling.time_s, sampling.shot, sampling.slice_index, sampling.matrix,
        sampling.voxel_size_mm, "3d", sampling.grid_index[index],
    )  # fmt: skip
    kspace = _scan(backwards)
    back = read_kspace(_as_foreign(write_kspace(tmp_path / "ours.h5", kspace), tmp_path / "foreign.h5"))
    np.testing.assert_array_equal(back.sampling.grid_index, backwards.grid_index)


def _header(matrix=(16, 6, 1), fov=(256.0, 48.0, 5.0), trajectory=xsd.trajectoryType.CARTESIAN, centre_1=3):
    space = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=matrix[0], y=matrix[1], z=matrix[2]),
        fieldOfView_mm=xsd.fieldOfViewMm(x=fov[0], y=fov[1], z=fov[2]),
    )
    step_1 = xsd.limitType(minimum=0, maximum=matrix[1] - 1, center=centre_1)
    limits = xsd.encodingLimitsType(kspace_encoding_step_1=step_1)
    return xsd.ToXML(
        xsd.ismrmrdHeader(
            experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=123_000_000),
            encoding=[
                xsd.encodingType(encodedSpace=space, reconSpace=space, encodingLimits=limits, trajectory=trajectory)
            ],
        )
    )


def _scanner_file(path, lines, header=None, noise=True):
    """A 2-D Cartesian scan written with ismrmrd's own API, as a converter would: a noise readout first, then one
    readout per entry of ``lines`` (dicts of header fields to set), 2 coils, 16 samples 10 µs apart with 2
    discarded at the start, centre sample 10, readouts 2 ticks (5 ms) apart, read along x."""
    with ismrmrd.Dataset(str(path), mode="w") as dataset:
        dataset.write_xml_header(header or _header())
        if noise:
            acquisition = ismrmrd.Acquisition.from_array(np.ones((2, 16), np.complex64))
            acquisition.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
            dataset.append_acquisition(acquisition)
        for number, fields in enumerate(lines):
            coils = fields.get("coils", 2)
            values = (np.arange(16 * coils).reshape(coils, 16) + 100 * number).astype(np.complex64)
            acquisition = ismrmrd.Acquisition.from_array(values)
            acquisition.discard_pre, acquisition.center_sample, acquisition.sample_time_us = 2, 10, 10.0
            acquisition.acquisition_time_stamp = 400 + 2 * number
            acquisition.read_dir[:] = (1, 0, 0)
            acquisition.phase_dir[:] = (0, 1, 0)
            acquisition.slice_dir[:] = (0, 0, 1)
            acquisition.position[:] = (0, 0, 12.5)
            acquisition.idx.kspace_encode_step_1 = number
            for name, value in fields.items():
                if name == "coils":
                    continue
                if name == "flag":
                    acquisition.set_flag(value)
                elif name.startswith("idx."):
                    setattr(acquisition.idx, name[4:], value)
                else:
                    getattr(acquisition, name)[:] = value
            dataset.append_acquisition(acquisition)
    return path


def test_slices_numbered_in_acquisition_order_are_stacked_along_slice_dir(tmp_path):
    """Counters 0, 1, 2 at z = 20, 10, 15 mm (an interleaved numbering): slice 0 of the result is the one at 10 mm,
    and the stack is centred at 15 mm with 5-mm spacing."""
    lines = [{"idx.slice": number, "position": (0, 0, z)} for number, z in ((0, 20.0), (1, 10.0), (2, 15.0))]
    kspace = read_kspace(_scanner_file(tmp_path / "scan.h5", lines))
    sampling = kspace.sampling
    assert list(np.unique(sampling.slice_index[sampling.shot == 0])) == [2]  # the first readout: counter 0, 20 mm
    assert list(np.unique(sampling.slice_index[sampling.shot == 1])) == [0]
    np.testing.assert_array_equal(sampling.matrix, [16, 6, 3])
    np.testing.assert_allclose(sampling.voxel_size_mm[2], 5.0)
    np.testing.assert_allclose(kspace.scanner_from_logical[:3, 3], [0, 0, 15.0])


def test_a_converter_style_file(tmp_path):
    path = _scanner_file(tmp_path / "scan.h5", [{} for _ in range(6)])
    kspace = read_kspace(path)
    sampling = kspace.sampling
    assert kspace.data.shape == (2, 6 * 14)  # the noise readout and the discarded samples are gone
    np.testing.assert_array_equal(kspace.data[:, :14], (np.arange(32).reshape(2, 16)[:, 2:]).astype(np.complex64))
    first = sampling.grid_index[:14]
    np.testing.assert_array_equal(first[:, 0], np.arange(2, 16) - 10 + 8)  # read index s − centre + n//2
    assert set(first[:, 1]) == {0 - 3 + 3} and set(first[:, 2]) == {0}  # phase: step − centre + n//2
    np.testing.assert_allclose(sampling.k_logical[0], [2 * np.pi * (2 - 10) / 256.0, 2 * np.pi * -3 / 48.0, 0.0])
    np.testing.assert_allclose(sampling.voxel_size_mm, [16.0, 8.0, 5.0])
    np.testing.assert_allclose(sampling.time_s[:3], [20e-6, 30e-6, 40e-6])  # from the first kept readout
    np.testing.assert_allclose(sampling.time_s[14], 5e-3 + 20e-6)  # 2 ticks later
    np.testing.assert_allclose(kspace.scanner_from_logical[:3, 3], [0, 0, 12.5])
    assert sampling.mode == "2d"


@pytest.mark.parametrize(
    ("lines", "header", "noise", "message"),
    [
        ([{}] * 2, _header(trajectory=xsd.trajectoryType.RADIAL), True, "only Cartesian"),
        ([{}, {"idx.repetition": 1}], None, True, "idx.repetition"),
        ([{}, {"read_dir": (0, 1, 0), "phase_dir": (1, 0, 0)}], None, True, "directions change"),
        ([{}, {"position": (0, 0, 14.0)}], None, True, "slice 0 moves"),
        ([{}, {"idx.slice": 1, "position": (0, 0, 20.0)}, {"idx.slice": 2, "position": (0, 0, 22.0)}], None, True,
         "equally spaced"),
        ([{}] * 6, _header(centre_1=0), True, "outside the encoded matrix"),
        ([{"flag": ismrmrd.ACQ_IS_NAVIGATION_DATA}], None, True, "no imaging acquisitions"),
        ([{"read_dir": (1, 1, 0)}], None, False, "orthonormal"),
        ([{}, {"coils": 3}], None, True, "different or zero coil counts"),
    ],
)  # fmt: skip
def test_what_cannot_be_read_is_refused(tmp_path, lines, header, noise, message):
    path = _scanner_file(tmp_path / "scan.h5", lines, header, noise)
    with pytest.raises(InputFileError, match=message):
        read_kspace(path)


def test_oversampled_readout_is_reconstructed_at_the_recon_field_of_view(tmp_path):
    """A converter-style 2-D scan with the readout oversampled 2× (encodedSpace 64 × 24 over 256 × 96 mm,
    reconSpace 32 × 24 over 128 × 96 mm): `mrmotion recon` shows the reconSpace field of view, centred where the
    scan's position says, and the object in it."""
    import nibabel as nib
    from typer.testing import CliRunner

    from mrmotion.cli import app
    from mrmotion.io.ismrmrd_cartesian import RECON_FOV

    nx, ny = 32, 24
    x, y = np.meshgrid(np.arange(2 * nx) - nx, np.arange(ny) - ny // 2, indexing="ij")
    image = ((x / 10.0) ** 2 + (y / 7.0) ** 2 < 1).astype(float) * (1 + 0.3 * (x > 0))  # an ellipse, brighter right
    coils = np.stack([np.exp(-((x - 20) ** 2 + y**2) / 900.0), np.exp(-((x + 20) ** 2 + y**2) / 900.0)])
    kspace = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(coils * image, axes=(1, 2)), axes=(1, 2)), axes=(1, 2))
    space = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=2 * nx, y=ny, z=1), fieldOfView_mm=xsd.fieldOfViewMm(x=256.0, y=96.0, z=5.0)
    )
    shown = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=nx, y=ny, z=1), fieldOfView_mm=xsd.fieldOfViewMm(x=128.0, y=96.0, z=5.0)
    )
    limits = xsd.encodingLimitsType(kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=ny - 1, center=ny // 2))
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=123_000_000),
        encoding=[
            xsd.encodingType(encodedSpace=space, reconSpace=shown, encodingLimits=limits, trajectory="cartesian")
        ],
    )
    path = tmp_path / "oversampled.h5"
    with ismrmrd.Dataset(str(path), mode="w") as dataset:
        dataset.write_xml_header(xsd.ToXML(header))
        for line in range(ny):
            acquisition = ismrmrd.Acquisition.from_array(kspace[:, :, line].astype(np.complex64))
            acquisition.center_sample, acquisition.sample_time_us = nx, 5.0
            acquisition.acquisition_time_stamp, acquisition.idx.kspace_encode_step_1 = 4 * line, line
            acquisition.read_dir[:], acquisition.phase_dir[:], acquisition.slice_dir[:] = (
                (1, 0, 0),
                (0, 1, 0),
                (0, 0, 1),
            )
            acquisition.position[:] = (10.0, -20.0, 30.0)
            dataset.append_acquisition(acquisition)
    assert read_kspace(path).extra[RECON_FOV] == [128.0, 96.0, 5.0]
    output = tmp_path / "recon.nii.gz"
    result = CliRunner().invoke(app, ["recon", str(path), "-o", str(output)])
    assert result.exit_code == 0, result.output
    written = nib.load(output)
    assert written.shape == (nx, ny)
    centre = written.affine @ [nx // 2, ny // 2, 0, 1]  # RAS; the scan's position (10, -20, 30) is LPS
    np.testing.assert_allclose(centre[:3], [-10.0, 20.0, 30.0], atol=1e-4)
    shown_part = image[nx // 2 : nx // 2 + nx]
    correlation = np.corrcoef(np.abs(np.asarray(written.dataobj)).ravel(), shown_part.ravel())[0, 1]
    assert correlation > 0.95, correlation
