import numpy as np
import pytest

from mrmotion.errors import InputFileError, MrMotionError
from mrmotion.geometry.prescription import SlicePrescription
from mrmotion.io.prescription_json import read_prescription, write_prescription
from tests.helpers import random_rigid


def _slices(count=3, seed=0):
    frames = random_rigid(np.random.default_rng(seed), count)
    return [SlicePrescription.from_transform(frame, [220.0, 200.0], 3.5, (128, 96)) for frame in frames]


def test_round_trip_is_exact(tmp_path):
    path = write_prescription(tmp_path / "slices.json", _slices())
    back = read_prescription(path)
    for before, after in zip(_slices(), back, strict=True):
        np.testing.assert_array_equal(after.scanner_from_logical(), before.scanner_from_logical())
        assert after.matrix == (128, 96) and after.thickness_mm == 3.5


NO_THICKNESS = (
    '{"position_mm": [0, 0, 0], "read_dir": [1, 0, 0], "phase_dir": [0, 1, 0], "slice_dir": [0, 0, 1], '
    '"fov_mm": [200, 200]}'
)
GOOD = (
    '{"position_mm": [0, 0, 0], "read_dir": [1, 0, 0], "phase_dir": [0, 1, 0], "slice_dir": [0, 0, 1], '
    '"fov_mm": [200, 200], "thickness_mm": 3}'
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("{}", "expected a JSON list"),
        ("[]", "no slices"),
        (
            f"[\n{GOOD},\n{GOOD.replace('[1, 0, 0]', '[1, 0]')}\n]",
            r":3: slice 1: read_dir must be a list of 3",
        ),
        (f"[\n{GOOD},\n\n{NO_THICKNESS}]", r":4: slice 1: missing field\(s\) thickness_mm"),
        (f"[{GOOD.replace('[0, 0, 0]', '[0, NaN, 0]')}]", "NaN is not a number"),
        (f"[\n{GOOD},\n{GOOD.replace('[0, 0, 1]', '[0, 0, -1]')}]", r":3: slice 1: .*left-handed"),
        (f"[\n{GOOD}\n{GOOD}]", r":3: invalid JSON: expected ','"),
        (f"[{GOOD}] trailing", "extra data"),
        (f"[{GOOD}, 5]", r"slice 1: expected an object"),
        ("[" + GOOD[:-1] + ', "matrix": [1.5, 2]}]', "matrix must be two integers"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "slices.json"
    path.write_text(text)
    with pytest.raises(InputFileError, match=message) as info:
        read_prescription(path)
    assert "slices.json" in str(info.value)


def test_missing_file_and_empty_write(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        read_prescription(tmp_path / "nope.json")
    with pytest.raises(MrMotionError, match="no slices"):
        write_prescription(tmp_path / "out.json", [])
    assert not list(tmp_path.iterdir())


def test_binary_file_is_refused_as_not_text(tmp_path):
    binary = tmp_path / "slices.json"
    binary.write_bytes(b'[{"centre_mm": \xff\xfe}]')
    with pytest.raises(InputFileError, match=r"slices.json: not a UTF-8 text file"):
        read_prescription(binary)
