"""Transform JSON files: one 4×4 homogeneous transform with the names of its frames, plus free metadata.

Format (a JSON object; key order as written here)::

    {
      "matrix": [[r00, r01, r02, tx], [r10, r11, r12, ty], [r20, r21, r22, tz], [0, 0, 0, 1]],
      "source": "camera",
      "target": "scanner",
      "confidence": 0.93
    }

``matrix`` is ``target_from_source`` acting on column vectors, translations in mm (DESIGN.md §2). Scanner
and world coordinates are **LPS** unless the frame's name contains ``ras`` (any case, e.g. ``"scanner_ras"``);
then :meth:`TransformRecord.to_lps` converts at this boundary. Other fields (``confidence``,
``residual_rotation_deg`` ...) are kept in :attr:`TransformRecord.extra`. Non-finite numbers (``NaN``,
``Infinity``: not JSON, though Python's ``json`` accepts them) and duplicate keys are rejected. Floats are
written in their shortest round-trip form, so a read after a write returns the identical matrix.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from mrmotion.errors import InputFileError, MrMotionError, TransformError
from mrmotion.geometry.prescription import LPS_FROM_RAS
from mrmotion.geometry.transforms import FloatArray, as_rigid, as_transform
from mrmotion.io.files import check_output, read_text, require_file, write_text_atomic

REQUIRED_KEYS = ("matrix", "source", "target")
# A JSON string (skipped) or a bare non-finite literal (found), for locating NaN/Infinity outside strings.
_NON_FINITE = re.compile(r'"(?:\\.|[^"\\])*"|(-?Infinity|NaN)')


def is_ras(frame: str) -> bool:
    """True if the frame name says its coordinates are RAS: ``ras`` as a word of it, any case
    (``scanner_ras``, ``RAS``, ``world-ras``; not ``contrast``)."""
    return "ras" in re.split(r"[^a-z0-9]+", frame.lower())


@dataclass(frozen=True, eq=False)
class TransformRecord:
    """One stored transform.

    Attributes
    ----------
    matrix : (4, 4) float64
        ``target_from_source`` exactly as stored in the file (translations in mm; read-only).
    source, target : str
        Frame names; a name containing ``ras`` (any case) means RAS coordinates, otherwise LPS.
    extra : dict
        The file's other fields, as parsed JSON values.
    """

    matrix: FloatArray
    source: str
    target: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_lps(self) -> FloatArray:
        """The matrix with RAS frames converted to LPS, ``F = diag(-1, -1, 1, 1)``.

        ``F @ M`` if the target is RAS, ``M @ F`` if the source is RAS (``F @ M @ F`` if both), a copy of
        ``M`` if neither.
        """
        out = np.array(self.matrix)
        if is_ras(self.target):
            out = LPS_FROM_RAS @ out
        if is_ras(self.source):
            out = out @ LPS_FROM_RAS
        return out


class _NonFiniteLiteral(Exception):
    """Raised from the JSON parser on ``NaN``/``Infinity`` (located in the text afterwards)."""


class _DuplicateKey(Exception):
    pass


def _pairs_to_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> float:
    raise _NonFiniteLiteral(name)


def _parse(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_pairs_to_dict)
    except json.JSONDecodeError as error:
        message = f"invalid JSON: {error.msg} (column {error.colno}); expected an object with {REQUIRED_KEYS}"
        raise InputFileError(path, message, line=error.lineno) from None
    except _DuplicateKey as error:
        raise InputFileError(path, f"key {error.args[0]!r} appears more than once") from None
    except _NonFiniteLiteral as error:
        line = None
        for match in _NON_FINITE.finditer(text):
            if match.group(1):
                line = text.count("\n", 0, match.start()) + 1
                break
        message = f"{error.args[0]} is not a JSON number; values must be finite"
        raise InputFileError(path, message, line=line) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _first_non_finite(value: Any, where: str) -> str | None:
    """Path (``confidence``, ``stats[2]``...) of the first non-finite float in a parsed JSON value."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    items: Iterable[tuple[str, Any]] = ()
    if isinstance(value, dict):
        items = ((f"{where}.{key}" if where else str(key), item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{where}[{index}]", item) for index, item in enumerate(value))
    for name, item in items:
        found = _first_non_finite(item, name)
        if found is not None:
            return found
    return None


def read_transform(path: str | Path, require_rigid: bool = False) -> TransformRecord:
    """Read a transform JSON file (see the module docstring for the format).

    Parameters
    ----------
    path
        The JSON file.
    require_rigid
        Also require a proper rigid transform (orthonormal rotation part, det = +1, within the default
        tolerance of :func:`~mrmotion.geometry.transforms.as_rigid`).

    Returns
    -------
    TransformRecord
        The matrix as stored (frames not converted: see :meth:`TransformRecord.to_lps`), names, extra fields.

    Raises
    ------
    InputFileError
        For any malformed content, naming the file (and the line, for JSON syntax errors and NaN/Infinity).
    """
    path = require_file(path, "transform")
    data = _parse(path)
    if not isinstance(data, dict):
        raise InputFileError(path, f"expected a JSON object with keys {REQUIRED_KEYS}, got {type(data).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise InputFileError(path, f"missing key(s) {missing}; expected an object with keys {REQUIRED_KEYS}")
    for key in ("source", "target"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise InputFileError(path, f"{key!r}: expected a non-empty frame name string, got {data[key]!r}")
    rows = data["matrix"]
    if not (
        isinstance(rows, list)
        and len(rows) == 4
        and all(isinstance(row, list) and len(row) == 4 and all(map(_is_number, row)) for row in rows)
    ):
        raise InputFileError(path, f"'matrix': expected a 4×4 list of lists of numbers, got {rows!r}")
    non_finite = _first_non_finite(data, "")
    if non_finite is not None:
        raise InputFileError(path, f"{non_finite!r}: value is not finite (overflow); values must be finite")
    try:
        matrix = (as_rigid if require_rigid else as_transform)(rows, "matrix")
    except TransformError as error:
        raise InputFileError(path, str(error)) from None
    matrix = np.array(matrix, dtype=np.float64)
    matrix.setflags(write=False)
    extra = {key: value for key, value in data.items() if key not in REQUIRED_KEYS}
    return TransformRecord(matrix, data["source"], data["target"], extra)


def _plain(value: Any, name: str) -> Any:
    """``value`` with numpy arrays/scalars made lists/Python numbers; checked finite and serialisable."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {str(key): _plain(item, f"{name}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{name}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise MrMotionError(f"extra field {name!r}: {value} is not allowed in JSON; values must be finite")
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise MrMotionError(f"extra field {name!r}: {type(value).__name__} is not JSON-serialisable")
    return value


def write_transform(
    path: str | Path,
    matrix: ArrayLike,
    source: str,
    target: str,
    *,
    inputs: Iterable[str | Path] = (),
    **extra: Any,
) -> Path:
    """Write a transform JSON file atomically (format in the module docstring).

    Parameters
    ----------
    path
        Output file; its folder must exist and it must not be one of ``inputs``.
    matrix : (4, 4) array_like
        ``target_from_source`` (mm), written as given (affine allowed; last row must be ``[0, 0, 0, 1]``).
    source, target
        Non-empty frame names; include ``ras`` in a name whose coordinates are RAS.
    inputs
        Files this output was derived from, which it must never overwrite (so ``inputs`` cannot be an extra
        field name).
    **extra
        Further JSON fields, written after ``target`` in the order given. Numpy arrays and scalars become
        lists and numbers; values must be finite and JSON-serialisable.

    Returns
    -------
    Path
        ``path``.
    """
    path = check_output(path, inputs)
    array = as_transform(matrix, "matrix")
    if array.shape != (4, 4):
        raise TransformError(f"matrix: expected shape (4, 4), got {array.shape}")
    for key, name in (("source", source), ("target", target)):
        if not isinstance(name, str) or not name.strip():
            raise MrMotionError(f"{key}: expected a non-empty frame name string, got {name!r}")
    fields = {"source": source, "target": target}
    fields.update({key: _plain(value, key) for key, value in extra.items()})
    rows = ",\n".join("    " + json.dumps([float(value) for value in row]) for row in array)
    body = ",\n".join(f"  {json.dumps(key)}: {json.dumps(value, allow_nan=False)}" for key, value in fields.items())
    return write_text_atomic(path, f'{{\n  "matrix": [\n{rows}\n  ],\n{body}\n}}\n')
