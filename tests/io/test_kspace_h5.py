import h5py
import ismrmrd
import ismrmrd.xsd
import numpy as np
import pytest

from mrmotion.errors import InputFileError, MrMotionError, OutputFileError
from mrmotion.io.kspace_h5 import KSpaceData, read_kspace, readout_bounds, write_kspace
from mrmotion.physics.sampling import Sampling, grid_k
from tests.helpers import random_rigid

DWELL_S = 4e-6


def _cartesian(mode="3d", matrix=(4, 3, 2), voxel=(2.0, 2.5, 3.0), seed=0):
    """Full Cartesian sampling: one readout per (phase, slice/partition) line, lines in random order, 2 per shot."""
    rng = np.random.default_rng(seed)
    lines = [(j, k) for k in range(matrix[2]) for j in range(matrix[1])]
    order = rng.permutation(len(lines))
    grid, time, shot = [], [], []
    for number, line in enumerate(order):
        j, k = lines[line]
        for i in range(matrix[0]):
            grid.append((i, j, k))
            time.append(0.01 * number + DWELL_S * i)
            shot.append(number // 2)
    grid = np.array(grid)
    k = grid_k(grid, np.array(matrix), np.array(voxel))
    slices = grid[:, 2] if mode == "2d" else np.zeros(len(grid), dtype=np.int64)
    if mode == "2d":
        k[:, 2] = 0.0
    return Sampling(k, np.array(time), np.array(shot), slices, np.array(matrix), np.array(voxel), mode, grid)


def _radial(spokes=5, samples=6, slices=2):
    """2-D multi-slice golden-angle radial, one spoke per shot, slices interleaved."""
    k, time, shot, slice_index = [], [], [], []
    radius = np.linspace(-0.8, 0.8, samples)
    for number in range(spokes * slices):
        angle = number * np.pi * 0.618034
        k.extend(np.stack([radius * np.cos(angle), radius * np.sin(angle), 0 * radius], axis=1))
        time.extend(0.005 * number + DWELL_S * np.arange(samples))
        shot.extend([number] * samples)
        slice_index.extend([number % slices] * samples)
    return Sampling(
        np.array(k), np.array(time), np.array(shot), np.array(slice_index), np.array([8, 8, slices]),
        np.array([2.0, 2.0, 4.0]), "2d", None,
    )  # fmt: skip


def _kspace(sampling, coils=3, maps=True, seed=1, **kwargs):
    rng = np.random.default_rng(seed)
    shape = (coils, len(sampling))
    data = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    coil_maps = None
    if maps:
        grid = (coils, *sampling.matrix)
        coil_maps = (rng.normal(size=grid) + 1j * rng.normal(size=grid)).astype(np.complex64)
    return KSpaceData(data, sampling, random_rigid(rng), coil_maps, **kwargs)


def _assert_same(back, kspace):
    assert back.data.dtype == np.complex64
    np.testing.assert_array_equal(back.data, kspace.data)
    for name in ("k_logical", "time_s", "shot", "slice_index", "matrix", "voxel_size_mm"):
        before, after = getattr(kspace.sampling, name), getattr(back.sampling, name)
        assert after.dtype == before.dtype, name
        np.testing.assert_array_equal(after, before, err_msg=name)
    if kspace.sampling.grid_index is None:
        assert back.sampling.grid_index is None
    else:
        np.testing.assert_array_equal(back.sampling.grid_index, kspace.sampling.grid_index)
    assert back.sampling.mode == kspace.sampling.mode
    np.testing.assert_array_equal(back.scanner_from_logical, kspace.scanner_from_logical)
    if kspace.coil_maps is None:
        assert back.coil_maps is None
    else:
        assert back.coil_maps.dtype == np.complex64
        np.testing.assert_array_equal(back.coil_maps, kspace.coil_maps)
    assert back.noise_std == kspace.noise_std
    assert back.extra == kspace.extra


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("sampling", "maps", "readouts"),
    [
        (_cartesian("3d"), True, 6),
        (_cartesian("2d", (4, 3, 3)), False, 9),
        (_radial(), True, 10),
        (_radial(), False, 10),
    ],
    ids=["cartesian-3d-maps", "cartesian-2d", "radial-maps", "radial"],
)
def test_round_trip_is_exact(tmp_path, sampling, maps, readouts):
    extra = {"motion": {"kind": "rigid", "angles_deg": [1.5, 0.1 + 0.2]}, "seed": 7}
    kspace = _kspace(sampling, maps=maps, noise_std=0.1 + 0.2, extra=extra)
    path = write_kspace(tmp_path / "k.h5", kspace)
    assert _files(tmp_path) == ["k.h5"]
    _assert_same(read_kspace(path), kspace)
    assert len(readout_bounds(sampling)) - 1 == readouts
    with ismrmrd.Dataset(str(path), mode="r") as dataset:
        assert dataset.number_of_acquisitions() == readouts


