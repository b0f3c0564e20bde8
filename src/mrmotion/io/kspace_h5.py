"""Multi-coil k-space with its sampling and geometry, as an ISMRMRD HDF5 file.

:func:`write_kspace` stores a :class:`KSpaceData` and :func:`read_kspace` reads it back exactly (complex64 data,
float64 k and times). The file is a standard ISMRMRD dataset that other ISMRMRD tools can read, plus exact copies
of what ISMRMRD can only hold approximately (float32 trajectories, 2.5 ms time stamps, float32 geometry)::

    /dataset/xml                   ISMRMRD XML header: encodedSpace = reconSpace (matrix, FOV mm), trajectory
                                   "cartesian" or "other", encodingLimits, receiverChannels, userParameters
                                   mrmotion.samplingMode ("2d"/"3d"), mrmotion.trajectoryUnit, mrmotion.extra
                                   (JSON), mrmotion.noiseStd (if known), mrmotion.formatVersion.
                                   H1resonanceFrequency_Hz (required by the schema) is 0: unknown.
    /dataset/data                  one ISMRMRD acquisition per readout, in acquisition order:
                                   data (coils × samples, complex64), traj (samples × 3, float32, k in rad/mm on the
                                   logical (read, phase, slice) axes), acquisition_time_stamp (2.5 ms ticks of the
                                   first sample), sample_time_us (dwell), center_sample (smallest |k|), position and
                                   read/phase/slice_dir (LPS, from scanner_from_logical; in 2-D the slice centre),
                                   idx.kspace_encode_step_1/2 (Cartesian phase/partition grid index; radial: spoke
                                   number within its slice, modulo 2¹⁶), idx.slice, user_int[0] = shot,
                                   flags first/last in slice, last in measurement, reverse (Cartesian
                                   lines read towards lower k_read; the data stay in acquired order).
    /dataset/coil_maps             optional ISMRMRD image (complex64, channels = coils, matrix = (n_read, n_phase,
                                   n_slice)) written with ``ismrmrd.Dataset.append_image``.
    /dataset/mrmotion/             exact copies, read back by :func:`read_kspace`: k_logical (M, 3) f8,
                                   time_s (M,) f8, shot (M,) i8, slice_index (M,) i8, grid_index (M, 3) i8
                                   (Cartesian only), matrix (3,) i8, voxel_size_mm (3,) f8,
                                   scanner_from_logical (4, 4) f8.

Readouts are runs of consecutive samples with the same shot and slice (and, for Cartesian sampling, the same
phase and partition index) along which k and time advance by constant steps (a straight line at a constant
dwell), at most 65535 samples (the ISMRMRD limit). The XML header goes through ``ismrmrd.xsd`` and
``ismrmrd.Dataset``; the acquisition table is written and read in one HDF5 call with ``ismrmrd.hdf5``'s own
``acquisition_dtype`` (byte-compatible with ``Dataset.append_acquisition``, which costs ~2 ms per readout: 30 s
for a 128² 3-D scan).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from mrmotion.errors import InputFileError, MrMotionError
from mrmotion.geometry.transforms import as_rigid
from mrmotion.io.files import check_output, require_file, write_atomic
from mrmotion.io.ismrmrd_cartesian import channel_count, read_standard_cartesian
from mrmotion.physics.sampling import Sampling

with warnings.catch_warnings():  # ismrmrd.image calls warnings.simplefilter("default") at import: keep it local
    import ismrmrd
    import ismrmrd.hdf5
    import ismrmrd.xsd as xsd

_GROUP = "dataset"
_EXACT = "mrmotion"
_COILS = "coil_maps"
_FORMAT_VERSION = 1
_MAX_SAMPLES = 65535  # number_of_samples is uint16
_MAX_COILS = 1024  # channel_mask holds 16 × 64 bits
_TICK_S = 2.5e-3  # ISMRMRD time stamps count 2.5 ms ticks
_MODE = "mrmotion.samplingMode"
_UNIT = "mrmotion.trajectoryUnit"
_EXTRA = "mrmotion.extra"
_NOISE = "mrmotion.noiseStd"
_VERSION = "mrmotion.formatVersion"
_UNIT_TEXT = (
    "rad/mm on the logical (read, phase, slice) axes; exact float64 copies of k and sample times in "
    "/dataset/mrmotion/k_logical and /dataset/mrmotion/time_s"
)
_EXACT_ARRAYS = ("k_logical", "time_s", "shot", "slice_index", "matrix", "voxel_size_mm", "scanner_from_logical")


@dataclass(frozen=True, eq=False)
class KSpaceData:
    """Multi-coil k-space samples, where they were taken, and how the scan was placed in the scanner.

    Attributes
    ----------
    data : (coils, M) complex64, samples in the order of ``sampling`` (real or complex128 input is cast).
    sampling : the :class:`~mrmotion.physics.sampling.Sampling` of the M samples (k in rad/mm, times in s).
    scanner_from_logical : (4, 4) float64 rigid: the acquisition's logical frame (read, phase, slice) → scanner
        LPS mm, centred on the FOV (in 2-D, on the middle of the slice stack).
    coil_maps : optional (coils, n_read, n_phase, n_slice) complex64 sensitivities on the grid ``sampling.matrix``.
    noise_std : standard deviation of the complex noise added per sample (real and imaginary parts), or None.
    extra : free-form JSON-serialisable metadata (motion description, simulator settings); tuples come back as lists.
    """

    data: np.ndarray
    sampling: Sampling
    scanner_from_logical: np.ndarray
    coil_maps: np.ndarray | None = None
    noise_std: float | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.sampling, Sampling):
            raise MrMotionError(f"k-space: sampling must be a Sampling, got {type(self.sampling).__name__}")
        count = len(self.sampling)
        data = np.asarray(self.data)
        if data.dtype.kind not in "fc" or data.ndim != 2 or data.shape[0] < 1 or data.shape[1] != count:
            raise MrMotionError(
                f"k-space: data must be a complex (coils, {count}) array, got {data.dtype} of shape {data.shape}"
            )
        data = data.astype(np.complex64, copy=False)
        _require_finite(data, "data")
        matrix = self.sampling.matrix
        if matrix.shape != (3,) or np.any(matrix < 1):
            raise MrMotionError(f"k-space: sampling.matrix must be three positive sizes, got {matrix}")
        voxel = self.sampling.voxel_size_mm
        if voxel.shape != (3,) or not np.all(np.isfinite(voxel)) or np.any(voxel <= 0):
            raise MrMotionError(f"k-space: sampling.voxel_size_mm must be three sizes > 0 mm, got {voxel}")
        transform = as_rigid(self.scanner_from_logical, "scanner_from_logical")
        if transform.shape != (4, 4):
            raise MrMotionError(f"k-space: scanner_from_logical must be one (4, 4) transform, got {transform.shape}")
        maps = self.coil_maps
        if maps is not None:
            maps = np.asarray(maps)
            expected = (data.shape[0], *(int(n) for n in matrix))
            if maps.dtype.kind not in "fc" or maps.shape != expected:
                raise MrMotionError(
                    f"k-space: coil_maps must be complex of shape {expected} (coils, n_read, n_phase, n_slice), "
                    f"got {maps.dtype} of shape {maps.shape}"
                )
            maps = maps.astype(np.complex64, copy=False)
            _require_finite(maps, "coil_maps")
        noise = self.noise_std
        if noise is not None:
            if isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating, np.integer)):
                raise MrMotionError(f"k-space: noise_std must be a number or None, got {noise!r}")
            noise = float(noise)
            if not math.isfinite(noise) or noise < 0:
                raise MrMotionError(f"k-space: noise_std must be finite and ≥ 0, got {noise}")
        if not isinstance(self.extra, dict):
            raise MrMotionError(f"k-space: extra must be a dict, got {type(self.extra).__name__}")
        _extra_json(self.extra)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "scanner_from_logical", transform)
        object.__setattr__(self, "coil_maps", maps)
        object.__setattr__(self, "noise_std", noise)


def _require_finite(array: np.ndarray, name: str) -> None:
    bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    if bad:
        raise MrMotionError(f"k-space: {name} has {bad} NaN or infinite value(s)")


def _extra_json(extra: dict) -> str:
    try:
        return json.dumps(extra, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise MrMotionError(f"k-space: extra must be JSON-serialisable with finite numbers ({error})") from None


# --- writing ---------------------------------------------------------------------------------------------------


def readout_bounds(sampling: Sampling) -> np.ndarray:
    """``(R + 1,)`` sample indices where the R readouts start, then M: readout r is ``bounds[r]:bounds[r + 1]``.

    A readout is a run of consecutive samples with the same shot and slice (and Cartesian phase/partition index)
    along which k and time advance by constant steps; it is cut at 65535 samples.
    """
    count = len(sampling)
    if count == 1:
        return np.array([0, 1])
    k, time = sampling.k_logical, sampling.time_s
    step_k, step_t = np.diff(k, axis=0), np.diff(time)
    k_tol = 1e-9 * float(np.abs(k).max())
    t_tol = 1e-12 * max(1.0, float(np.abs(time).max()))
    hard = (np.diff(sampling.shot) != 0) | (np.diff(sampling.slice_index) != 0)
    if sampling.grid_index is not None:
        hard |= np.any(np.diff(np.asarray(sampling.grid_index)[:, 1:], axis=0) != 0, axis=1)
    changed = np.ones(count - 1, dtype=bool)
    changed[1:] = (np.abs(step_k[1:] - step_k[:-1]).max(axis=1) > k_tol) | (np.abs(step_t[1:] - step_t[:-1]) > t_tol)
    starts = [0]
    for step in np.flatnonzero(hard | changed).tolist():  # step j joins sample j to sample j + 1
        if hard[step] or step > starts[-1]:  # the first step of a readout sets its k and time increments
            starts.append(step + 1)
    bounds = np.array([*starts, count])
    lengths = np.diff(bounds)
    if lengths.max() > _MAX_SAMPLES:
        pieces = [np.arange(start, stop, _MAX_SAMPLES) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]
        bounds = np.array([*np.concatenate(pieces), count])
    return bounds


def _check_format_limits(kspace: KSpaceData) -> None:
    sampling = kspace.sampling
    coils = kspace.data.shape[0]
    if coils > _MAX_COILS:
        raise MrMotionError(f"k-space: ISMRMRD holds at most {_MAX_COILS} coils, got {coils}")
    if np.any(sampling.matrix > 65535):
        raise MrMotionError(f"k-space: matrix sizes must be ≤ 65535, got {sampling.matrix}")
    slices = np.asarray(sampling.slice_index)
    if slices.min() < 0 or slices.max() > 65535:
        raise MrMotionError(f"k-space: slice_index must lie in [0, 65535], got [{slices.min()}, {slices.max()}]")
    shots = np.asarray(sampling.shot)
    if shots.min() < -(2**31) or shots.max() >= 2**31:
        raise MrMotionError("k-space: shot numbers must fit in 32-bit integers")
    if sampling.grid_index is not None:
        grid = np.asarray(sampling.grid_index)
        if np.any(grid < 0) or np.any(grid >= sampling.matrix):
            raise MrMotionError(f"k-space: grid_index must lie in [0, matrix) = [0, {sampling.matrix}) per axis")


def _encoding_counters(sampling: Sampling, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(step_1, step_2, slice) of each readout."""
    slices = np.asarray(sampling.slice_index)[starts]
    if sampling.grid_index is not None:
        grid = np.asarray(sampling.grid_index)[starts]
        step_2 = grid[:, 2] if sampling.mode == "3d" else np.zeros_like(slices)
        return grid[:, 1], step_2, slices
    spoke = np.zeros(len(starts), dtype=np.int64)  # spoke number within its slice
    seen: dict[int, int] = {}
    for index, value in enumerate(slices.tolist()):
        spoke[index] = seen.get(value, 0)
        seen[value] = spoke[index] + 1
    return spoke % 65536, np.zeros_like(slices), slices


