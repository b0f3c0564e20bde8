"""Transform JSON: exact round trips, extra fields, RAS→LPS at the boundary, and every malformed file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mrmotion.errors import InputFileError, MrMotionError, OutputFileError, TransformError
from mrmotion.geometry.parameters import transform_from_rotvec
from mrmotion.geometry.transforms import apply
from mrmotion.io.transform_json import LPS_FROM_RAS, TransformRecord, read_transform, write_transform


def random_rigid(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return transform_from_rotvec(rng.normal(size=3), rng.normal(scale=100.0, size=3))


def where(path: Path, line: int | None = None) -> str:
    return re.escape(f"{path}:{line}:" if line is not None else f"{path}:")


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_is_exact(tmp_path: Path, seed: int) -> None:
    rigid = random_rigid(seed)
    affine = rigid.copy()
    affine[:3, :3] *= np.random.default_rng(seed).uniform(0.5, 2.0, size=(3, 3))
    for matrix in (rigid, affine):
        path = write_transform(tmp_path / "t.json", matrix, "camera", "scanner", confidence=0.93)
        record = read_transform(path)
        np.testing.assert_array_equal(record.matrix, matrix)
        assert (record.source, record.target, record.extra) == ("camera", "scanner", {"confidence": 0.93})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_extra_fields_preserved_and_numpy_converted(tmp_path: Path) -> None:
    extra = {
        "confidence": np.float64(0.93),
        "residual_rotation_deg": np.array([0.1, 0.2]),
        "iterations": np.int64(12),
        "notes": {"method": "park-martin", "pairs": [1, 2, (3, 4)]},
        "flag": True,
        "nothing": None,
    }
    path = write_transform(tmp_path / "t.json", np.eye(4), "camera", "scanner", **extra)
    raw = json.loads(path.read_text())  # strict, standard JSON
    assert list(raw) == ["matrix", "source", "target", *extra]
    record = read_transform(path, require_rigid=True)
    assert record.extra == {
        "confidence": 0.93,
        "residual_rotation_deg": [0.1, 0.2],
        "iterations": 12,
        "notes": {"method": "park-martin", "pairs": [1, 2, [3, 4]]},
        "flag": True,
        "nothing": None,
    }
    assert isinstance(record.extra["iterations"], int)
    with pytest.raises(ValueError, match="read-only"):
        record.matrix[0, 0] = 2.0


def test_to_lps_for_each_frame_combination() -> None:
    matrix = random_rigid(1)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    assert np.array_equal(LPS_FROM_RAS, flip)
    cases = {
        ("camera", "scanner"): matrix,
        ("camera", "Scanner_RAS"): flip @ matrix,
        ("voxel_ras", "scanner"): matrix @ flip,
        ("RAS", "world_ras"): flip @ matrix @ flip,
    }
    for (source, target), expected in cases.items():
        np.testing.assert_array_equal(TransformRecord(matrix, source, target).to_lps(), expected)
    # meaning: a camera point mapped into RAS then flipped equals mapping with the LPS matrix
    point = np.array([10.0, -20.0, 30.0])
    ras = apply(matrix, point)
    np.testing.assert_allclose(
        apply(TransformRecord(matrix, "camera", "scanner_ras").to_lps(), point), ras * [-1, -1, 1]
    )


def test_require_rigid(tmp_path: Path) -> None:
    path = write_transform(tmp_path / "t.json", random_rigid(2), "a", "b")
    read_transform(path, require_rigid=True)
    scaled = np.diag([2.0, 1.0, 1.0, 1.0])
    path = write_transform(tmp_path / "scaled.json", scaled, "a", "b")
    assert np.array_equal(read_transform(path).matrix, scaled)  # affine is fine unless rigid is required
    with pytest.raises(InputFileError, match=where(path) + " matrix is not a rigid transform.*scaling or shear"):
        read_transform(path, require_rigid=True)
    reflection = write_transform(tmp_path / "mirror.json", np.diag([-1.0, 1.0, 1.0, 1.0]), "a", "b")
    with pytest.raises(InputFileError, match=where(reflection) + ".*reflection"):
        read_transform(reflection, require_rigid=True)


IDENTITY = "[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]"
ROWS = "[\n  [1, 0, 0, 0],\n  [0, 1, 0, 0],\n  [0, 0, 1, 0],\n  [0, 0, 0, 1]\n]"


def doc(matrix: str = IDENTITY, source: str = '"camera"', target: str = '"scanner"', more: str = "") -> str:
    return f'{{\n"matrix": {matrix},\n"source": {source},\n"target": {target}{more}\n}}\n'


BAD_FILES = {
    "empty": ("", 1, "invalid JSON: Expecting value"),
    "syntax": ('{\n"matrix": [1, 2,\n}\n', 3, r"invalid JSON: .*\(column 1\)"),
    "trailing comma": (doc(more=","), 5, "invalid JSON"),
    "array": (f"[{IDENTITY}]", None, "expected a JSON object with keys .*got list"),
    "missing matrix": ('{"source": "a", "target": "b"}', None, r"missing key\(s\) \['matrix'\]"),
    "missing names": (f'{{"matrix": {IDENTITY}}}', None, r"missing key\(s\) \['source', 'target'\]"),
    "3x4": (doc(matrix="[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]"), None, "'matrix': expected a 4×4 list"),
    "4x3": (doc(matrix="[[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]"), None, "expected a 4×4"),
    "string entry": (doc(matrix=IDENTITY.replace("[1, 0, 0, 0]", '["1", 0, 0, 0]')), None, "of numbers"),
    "bool entry": (doc(matrix=IDENTITY.replace("[1, 0, 0, 0]", "[true, 0, 0, 0]")), None, "of numbers"),
    "flat": (doc(matrix="[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]"), None, "expected a 4×4"),
    "nan literal": (
        doc(matrix=ROWS.replace("[0, 0, 1, 0]", "[0, 0, 1, NaN]")),
        5,
        "NaN is not a JSON number",
    ),
    "nan after string": (doc(source='"NaN"', more=',\n"x": -Infinity'), 5, "-Infinity is not a JSON number"),
    "overflow": (
        doc(matrix=IDENTITY.replace("[1, 0, 0, 0]", "[1, 0, 0, 1e999]")),
        None,
        "'matrix\\[0\\]\\[3\\]'",
    ),
    "overflow in extra": (doc(more=',\n"c": {"d": [1e999]}'), None, r"'c.d\[0\]': value is not finite"),
    "last row": (
        doc(matrix=IDENTITY.replace("[0, 0, 0, 1]", "[0, 0, 0.5, 1]")),
        None,
        r"last row must be \[0, 0, 0, 1\]",
    ),
    "empty source": (doc(source='""'), None, "'source': expected a non-empty frame name string, got ''"),
    "blank target": (doc(target='"  "'), None, "'target': expected a non-empty frame name"),
    "numeric target": (doc(target="3"), None, "'target': expected a non-empty frame name string, got 3"),
    "duplicate key": (doc(more=',\n"source": "other"'), None, "key 'source' appears more than once"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_malformed_file(tmp_path: Path, case: str) -> None:
    text, line, message = BAD_FILES[case]
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputFileError, match=where(path, line) + ".*" + message):
        read_transform(path)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=where(tmp_path / "none.json") + " transform file does not exist"):
        read_transform(tmp_path / "none.json")
    with pytest.raises(InputFileError, match="is not a regular file"):
        read_transform(tmp_path)
    binary = tmp_path / "b.json"
    binary.write_bytes(b'{"matrix": \xff}')
    with pytest.raises(InputFileError, match=where(binary) + " not a UTF-8 text file"):
        read_transform(binary)


WRITE_ERRORS = [
    ({"matrix": np.eye(3)}, TransformError, r"expected shape \(\.\.\., 4, 4\)"),
    ({"matrix": np.stack([np.eye(4)] * 2)}, TransformError, r"expected shape \(4, 4\)"),
    ({"matrix": np.full((4, 4), np.nan)}, TransformError, "NaN"),
    ({"matrix": np.ones((4, 4))}, TransformError, "last row"),
    ({"source": ""}, MrMotionError, "source: expected a non-empty frame name"),
    ({"target": None}, MrMotionError, "target: expected a non-empty frame name"),
    ({"confidence": float("nan")}, MrMotionError, "extra field 'confidence': nan is not allowed"),
    ({"stats": {"rms": [1.0, np.inf]}}, MrMotionError, r"extra field 'stats.rms\[1\]': inf"),
    ({"when": object()}, MrMotionError, "extra field 'when': object is not JSON-serialisable"),
]


@pytest.mark.parametrize(("change", "error", "message"), WRITE_ERRORS)
def test_write_errors_leave_existing_file(tmp_path: Path, change: dict, error: type, message: str) -> None:
    existing = tmp_path / "out.json"
    existing.write_text("previous\n")
    arguments = {"matrix": np.eye(4), "source": "camera", "target": "scanner", **change}
    with pytest.raises(error, match=message):
        write_transform(existing, **arguments)
    assert existing.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_write_never_overwrites_an_input(tmp_path: Path) -> None:
    source = write_transform(tmp_path / "in.json", random_rigid(3), "camera", "scanner")
    before = source.read_bytes()
    with pytest.raises(OutputFileError, match="is also an input"):
        write_transform(source, np.eye(4), "a", "b", inputs=[source])
    with pytest.raises(OutputFileError, match="does not exist"):
        write_transform(tmp_path / "missing" / "t.json", np.eye(4), "a", "b")
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json"]


def test_written_file_is_readable_standard_json(tmp_path: Path) -> None:
    matrix = transform_from_rotvec(Rotation.from_euler("z", 30, degrees=True).as_rotvec(), [1 / 3, 2e-17, 1e300])
    path = write_transform(tmp_path / "t.json", matrix, "camera", "scanner_ras")
    raw = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"non-standard literal {name}"))
    assert np.array_equal(np.array(raw["matrix"]), matrix)
    assert path.read_text().splitlines()[2] == "    " + json.dumps(matrix[0].tolist()) + ","  # one row a line


def test_ras_is_a_word_of_the_frame_name():
    from mrmotion.io.transform_json import is_ras

    assert is_ras("scanner_ras") and is_ras("RAS") and is_ras("world-RAS")
    assert not is_ras("contrast") and not is_ras("scanner") and not is_ras("brass_plate")