def test_round_trip_without_optional_fields(tmp_path):
    kspace = _kspace(_cartesian(), coils=1, maps=False)
    assert kspace.noise_std is None and kspace.extra == {}
    _assert_same(read_kspace(write_kspace(tmp_path / "k.mrd", kspace)), kspace)


def test_standard_ismrmrd_view_of_cartesian_2d(tmp_path):
    """Other ISMRMRD readers see one acquisition per line, with its encoding counters, geometry and trajectory."""
    sampling = _cartesian("2d", (4, 3, 3), voxel=(2.0, 2.0, 5.0))
    kspace = _kspace(sampling, maps=True)
    path = write_kspace(tmp_path / "k.h5", kspace)
    rotation, centre = kspace.scanner_from_logical[:3, :3], kspace.scanner_from_logical[:3, 3]
    with ismrmrd.Dataset(str(path), mode="r") as dataset:
        header = ismrmrd.xsd.CreateFromDocument(dataset.read_xml_header())
        encoding = header.encoding[0]
        assert encoding.trajectory == ismrmrd.xsd.trajectoryType.CARTESIAN
        size = encoding.encodedSpace.matrixSize
        assert (size.x, size.y, size.z) == (4, 3, 1)
        assert encoding.encodingLimits.slice.maximum == 2
        assert header.acquisitionSystemInformation.receiverChannels == 3
        start = 0
        for number in range(dataset.number_of_acquisitions()):
            acquisition = dataset.read_acquisition(number)
            stop = start + acquisition.number_of_samples
            grid = sampling.grid_index[start]
            assert acquisition.idx.kspace_encode_step_1 == grid[1] and acquisition.idx.slice == grid[2]
            assert acquisition.user_int[0] == sampling.shot[start]
            assert acquisition.center_sample == 2  # read index n//2: k_read = 0
            assert acquisition.sample_time_us == pytest.approx(DWELL_S * 1e6)
            assert acquisition.acquisition_time_stamp == round(sampling.time_s[start] / 2.5e-3)
            np.testing.assert_array_equal(acquisition.data, kspace.data[:, start:stop])
            np.testing.assert_array_equal(acquisition.traj, sampling.k_logical[start:stop].astype(np.float32))
            slice_centre = centre + rotation[:, 2] * (grid[2] - 1) * 5.0
            np.testing.assert_allclose(acquisition.position, slice_centre, atol=1e-4)
            np.testing.assert_allclose(acquisition.read_dir, rotation[:, 0], atol=1e-6)
            np.testing.assert_allclose(acquisition.slice_dir, rotation[:, 2], atol=1e-6)
            start = stop
        assert start == len(sampling)
        assert acquisition.is_flag_set(ismrmrd.ACQ_LAST_IN_MEASUREMENT)
        image = dataset.read_image("coil_maps", 0)
        assert image.data.shape == (3, 3, 3, 4)  # (channels, z, y, x)
        np.testing.assert_array_equal(image.data[1, 2, 1, 3], kspace.coil_maps[1, 3, 1, 2])


