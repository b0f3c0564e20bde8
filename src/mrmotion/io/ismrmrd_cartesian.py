"""Cartesian k-space from ISMRMRD files written by other tools (scanner converters, ismrmrd's own API).

:mod:`mrmotion.io.kspace_h5` reads its own files from the exact float64 copies it stores beside the ISMRMRD
acquisitions. A file from elsewhere has only the standard parts, which for Cartesian sampling hold everything a
reconstruction needs, so it is read from them:

* k: readout sample ``s`` of an acquisition sits at read index ``s − center_sample`` (negated for lines flagged
  ``ACQ_IS_REVERSE``: the data stay in acquired order), phase index ``kspace_encode_step_1 − center`` and, in 3-D,
  partition index ``kspace_encode_step_2 − center`` (the ``encodingLimits`` centres; ``n // 2`` when absent), on the
  grid of ``encodedSpace`` (matrix and field of view, mm): ``k = 2π · index / FOV`` (rad/mm). Samples in
  ``discard_pre`` / ``discard_post`` are dropped. A readout-oversampled encoded space stays oversampled.
* time: ``acquisition_time_stamp`` in 2.5 ms ticks (the Siemens convention, which :mod:`~mrmotion.io.kspace_h5`
  also writes) plus ``sample_time_us`` per sample, from the first kept acquisition.
* geometry: ``read_dir``, ``phase_dir``, ``slice_dir`` and ``position`` (patient LPS mm, the centre of the slab or
  slice). 2-D multi-slice (``encodedSpace`` one slice thick, ``idx.slice`` counting slices): the slices, taken in
  their order along ``slice_dir`` (converters may number them in acquisition order), must be equally spaced in one
  stack; slice ``i`` of the result is the ``i``-th along ``slice_dir``; the stack's centre is the logical origin.
* kept: imaging and parallel-calibration lines (averages are extra samples for the least-squares reconstruction).
  Skipped: noise, navigator, phase-correction, dummy-scan, feedback and coil-correction acquisitions.
* refused, with the reason: non-Cartesian trajectories (units and conventions differ between tools), more than one
  contrast, cardiac phase, repetition or set (split the file), geometry that changes during the scan (slices
  updated prospectively), several encodings, and anything inconsistent with the header.

The file's own coil maps are not read (other tools rarely store them): ``mrmotion recon`` estimates them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mrmotion.errors import InputFileError
from mrmotion.geometry.transforms import make_transform
from mrmotion.physics.sampling import Sampling

if TYPE_CHECKING:  # kspace_h5 imports this module: a runtime import of KSpaceData here would be circular
    import ismrmrd.xsd

    from mrmotion.io.kspace_h5 import KSpaceData

with warnings.catch_warnings():  # ismrmrd.image calls warnings.simplefilter("default") at import: keep it local
    import ismrmrd

#: seconds per ``acquisition_time_stamp`` tick (2.5 ms, the Siemens convention)
TICK_S = 2.5e-3
#: acquisitions that are not k-space of the image (ISMRMRD flag numbers, 1-based)
SKIPPED_FLAGS = {
    "noise measurement": ismrmrd.ACQ_IS_NOISE_MEASUREMENT,
    "navigator": ismrmrd.ACQ_IS_NAVIGATION_DATA,
    "phase correction": ismrmrd.ACQ_IS_PHASECORR_DATA,
    "dummy scan": ismrmrd.ACQ_IS_DUMMYSCAN_DATA,
    "HP feedback": ismrmrd.ACQ_IS_HPFEEDBACK_DATA,
    "RT feedback": ismrmrd.ACQ_IS_RTFEEDBACK_DATA,
    "surface-coil correction": ismrmrd.ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA,
    "phase stabilisation": ismrmrd.ACQ_IS_PHASE_STABILIZATION,
    "phase stabilisation reference": ismrmrd.ACQ_IS_PHASE_STABILIZATION_REFERENCE,
}
#: ``extra`` key of the reconSpace field of view (read, phase, slice; mm), which ``mrmotion recon`` crops its image to
RECON_FOV = "recon_field_of_view_mm"
#: loop counters whose values must not vary: one image per file
SINGLE_COUNTERS = ("contrast", "phase", "repetition", "set")
#: how far (mm, and in direction cosines) acquisitions' geometry may differ and still be one scan (float32 files)
POSITION_TOL_MM = 1e-3
DIRECTION_TOL = 1e-5


def _flagged(flags: np.ndarray, bit: int) -> np.ndarray:
    return (flags & np.uint64(1 << (bit - 1))) != 0


def channel_count(path: Path, head: np.ndarray) -> int:
    """The coil count every acquisition header in ``head`` states (``active_channels``), or a clear error."""
    channels = head["active_channels"].astype(np.int64)
    if np.any(channels != channels[0]) or channels[0] < 1:
        raise InputFileError(path, f"acquisitions have different or zero coil counts: {np.unique(channels)}")
    return int(channels[0])


def _centre(limit: ismrmrd.xsd.limitType | None, size: int) -> int:
    return size // 2 if limit is None or limit.center is None else int(limit.center)


def read_standard_cartesian(path: Path, header: ismrmrd.xsd.ismrmrdHeader, table: np.ndarray) -> KSpaceData:
    """The :class:`~mrmotion.io.kspace_h5.KSpaceData` of a Cartesian ISMRMRD acquisition table ``table`` (the
    structured ``/dataset/data`` array) under the parsed XML ``header`` (see the module docstring)."""
    from mrmotion.io.kspace_h5 import KSpaceData

    if len(header.encoding) != 1:
        raise InputFileError(path, f"the header has {len(header.encoding)} encodings; one is supported")
    encoding = header.encoding[0]
    trajectory = encoding.trajectory.value if encoding.trajectory is not None else "unknown"
    if trajectory != "cartesian":
        raise InputFileError(
            path,
            f"trajectory {trajectory!r}: only Cartesian ISMRMRD files from other tools can be read (the units of "
            "non-Cartesian trajectories differ between tools); files written by mrmotion are read in full",
        )
    size, extent = encoding.encodedSpace.matrixSize, encoding.encodedSpace.fieldOfView_mm
    matrix = np.array([size.x, size.y, size.z], dtype=np.int64)
    fov = np.array([extent.x, extent.y, extent.z], dtype=np.float64)
    if np.any(matrix < 1) or not np.all(np.isfinite(fov)) or np.any(fov <= 0):
        raise InputFileError(path, f"encodedSpace needs a positive matrix and FOV, got {tuple(matrix)}, {tuple(fov)}")
    head = table["head"]
    flags = head["flags"].astype(np.uint64)
    keep = np.ones(len(head), dtype=bool)
    for bit in SKIPPED_FLAGS.values():
        keep &= ~_flagged(flags, bit)
    if not keep.any():
        raise InputFileError(path, "no imaging acquisitions (every one is noise, navigator or other calibration data)")
    table, head = table[keep], head[keep]
    reverse = _flagged(flags[keep], ismrmrd.ACQ_IS_REVERSE)  # Cartesian lines read towards lower k
    for counter in SINGLE_COUNTERS:
        values = np.unique(head["idx"][counter])
        if len(values) > 1:
            raise InputFileError(
                path,
                f"the acquisitions hold {len(values)} values of idx.{counter} ({counter}s): one image per file "
                "is supported; split the file",
            )
    coils = channel_count(path, head)
    rotation = np.stack([head["read_dir"], head["phase_dir"], head["slice_dir"]], axis=-1).astype(np.float64)
    if np.abs(rotation - rotation[0]).max() > DIRECTION_TOL:
        raise InputFileError(
            path,
            "the read/phase/slice directions change during the scan (slices updated prospectively?): not supported",
        )
    rotation = rotation[0]
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-4) or np.linalg.det(rotation) < 0:
        raise InputFileError(path, "read_dir, phase_dir and slice_dir are not a right-handed orthonormal frame")
    two_d = int(matrix[2]) == 1
    slices = head["idx"]["slice"].astype(np.int64)
    position = head["position"].astype(np.float64)
    if two_d:
        numbers = np.unique(slices)
        count = len(numbers)
        centres = np.empty((count, 3))
        for place, number in enumerate(numbers):
            chosen = position[slices == number]
            if np.abs(chosen - chosen[0]).max() > POSITION_TOL_MM:
                raise InputFileError(
                    path, f"slice {number} moves during the scan (updated prospectively?): unsupported"
                )
            centres[place] = chosen[0]
        offsets = centres - centres.mean(axis=0)
        along = offsets @ rotation[:, 2]
        across = offsets - np.outer(along, rotation[:, 2])
        order = np.argsort(along, kind="stable")  # converters may number slices in acquisition order
        place_of = {int(numbers[place]): position_in_stack for position_in_stack, place in enumerate(order)}
        along = along[order]
        spacing = float(np.diff(along).mean()) if count > 1 else float(fov[2])
        expected = (np.arange(count) - (count - 1) / 2) * spacing
        if spacing <= 0 or np.abs(along - expected).max() > POSITION_TOL_MM or np.abs(across).max() > POSITION_TOL_MM:
            raise InputFileError(path, "the slices are not equally spaced along slice_dir in one stack: not supported")
        centre = centres.mean(axis=0)
        matrix[2], fov[2] = count, spacing * count
    else:
        if np.abs(position - position[0]).max() > POSITION_TOL_MM:
            raise InputFileError(path, "the slab moves during the scan (updated prospectively?): not supported")
        centre = position[0]
    voxel = fov / matrix
    limits = encoding.encodingLimits
    centre_1 = _centre(None if limits is None else limits.kspace_encoding_step_1, int(matrix[1]))
    centre_2 = 0 if two_d else _centre(None if limits is None else limits.kspace_encoding_step_2, int(matrix[2]))

    starts = head["acquisition_time_stamp"].astype(np.float64) * TICK_S
    starts -= starts.min()
    blocks, grids, times, shots, slice_of = [], [], [], [], []
    for number, (entry, values) in enumerate(zip(head, table["data"], strict=True)):
        samples = int(entry["number_of_samples"])
        if values.size != 2 * coils * samples:
            raise InputFileError(
                path, f"acquisition {number}: data holds {values.size} numbers, expected 2 × {coils} × {samples}"
            )
        first, stop = int(entry["discard_pre"]), samples - int(entry["discard_post"])
        if stop <= first:
            raise InputFileError(path, f"acquisition {number}: discard_pre and discard_post leave no sample")
        data = np.asarray(values, dtype=np.float32).view(np.complex64).reshape(coils, samples)[:, first:stop]
        sample = np.arange(first, stop)
        read = (sample - int(entry["center_sample"])) * (-1 if reverse[number] else 1)
        # third index: the slice's place in the stack (2-D) or the partition (3-D)
        third = (
            place_of[int(entry["idx"]["slice"])]
            if two_d
            else int(entry["idx"]["kspace_encode_step_2"]) - centre_2 + matrix[2] // 2
        )
        grid = np.empty((len(sample), 3), dtype=np.int64)
        grid[:, 0] = read + matrix[0] // 2
        grid[:, 1] = int(entry["idx"]["kspace_encode_step_1"]) - centre_1 + matrix[1] // 2
        grid[:, 2] = third
        if np.any(grid < 0) or np.any(grid >= matrix):
            raise InputFileError(
                path,
                f"acquisition {number}: k-space indices fall outside the encoded matrix {tuple(matrix)} "
                "(center_sample, encode steps or encodingLimits centres disagree with encodedSpace)",
            )
        blocks.append(data)
        grids.append(grid)
        times.append(starts[number] + sample * float(entry["sample_time_us"]) * 1e-6)
        shots.append(np.full(len(sample), number, dtype=np.int64))
        slice_of.append(np.full(len(sample), third if two_d else 0, dtype=np.int64))
    grid = np.concatenate(grids)
    k = 2.0 * np.pi * (grid - matrix // 2) / fov
    if two_d:
        k[:, 2] = 0.0
    sampling = Sampling(
        k_logical=k,
        time_s=np.concatenate(times),
        shot=np.concatenate(shots),
        slice_index=np.concatenate(slice_of),
        matrix=matrix,
        voxel_size_mm=voxel,
        mode="2d" if two_d else "3d",
        grid_index=grid,
    )
    extra = {"source": "ISMRMRD file from another tool (read from its standard fields)"}
    recon = encoding.reconSpace
    if recon is not None and recon.fieldOfView_mm is not None:  # e.g. half the encoded FOV along an oversampled read
        shown = [recon.fieldOfView_mm.x, recon.fieldOfView_mm.y, recon.fieldOfView_mm.z if not two_d else fov[2]]
        if all(value is not None and np.isfinite(value) and value > 0 for value in shown):
            extra[RECON_FOV] = [float(min(value, limit)) for value, limit in zip(shown, fov, strict=True)]
    return KSpaceData(
        data=np.concatenate(blocks, axis=1),
        sampling=sampling,
        scanner_from_logical=make_transform(rotation, centre),
        extra=extra,
    )
