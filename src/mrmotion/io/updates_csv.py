"""Prospective slice updates as CSV: one row per time point and slice.

Columns (LPS mm, degrees; the logical frame is the slice's reference (read, phase, slice) frame):

=================================  ===========================================================================
``time_s, slice``                  tracker time (s) and slice index in the prescription
``b_rx_deg, b_ry_deg, b_rz_deg``   rotation vector of B_i(t) (motion in the slice's logical frame), degrees
``b_tx_mm, b_ty_mm, b_tz_mm``      translation of B_i(t), mm, logical (read, phase, slice)
``pos_x_mm … pos_z_mm``            updated slice centre, scanner LPS mm
``read_x … slice_z``               updated read/phase/slice directions (the new gradient rotation's columns)
``offset_read_mm … offset_slice_mm``  centre's offset from the isocentre along the new directions, mm
``shift_read_mm … shift_slice_mm``    in-frame shift of the slice (translation of B along the new axes), mm
``rx_phase_per_line_deg``          receiver phase per phase-encode step that realises the phase shift, degrees
``rx_phase_per_sample_deg``        the same per readout sample (Δk = 2π/FOV_read), degrees
=================================  ===========================================================================
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from mrmotion.geometry.motion import ScannerUpdate
from mrmotion.geometry.parameters import rotvec_from_transform
from mrmotion.io.files import write_text_atomic

COLUMNS = (
    "time_s,slice,b_rx_deg,b_ry_deg,b_rz_deg,b_tx_mm,b_ty_mm,b_tz_mm,pos_x_mm,pos_y_mm,pos_z_mm,"
    "read_x,read_y,read_z,phase_x,phase_y,phase_z,slice_x,slice_y,slice_z,"
    "offset_read_mm,offset_phase_mm,offset_slice_mm,shift_read_mm,shift_phase_mm,shift_slice_mm,"
    "rx_phase_per_line_deg,rx_phase_per_sample_deg"
).split(",")


def updates_table(times_s: ArrayLike, logical_motions: ArrayLike, update: ScannerUpdate) -> np.ndarray:
    """The ``(T·N, len(COLUMNS))`` table of updates, rows ordered by time then slice."""
    times = np.asarray(times_s, dtype=np.float64)
    moves = np.asarray(logical_motions, dtype=np.float64)
    count_t, count_n = moves.shape[:2]
    rotvec, translation = rotvec_from_transform(moves)
    directions = np.swapaxes(update.gradient_rotation, -1, -2).reshape(count_t, count_n, 9)
    columns = [
        np.repeat(times, count_n)[:, None],
        np.tile(np.arange(count_n), count_t)[:, None],
        np.degrees(rotvec).reshape(-1, 3),
        translation.reshape(-1, 3),
        update.position_mm.reshape(-1, 3),
        directions.reshape(-1, 9),
        update.offset_mm.reshape(-1, 3),
        update.shift_mm.reshape(-1, 3),
        np.degrees(update.receiver_phase_per_line_rad).reshape(-1, 1),
        np.degrees(update.receiver_phase_per_sample_rad).reshape(-1, 1),
    ]
    return np.hstack(columns)


def write_updates_csv(path: str | Path, times_s: ArrayLike, logical_motions: ArrayLike, update: ScannerUpdate) -> Path:
    """Write the updates table (header :data:`COLUMNS`) atomically."""
    table = updates_table(times_s, logical_motions, update)
    buffer = io.StringIO()
    formats = ["%.6f", "%d"] + ["%.10g"] * (len(COLUMNS) - 2)
    np.savetxt(buffer, table, delimiter=",", header=",".join(COLUMNS), comments="", fmt=formats)
    return write_text_atomic(path, buffer.getvalue())