def _acquisition_table(kspace: KSpaceData, bounds: np.ndarray) -> np.ndarray:
    sampling = kspace.sampling
    starts, stops = bounds[:-1], bounds[1:]
    lengths = stops - starts
    coils = kspace.data.shape[0]
    rotation, centre = kspace.scanner_from_logical[:3, :3], kspace.scanner_from_logical[:3, 3]
    time = sampling.time_s
    step_1, step_2, slices = _encoding_counters(sampling, starts)

    head = np.zeros(len(starts), dtype=ismrmrd.hdf5.acquisition_header_dtype)
    head["version"] = 1
    head["scan_counter"] = np.arange(len(starts))
    head["acquisition_time_stamp"] = np.clip(np.round(time[starts] / _TICK_S), 0, 2**32 - 1)
    head["number_of_samples"] = lengths
    head["available_channels"] = coils
    head["active_channels"] = coils
    mask = np.zeros(16, dtype=np.uint64)
    for coil in range(coils):
        mask[coil // 64] |= np.uint64(1) << np.uint64(coil % 64)
    head["channel_mask"] = mask
    head["trajectory_dimensions"] = 3
    dwell = time[np.minimum(starts + 1, len(time) - 1)] - time[starts]
    head["sample_time_us"] = np.where(lengths > 1, dwell * 1e6, 0.0)
    norms = np.linalg.norm(sampling.k_logical, axis=1)
    head["center_sample"] = [int(np.argmin(norms[a:b])) for a, b in zip(starts, stops, strict=True)]
    if sampling.mode == "2d":  # ISMRMRD positions are slice centres; slices sit at logical_from_voxel's z
        offset = (slices - (sampling.matrix[2] - 1) / 2.0) * sampling.voxel_size_mm[2]
        head["position"] = centre + offset[:, None] * rotation[:, 2]
    else:
        head["position"] = centre
    head["read_dir"], head["phase_dir"], head["slice_dir"] = rotation[:, 0], rotation[:, 1], rotation[:, 2]
    head["idx"]["kspace_encode_step_1"] = step_1
    head["idx"]["kspace_encode_step_2"] = step_2
    head["idx"]["slice"] = slices
    head["user_int"][:, 0] = np.asarray(sampling.shot)[starts]
    flags = np.zeros(len(starts), dtype=np.uint64)
    _, first = np.unique(slices, return_index=True)
    _, last_reversed = np.unique(slices[::-1], return_index=True)
    flags[first] |= np.uint64(1 << (ismrmrd.ACQ_FIRST_IN_SLICE - 1))
    flags[len(starts) - 1 - last_reversed] |= np.uint64(1 << (ismrmrd.ACQ_LAST_IN_SLICE - 1))
    flags[-1] |= np.uint64(1 << (ismrmrd.ACQ_LAST_IN_MEASUREMENT - 1))
    if sampling.grid_index is not None:  # Cartesian lines read backwards (EPI): data stay in acquired order
        second = np.minimum(starts + 1, len(time) - 1)
        grid = np.asarray(sampling.grid_index)
        reverse = grid[second, 0] < grid[starts, 0]
        flags[reverse] |= np.uint64(1 << (ismrmrd.ACQ_IS_REVERSE - 1))
    head["flags"] = flags

    table = np.empty(len(starts), dtype=ismrmrd.hdf5.acquisition_dtype)
    table["head"] = head
    trajectory = sampling.k_logical.astype(np.float32)
    traj_column, data_column = table["traj"], table["data"]
    for index, (a, b) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
        traj_column[index] = trajectory[a:b].ravel()
        data_column[index] = np.ascontiguousarray(kspace.data[:, a:b]).view(np.float32).ravel()
    return table


def _limit(values: np.ndarray, centre: int) -> xsd.limitType:
    return xsd.limitType(minimum=int(values.min()), maximum=int(values.max()), center=centre)


def _xml_header(kspace: KSpaceData, bounds: np.ndarray) -> str:
    sampling = kspace.sampling
    matrix, fov = sampling.matrix, sampling.fov_mm
    cartesian = sampling.grid_index is not None
    two_d = sampling.mode == "2d"
    # 2-D multi-slice, the ISMRMRD way: the encoded space is one slice thick, slices are counted in limits.
    size = xsd.matrixSizeType(x=int(matrix[0]), y=int(matrix[1]), z=1 if two_d else int(matrix[2]))
    extent = xsd.fieldOfViewMm(
        x=float(fov[0]), y=float(fov[1]), z=float(sampling.voxel_size_mm[2] if two_d else fov[2])
    )
    step_1, step_2, slices = _encoding_counters(sampling, bounds[:-1])
    limits = xsd.encodingLimitsType(
        kspace_encoding_step_0=xsd.limitType(minimum=0, maximum=int(matrix[0]) - 1, center=int(matrix[0]) // 2),
        kspace_encoding_step_1=_limit(step_1, int(matrix[1]) // 2 if cartesian else 0),
        kspace_encoding_step_2=_limit(step_2, int(matrix[2]) // 2 if cartesian and not two_d else 0),
        slice=_limit(slices, 0),
    )
    strings = [
        xsd.userParameterStringType(name=_MODE, value=sampling.mode),
        xsd.userParameterStringType(name=_UNIT, value=_UNIT_TEXT),
        xsd.userParameterStringType(name=_EXTRA, value=_extra_json(kspace.extra)),
    ]
    doubles = [] if kspace.noise_std is None else [xsd.userParameterDoubleType(name=_NOISE, value=kspace.noise_std)]
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=0),
        acquisitionSystemInformation=xsd.acquisitionSystemInformationType(receiverChannels=kspace.data.shape[0]),
        encoding=[
            xsd.encodingType(
                encodedSpace=xsd.encodingSpaceType(matrixSize=size, fieldOfView_mm=extent),
                reconSpace=xsd.encodingSpaceType(matrixSize=size, fieldOfView_mm=extent),
                encodingLimits=limits,
                trajectory=xsd.trajectoryType.CARTESIAN if cartesian else xsd.trajectoryType.OTHER,
            )
        ],
        userParameters=xsd.userParametersType(
            userParameterLong=[xsd.userParameterLongType(name=_VERSION, value=_FORMAT_VERSION)],
            userParameterDouble=doubles,
            userParameterString=strings,
        ),
    )
    return xsd.ToXML(header)


def _coil_image(kspace: KSpaceData) -> ismrmrd.Image:
    transform = kspace.scanner_from_logical
    return ismrmrd.Image.from_array(
        np.ascontiguousarray(kspace.coil_maps.transpose(0, 3, 2, 1)),  # ISMRMRD images are (channels, z, y, x)
        field_of_view=tuple(float(v) for v in kspace.sampling.fov_mm),
        position=tuple(float(v) for v in transform[:3, 3]),
        read_dir=tuple(float(v) for v in transform[:3, 0]),
        phase_dir=tuple(float(v) for v in transform[:3, 1]),
        slice_dir=tuple(float(v) for v in transform[:3, 2]),
        image_type=ismrmrd.IMTYPE_COMPLEX,
    )


def write_kspace(path: str | Path, kspace: KSpaceData, inputs: Iterable[str | Path] = ()) -> Path:
    """Write ``kspace`` to ``path`` as an ISMRMRD HDF5 file (layout in the module docstring), atomically.

    Raises :class:`OutputFileError` (output is an input or its folder is missing) or :class:`MrMotionError`
    (data that ISMRMRD cannot hold: more than 1024 coils, slice indices beyond 65535, grid indices outside the
    matrix); nothing is written then. Returns the path written.
    """
    path = check_output(path, inputs)
    if not isinstance(kspace, KSpaceData):
        raise MrMotionError(f"write_kspace: expected KSpaceData, got {type(kspace).__name__}")
    _check_format_limits(kspace)
    bounds = readout_bounds(kspace.sampling)
    xml = _xml_header(kspace, bounds)
    table = _acquisition_table(kspace, bounds)
    sampling = kspace.sampling
    exact = {
        "k_logical": sampling.k_logical,
        "time_s": sampling.time_s,
        "shot": np.asarray(sampling.shot, dtype=np.int64),
        "slice_index": np.asarray(sampling.slice_index, dtype=np.int64),
        "matrix": sampling.matrix,
        "voxel_size_mm": sampling.voxel_size_mm,
        "scanner_from_logical": kspace.scanner_from_logical,
    }
    if sampling.grid_index is not None:
        exact["grid_index"] = np.asarray(sampling.grid_index, dtype=np.int64)

    def write(temporary: Path) -> None:
        with ismrmrd.Dataset(str(temporary), dataset_name=_GROUP, mode="w") as dataset:
            dataset.write_xml_header(xml)
            if kspace.coil_maps is not None:
                dataset.append_image(_COILS, _coil_image(kspace))
        with h5py.File(temporary, "a") as file:
            group = file[_GROUP]
            group.create_dataset("data", data=table, maxshape=(None,), chunks=True)
            copies = group.create_group(_EXACT)
            for name, values in exact.items():
                copies.create_dataset(name, data=values)

    return write_atomic(path, write)


# --- reading ---------------------------------------------------------------------------------------------------


def _parse_header(path: Path, file: h5py.File) -> xsd.ismrmrdHeader:
    if _GROUP not in file or not isinstance(file[_GROUP], h5py.Group):
        raise InputFileError(path, f"not an ISMRMRD file: no '/{_GROUP}' group")
    if "xml" not in file[_GROUP]:
        raise InputFileError(path, f"the ISMRMRD XML header (/{_GROUP}/xml) is missing")
    try:
        text = file[_GROUP]["xml"][0]
        header = xsd.CreateFromDocument(text)
    except Exception as error:  # xsdata raises ParserError, TypeError for missing required elements, ...
        raise InputFileError(path, f"the ISMRMRD XML header is not valid ({type(error).__name__}: {error})") from None
    if not header.encoding:
        raise InputFileError(path, "the ISMRMRD XML header has no <encoding>")
    return header


def _user_parameters(header: xsd.ismrmrdHeader) -> tuple[dict[str, str], dict[str, float]]:
    parameters = header.userParameters
    if parameters is None:
        return {}, {}
    strings = {item.name: item.value for item in parameters.userParameterString}
    doubles = {item.name: item.value for item in parameters.userParameterDouble}
    return strings, doubles


def _read_table(path: Path, group: h5py.Group) -> np.ndarray:
    """The ISMRMRD acquisition table (structured array: head, traj, data), checked to be one."""
    if "data" not in group:
        raise InputFileError(path, f"no acquisitions (/{_GROUP}/data is missing)")
    table_set = group["data"]
    names = table_set.dtype.names or ()
    if not isinstance(table_set, h5py.Dataset) or not {"head", "traj", "data"} <= set(names):
        raise InputFileError(path, f"/{_GROUP}/data is not an ISMRMRD acquisition table (head, traj, data)")
    if table_set.ndim != 1 or table_set.shape[0] == 0:
        raise InputFileError(path, f"no acquisitions (/{_GROUP}/data holds {table_set.shape[0]} entries)")
    return table_set[()]


def _read_acquisitions(path: Path, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coils, M) complex64 data and (M, 3) float32 trajectory of all acquisitions, concatenated in order."""
    head = table["head"]
    samples = head["number_of_samples"].astype(np.int64)
    dimensions = head["trajectory_dimensions"].astype(np.int64)
    coils = channel_count(path, head)
    data_blocks, traj_blocks = [], []
    for index, (count, dims, values, traj) in enumerate(
        zip(samples.tolist(), dimensions.tolist(), table["data"], table["traj"], strict=True)
    ):
        if values.size != 2 * coils * count:
            raise InputFileError(
                path, f"acquisition {index}: data holds {values.size} numbers, expected 2 × {coils} coils × {count}"
            )
        if dims < 3 or traj.size != count * dims:
            raise InputFileError(
                path, f"acquisition {index}: missing trajectory (expected {count} × ≥3 values, got {traj.size})"
            )
        data_blocks.append(np.asarray(values, dtype=np.float32).view(np.complex64).reshape(coils, count))
        traj_blocks.append(np.asarray(traj, dtype=np.float32).reshape(count, dims)[:, :3])
    return np.concatenate(data_blocks, axis=1), np.concatenate(traj_blocks, axis=0)


def _read_exact(path: Path, group: h5py.Group) -> dict[str, np.ndarray]:
    if _EXACT not in group:
        raise InputFileError(
            path, f"missing /{_GROUP}/{_EXACT} (exact trajectory, times and geometry): not written by mrmotion"
        )
    copies = group[_EXACT]
    values = {}
    for name in (*_EXACT_ARRAYS, "grid_index"):
        if name not in copies:
            if name == "grid_index":
                continue
            raise InputFileError(path, f"missing /{_GROUP}/{_EXACT}/{name}")
        array = copies[name][()]
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
            raise InputFileError(path, f"/{_GROUP}/{_EXACT}/{name} must be a numeric array")
        values[name] = array
    return values


def _read_coil_maps(path: Path) -> np.ndarray:
    try:
        with ismrmrd.Dataset(str(path), dataset_name=_GROUP, mode="r") as dataset:
            if dataset.number_of_images(_COILS) != 1:
                raise InputFileError(path, f"/{_GROUP}/{_COILS} must hold exactly one image")
            image = dataset.read_image(_COILS, 0)
    except InputFileError:
        raise
    except Exception as error:
        raise InputFileError(path, f"/{_GROUP}/{_COILS} is not a readable ISMRMRD image ({error})") from None
    return np.ascontiguousarray(np.asarray(image.data).transpose(0, 3, 2, 1)).astype(np.complex64, copy=False)


def read_kspace(path: str | Path) -> KSpaceData:
    """Read a file written by :func:`write_kspace`, or a Cartesian ISMRMRD file from another tool (one without
    mrmotion's exact copies: read from its standard fields, :mod:`mrmotion.io.ismrmrd_cartesian`).

    Raises :class:`InputFileError`, naming the file and the missing or inconsistent part, if the file is
    missing, not HDF5, not ISMRMRD, lacks the XML header, its sampling mode, the acquisitions, their trajectory or
    the exact copies (of a file that says mrmotion wrote it), or if shapes disagree (samples, coils, matrix,
    trajectory type).
    """
    path = require_file(path, "k-space")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise InputFileError(path, f"not an HDF5 file ({error})") from None
    try:
        with file:
            header = _parse_header(path, file)
            group = file[_GROUP]
            table = _read_table(path, group)
            if _EXACT not in group and _MODE not in _user_parameters(header)[0]:  # written by another tool
                return read_standard_cartesian(path, header, table)
            data, trajectory = _read_acquisitions(path, table)
            exact = _read_exact(path, group)
            has_coil_maps = _COILS in group
        coil_maps = _read_coil_maps(path) if has_coil_maps else None
        return _assemble(path, header, data, trajectory, exact, coil_maps)
    except InputFileError:
        raise
    except MrMotionError as error:
        raise InputFileError(path, str(error)) from None
    except (OSError, KeyError, ValueError, TypeError) as error:  # a damaged HDF5 structure
        raise InputFileError(path, f"malformed ISMRMRD file ({type(error).__name__}: {error})") from None


def _assemble(
    path: Path,
    header: xsd.ismrmrdHeader,
    data: np.ndarray,
    trajectory: np.ndarray,
    exact: dict[str, np.ndarray],
    coil_maps: np.ndarray | None,
) -> KSpaceData:
    strings, doubles = _user_parameters(header)
    if _MODE not in strings:
        raise InputFileError(path, f"the XML header lacks the userParameterString {_MODE!r} (not written by mrmotion)")
    shape = exact["k_logical"].shape
    if len(shape) != 2 or shape[1] != 3:
        raise InputFileError(path, f"/{_GROUP}/{_EXACT}/k_logical must have shape (M, 3), got {shape}")
    count = shape[0]
    if data.shape[1] != count:
        raise InputFileError(
            path, f"the acquisitions hold {data.shape[1]} samples but /{_GROUP}/{_EXACT}/k_logical holds {count}"
        )
    if not np.array_equal(trajectory, exact["k_logical"].astype(np.float32)):
        raise InputFileError(path, f"the acquisition trajectories disagree with /{_GROUP}/{_EXACT}/k_logical")
    sampling = Sampling(
        k_logical=exact["k_logical"],
        time_s=exact["time_s"],
        shot=exact["shot"].astype(np.int64),
        slice_index=exact["slice_index"].astype(np.int64),
        matrix=exact["matrix"],
        voxel_size_mm=exact["voxel_size_mm"],
        mode=strings[_MODE],
        grid_index=exact["grid_index"].astype(np.int64) if "grid_index" in exact else None,
    )
    encoding = header.encoding[0]
    cartesian = encoding.trajectory == xsd.trajectoryType.CARTESIAN
    if cartesian != (sampling.grid_index is not None):
        raise InputFileError(
            path,
            f"trajectory {encoding.trajectory.value!r} in the XML header disagrees with the presence of "
            f"/{_GROUP}/{_EXACT}/grid_index",
        )
    size = encoding.encodedSpace.matrixSize
    expected = tuple(int(n) for n in (*sampling.matrix[:2], 1 if sampling.mode == "2d" else sampling.matrix[2]))
    if (size.x, size.y, size.z) != expected:
        raise InputFileError(
            path, f"encodedSpace matrixSize {(size.x, size.y, size.z)} disagrees with the sampling matrix {expected}"
        )
    system = header.acquisitionSystemInformation
    if system is not None and system.receiverChannels is not None and system.receiverChannels != data.shape[0]:
        raise InputFileError(
            path, f"receiverChannels is {system.receiverChannels} but the acquisitions hold {data.shape[0]} coils"
        )
    try:
        extra = json.loads(strings.get(_EXTRA, "{}"))
    except json.JSONDecodeError as error:
        raise InputFileError(path, f"userParameterString {_EXTRA!r} is not valid JSON ({error})") from None
    return KSpaceData(
        data=data,
        sampling=sampling,
        scanner_from_logical=exact["scanner_from_logical"],
        coil_maps=coil_maps,
        noise_std=doubles.get(_NOISE),
        extra=extra,
    )
