"""Slice prescriptions as JSON: a list of slices, each with its position and directions in scanner LPS mm.

Format (one object per slice; ``matrix`` optional)::

    [
      {"position_mm": [0, 0, -12], "read_dir": [1, 0, 0], "phase_dir": [0, 1, 0], "slice_dir": [0, 0, 1],
       "fov_mm": [220, 220], "thickness_mm": 4, "matrix": [128, 128]},
      ...
    ]

Errors name the file and the line where the offending slice starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mrmotion.errors import InputFileError, MrMotionError
from mrmotion.geometry.prescription import SlicePrescription
from mrmotion.io.files import read_text, require_file, write_text_atomic

_VECTORS = {"position_mm": 3, "read_dir": 3, "phase_dir": 3, "slice_dir": 3, "fov_mm": 2}


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _split_list(path: Path, text: str) -> list[tuple[int, object]]:
    """Decode a top-level JSON list element by element, keeping where each element starts (its line)."""
    decoder = json.JSONDecoder(parse_constant=lambda name: _reject_constant(path, name))
    index = len(text) - len(text.lstrip())
    if not text[index:].startswith("["):
        raise InputFileError(
            path, "expected a JSON list of slices (the file must start with '[')", _line_of(text, index)
        )
    index += 1
    elements: list[tuple[int, object]] = []
    while True:
        while index < len(text) and text[index] in " \t\r\n":
            index += 1
        if index < len(text) and text[index] == "]":
            break
        if elements:
            if index >= len(text) or text[index] != ",":
                raise InputFileError(path, "invalid JSON: expected ',' or ']'", _line_of(text, index))
            index += 1
            while index < len(text) and text[index] in " \t\r\n":
                index += 1
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError as error:
            raise InputFileError(path, f"invalid JSON: {error.msg}", error.lineno) from None
        elements.append((_line_of(text, index), value))
        index = end
    if text[index + 1 :].strip():
        raise InputFileError(path, "invalid JSON: extra data after the list", _line_of(text, index + 1))
    return elements


def _reject_constant(path: Path, name: str) -> None:
    raise InputFileError(path, f"{name} is not a number; every value must be finite")


def _slice_from_entry(path: Path, line: int, number: int, entry: object) -> SlicePrescription:
    where = f"slice {number}"
    if not isinstance(entry, dict):
        raise InputFileError(path, f"{where}: expected an object with position_mm, read_dir, ..., got {entry!r}", line)
    missing = [key for key in (*_VECTORS, "thickness_mm") if key not in entry]
    if missing:
        raise InputFileError(path, f"{where}: missing field(s) {', '.join(missing)}", line)
    values = {}
    for key, width in _VECTORS.items():
        value = entry[key]
        if (
            not isinstance(value, list)
            or len(value) != width
            or not all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value)
        ):
            raise InputFileError(path, f"{where}: {key} must be a list of {width} numbers, got {value!r}", line)
        values[key] = np.asarray(value, dtype=np.float64)
    thickness = entry["thickness_mm"]
    if not isinstance(thickness, (int, float)) or isinstance(thickness, bool):
        raise InputFileError(path, f"{where}: thickness_mm must be a number, got {thickness!r}", line)
    matrix = entry.get("matrix")
    if matrix is not None:
        if not isinstance(matrix, list) or len(matrix) != 2 or not all(isinstance(n, int) for n in matrix):
            raise InputFileError(path, f"{where}: matrix must be two integers [n_read, n_phase], got {matrix!r}", line)
        matrix = (matrix[0], matrix[1])
    try:
        return SlicePrescription(
            values["position_mm"],
            values["read_dir"],
            values["phase_dir"],
            values["slice_dir"],
            values["fov_mm"],
            float(thickness),
            matrix,
        )
    except MrMotionError as error:
        raise InputFileError(path, f"{where}: {error}", line) from None


def read_prescription(path: str | Path) -> list[SlicePrescription]:
    """Read a prescription JSON file: a list of slices (scanner LPS mm). Raises :class:`InputFileError`."""
    path = require_file(path, "prescription")
    text = read_text(path)
    if not text.strip():
        raise InputFileError(path, "prescription file is empty")
    elements = _split_list(path, text)
    if not elements:
        raise InputFileError(path, "the prescription holds no slices")
    return [_slice_from_entry(path, line, number, entry) for number, (line, entry) in enumerate(elements)]


def prescription_to_json(slices: list[SlicePrescription]) -> str:
    """The JSON text of a prescription (floats written with full precision, one slice per block)."""
    entries = []
    for item in slices:
        entry = {
            "position_mm": [float(v) for v in item.position_mm],
            "read_dir": [float(v) for v in item.read_dir],
            "phase_dir": [float(v) for v in item.phase_dir],
            "slice_dir": [float(v) for v in item.slice_dir],
            "fov_mm": [float(v) for v in item.fov_mm],
            "thickness_mm": float(item.thickness_mm),
        }
        if item.matrix is not None:
            entry["matrix"] = [int(n) for n in item.matrix]
        entries.append(entry)
    return json.dumps(entries, indent=1) + "\n"


def write_prescription(path: str | Path, slices: list[SlicePrescription]) -> Path:
    """Write a prescription JSON file atomically."""
    if not slices:
        raise MrMotionError("refusing to write a prescription with no slices")
    return write_text_atomic(path, prescription_to_json(slices))