def test_reversed_cartesian_lines_flagged(tmp_path):
    sampling = _cartesian("3d")
    order = np.arange(len(sampling)).reshape(-1, 4)
    order[1::2] = order[1::2, ::-1]  # every other line read backwards, at the same times
    grid = sampling.grid_index[order.ravel()]
    backwards = Sampling(
        sampling.k_logical[order.ravel()], sampling.time_s, sampling.shot, sampling.slice_index, sampling.matrix,
        sampling.voxel_size_mm, "3d", grid,
    )  # fmt: skip
    kspace = _kspace(backwards, maps=False)
    path = write_kspace(tmp_path / "epi.h5", kspace)
    _assert_same(read_kspace(path), kspace)
    with ismrmrd.Dataset(str(path), mode="r") as dataset:
        flags = [dataset.read_acquisition(n).is_flag_set(ismrmrd.ACQ_IS_REVERSE) for n in range(6)]
    assert flags == [False, True] * 3


def test_readouts_split_at_ismrmrd_limit():
    count = 70000
    k = np.zeros((count, 3))
    k[:, 0] = np.linspace(-1.0, 1.0, count)
    sampling = Sampling(
        k, DWELL_S * np.arange(count), np.zeros(count, np.int64), np.zeros(count, np.int64), np.array([8, 8, 1]),
        np.ones(3), "2d",
    )  # fmt: skip
    np.testing.assert_array_equal(readout_bounds(sampling), [0, 65535, count])


def test_readouts_follow_straight_lines_at_constant_dwell():
    # one shot, one slice, no grid: two spokes back to back, the second with a different direction
    k = np.zeros((8, 3))
    k[:4, 0] = [-1, -0.5, 0, 0.5]
    k[4:, 1] = [-1, -0.5, 0, 0.5]
    sampling = Sampling(
        k, DWELL_S * np.arange(8), np.zeros(8, np.int64), np.zeros(8, np.int64), [4, 4, 1], [1, 1, 1], "2d"
    )
    np.testing.assert_array_equal(readout_bounds(sampling), [0, 4, 8])


def test_writer_failure_leaves_nothing(tmp_path, monkeypatch):
    existing = write_kspace(tmp_path / "k.h5", _kspace(_radial()))
    before = existing.read_bytes()

    def broken(self, xml):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ismrmrd.Dataset, "write_xml_header", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_kspace(existing, _kspace(_cartesian()))
    assert _files(tmp_path) == ["k.h5"]
    assert existing.read_bytes() == before


def test_output_equal_to_input_refused(tmp_path):
    path = write_kspace(tmp_path / "k.h5", _kspace(_radial()))
    before = path.read_bytes()
    with pytest.raises(OutputFileError, match="is also an input"):
        write_kspace(path, _kspace(_cartesian()), inputs=[tmp_path / "." / "k.h5"])
    assert path.read_bytes() == before and _files(tmp_path) == ["k.h5"]
    with pytest.raises(OutputFileError, match="does not exist"):
        write_kspace(tmp_path / "no" / "k.h5", _kspace(_radial()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": np.zeros((2, 5), np.complex64)}, r"data must be a complex \(coils, 24\) array"),
        ({"data": np.zeros(24, np.complex64)}, r"data must be a complex \(coils, 24\) array"),
        ({"data": np.full((1, 24), np.nan, np.complex64)}, r"data has 24 NaN or infinite value"),
        (
            {"scanner_from_logical": np.diag([1.0, 1.0, -1.0, 1.0])},
            r"scanner_from_logical is not a rigid transform: .*reflection",
        ),
        ({"coil_maps": np.zeros((3, 4, 3), np.complex64)}, r"coil_maps must be complex of shape \(3, 4, 3, 2\)"),
        ({"noise_std": -1.0}, r"noise_std must be finite and ≥ 0"),
        ({"noise_std": "high"}, r"noise_std must be a number"),
        ({"extra": {"x": object()}}, r"extra must be JSON-serialisable"),
        ({"extra": {"x": float("nan")}}, r"extra must be JSON-serialisable"),
        ({"extra": [1]}, r"extra must be a dict"),
    ],
)
def test_bad_kspace_refused(change, message):
    good = _kspace(_cartesian())
    fields = {
        "data": good.data,
        "sampling": good.sampling,
        "scanner_from_logical": good.scanner_from_logical,
        "coil_maps": good.coil_maps,
    }
    with pytest.raises(MrMotionError, match=message):
        KSpaceData(**{**fields, **change})


def test_unwritable_sampling_refused_before_writing(tmp_path):
    sampling = _cartesian()
    grid = sampling.grid_index.copy()
    grid[0, 1] = 3  # outside the 3-point phase axis
    bad = Sampling(
        sampling.k_logical, sampling.time_s, sampling.shot, sampling.slice_index, sampling.matrix,
        sampling.voxel_size_mm, "3d", grid,
    )  # fmt: skip
    with pytest.raises(MrMotionError, match=r"grid_index must lie in \[0, matrix\)"):
        write_kspace(tmp_path / "k.h5", _kspace(bad))
    assert _files(tmp_path) == []


def _damage(path, action):
    with h5py.File(path, "a") as file:
        action(file)


def _replace(name, values):
    def action(file):
        del file[name]
        file[name] = values

    return action


def _no_trajectory(file):
    table = file["dataset/data"][()]
    table["head"]["trajectory_dimensions"][1] = 0
    table["traj"][1] = np.zeros(0, np.float32)
    del file["dataset/data"]
    file["dataset"].create_dataset("data", data=table)


def _short_data(file):
    table = file["dataset/data"][()]
    table["data"][2] = table["data"][2][:-2]
    del file["dataset/data"]
    file["dataset"].create_dataset("data", data=table)


def _xml(edit):
    def action(file):
        text = file["dataset/xml"][0].decode()
        del file["dataset/xml"]
        file["dataset"].create_dataset("xml", data=[edit(text).encode()], dtype=h5py.special_dtype(vlen=bytes))

    return action


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda f: f.move("dataset", "other"), r"not an ISMRMRD file: no '/dataset' group"),
        (lambda f: f["dataset"].pop("xml"), r"the ISMRMRD XML header \(/dataset/xml\) is missing"),
        (_xml(lambda t: t[:40]), r"the ISMRMRD XML header is not valid"),
        (_xml(lambda t: t.replace("mrmotion.samplingMode", "other")), r"lacks the userParameterString .*samplingMode"),
        (_xml(lambda t: t.replace(">cartesian<", ">radial<")), r"trajectory 'radial' .* disagrees"),
        (_xml(lambda t: t.replace("<x>4</x>", "<x>5</x>", 1)), r"matrixSize \(5, 3, 2\) disagrees .* \(4, 3, 2\)"),
        (_xml(lambda t: t.replace("<receiverChannels>3<", "<receiverChannels>4<")), r"receiverChannels is 4 but .* 3"),
        (lambda f: f["dataset"].pop("data"), r"no acquisitions \(/dataset/data is missing\)"),
        (_replace("dataset/data", np.zeros(3)), r"/dataset/data is not an ISMRMRD acquisition table"),
        (_no_trajectory, r"acquisition 1: missing trajectory"),
        (_short_data, r"acquisition 2: data holds 22 numbers, expected 2 × 3 coils × 4"),
        (lambda f: f["dataset"].pop("mrmotion"), r"missing /dataset/mrmotion \(exact trajectory"),
        (lambda f: f["dataset/mrmotion"].pop("time_s"), r"missing /dataset/mrmotion/time_s"),
        (lambda f: f["dataset/mrmotion"].pop("grid_index"), r"trajectory 'cartesian' .* disagrees with the presence"),
        (_replace("dataset/mrmotion/k_logical", np.zeros(24)), r"k_logical must have shape \(M, 3\), got \(24,\)"),
        (_replace("dataset/mrmotion/k_logical", np.zeros((20, 3))), r"acquisitions hold 24 samples but .* holds 20"),
        (_replace("dataset/mrmotion/k_logical", np.zeros((24, 3))), r"trajectories disagree with .*k_logical"),
        (_replace("dataset/mrmotion/time_s", np.zeros(23)), r"sampling: time_s must have shape \(24,\)"),
        (_replace("dataset/mrmotion/scanner_from_logical", np.eye(3)), r"scanner_from_logical: expected shape"),
        (_replace("dataset/mrmotion/shot", np.array([b"x"] * 24)), r"/dataset/mrmotion/shot must be a numeric array"),
        (lambda f: f["dataset/coil_maps"].pop("data"), r"/dataset/coil_maps is not a readable ISMRMRD image"),
    ],
)
def test_damaged_files_name_file_and_field(tmp_path, action, message):
    path = write_kspace(tmp_path / "scan.h5", _kspace(_cartesian()))
    _damage(path, action)
    with pytest.raises(InputFileError, match=message) as info:
        read_kspace(path)
    assert "scan.h5" in str(info.value)


def test_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(InputFileError, match=r"absent.h5: k-space file does not exist"):
        read_kspace(tmp_path / "absent.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(InputFileError, match=r"notes.h5: not an HDF5 file"):
        read_kspace(text)
    with h5py.File(tmp_path / "empty.h5", "w") as file:
        file.create_dataset("dataset", data=[1])
    with pytest.raises(InputFileError, match=r"empty.h5: not an ISMRMRD file"):
        read_kspace(tmp_path / "empty.h5")


def test_minimal_foreign_ismrmrd_file_read_from_its_standard_fields(tmp_path):
    """A plain ISMRMRD file (no exact copies, no sampling mode) is read from its indices, never from its float32
    trajectory (here all zeros); details in tests/io/test_ismrmrd_cartesian.py."""
    path = tmp_path / "foreign.h5"
    header = ismrmrd.xsd.ismrmrdHeader(
        experimentalConditions=ismrmrd.xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_000_000),
        encoding=[
            ismrmrd.xsd.encodingType(
                encodedSpace=ismrmrd.xsd.encodingSpaceType(
                    matrixSize=ismrmrd.xsd.matrixSizeType(x=2, y=1, z=1),
                    fieldOfView_mm=ismrmrd.xsd.fieldOfViewMm(x=2, y=1, z=1),
                ),
                reconSpace=ismrmrd.xsd.encodingSpaceType(
                    matrixSize=ismrmrd.xsd.matrixSizeType(x=2, y=1, z=1),
                    fieldOfView_mm=ismrmrd.xsd.fieldOfViewMm(x=2, y=1, z=1),
                ),
                encodingLimits=ismrmrd.xsd.encodingLimitsType(),
                trajectory=ismrmrd.xsd.trajectoryType.CARTESIAN,
            )
        ],
    )
    with ismrmrd.Dataset(str(path), mode="w") as dataset:
        dataset.write_xml_header(ismrmrd.xsd.ToXML(header))
        acquisition = ismrmrd.Acquisition.from_array(np.ones((1, 2), np.complex64), np.zeros((2, 3), np.float32))
        acquisition.center_sample = 1
        acquisition.read_dir[:], acquisition.phase_dir[:], acquisition.slice_dir[:] = (1, 0, 0), (0, 1, 0), (0, 0, 1)
        dataset.append_acquisition(acquisition)
    kspace = read_kspace(path)
    np.testing.assert_array_equal(kspace.sampling.grid_index, [[0, 0, 0], [1, 0, 0]])
    np.testing.assert_allclose(kspace.sampling.k_logical[:, 0], [-np.pi, 0.0])


def test_module_import_keeps_warning_filters():
    """Importing ismrmrd resets warning filters; our import must not leak that. Checked in a fresh interpreter
    (reloading the module here would create a second KSpaceData class and break isinstance checks elsewhere)."""
    import subprocess
    import sys

    code = (
        "import warnings, h5py, numpy, mrmotion.physics.sampling, mrmotion.io.files; "
        "warnings.simplefilter('error'); before = list(warnings.filters); "
        "import mrmotion.io.kspace_h5; assert list(warnings.filters) == before, 'filters changed'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
