"""`mrmotion pose`, `prescribe` with poses, `train-pose`: outputs, and clear errors on bad input, nothing written."""

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mrmotion.cli import app
from mrmotion.geometry.prescription import LPS_FROM_RAS
from mrmotion.io.prescription_json import read_prescription, write_prescription
from mrmotion.io.transform_json import read_transform, write_transform
from mrmotion.pose import synth
from mrmotion.pose.prospective import anatomical_slices
from tests.helpers import random_rigid

from .conftest import atlas_folder, turned_scout

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def save(path, data, scanner_from_voxel):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), LPS_FROM_RAS @ scanner_from_voxel), path)
    return path


@pytest.fixture(scope="module")
def atlas_volume(tmp_path_factory):
    folder = tmp_path_factory.mktemp("volumes")
    subject = synth.fetal_subject(atlas_folder("fetal_SB_atlas_GA31_operated"))
    rng = np.random.default_rng(11)
    pose = np.eye(4)
    pose[:3, :3] = synth.random_rotation(rng)
    grid = synth.cube_grid(pose[:3, 3], 240.0, 80)
    image, _, head = synth.render(subject, pose, grid, (80,) * 3, rng.uniform(0.2, 1, 10).astype(np.float32), 3.0)
    image = synth.add_clutter(image, head, grid, pose[:3, 3], subject.brain_size, rng)
    return save(folder / "scout.nii.gz", image, grid), pose


def test_pose_of_one_volume(atlas_volume, tmp_path):
    volume, truth = atlas_volume
    output = tmp_path / "pose.json"
    result = invoke("pose", volume, "-o", output)
    assert result.exit_code == 0, result.output
    record = read_transform(output, require_rigid=True)
    assert (record.source, record.target) == ("head", "scanner")
    assert 0 <= record.extra["confidence"] <= 1
    assert "confidence" in result.output
    # the shipped region network is validated (recorded error ≤ 30°); the held-out atlas's pose comes out right
    assert record.extra["orientation_validated"] is True and "brain centre only" not in result.output
    assert record.extra["field_of_view_extended"] is False and "field of view" not in result.output
    assert np.linalg.norm(record.matrix[:3, 3] - truth[:3, 3]) < 5
    error = np.degrees(np.arccos(np.clip((np.trace(record.matrix[:3, :3].T @ truth[:3, :3]) - 1) / 2, -1, 1)))
    assert error < 20, error


def test_pose_of_a_turned_volume_says_its_field_of_view_was_extended(held_out_t2, tmp_path):
    """A held-out scout turned and resampled (zeros outside the turned field of view; its pose is doubtful and wrong
    with them, tests/pose/test_estimate.py): the pose comes from the volume with those zeros filled, and the JSON and
    the message say so."""
    moved, grid, pose, motion = turned_scout(held_out_t2, 11)
    volume = save(tmp_path / "turned.nii.gz", moved, grid)
    output = tmp_path / "pose.json"
    result = invoke("pose", volume, "-o", output)
    assert result.exit_code == 0, result.output
    record = read_transform(output, require_rigid=True)
    assert record.extra["field_of_view_extended"] is True and record.extra["confidence"] >= 0.5
    assert "zeros outside its field of view" in " ".join(result.output.split())
    assert np.linalg.norm(record.matrix[:3, 3] - pose[:3, 3]) < 5


def test_pose_of_a_folder_with_a_bad_file(atlas_volume, tmp_path):
    volume, _ = atlas_volume
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.nii.gz").write_bytes(volume.read_bytes())
    (folder / "broken.nii.gz").write_bytes(b"not a nifti")
    (folder / "notes.txt").write_text("ignored")
    result = invoke("pose", folder, "-o", tmp_path / "out")
    assert result.exit_code == 2  # one volume had no pose: said, and the rest written
    assert (tmp_path / "out" / "a.json").is_file()
    assert not (tmp_path / "out" / "broken.json").exists()
    said = " ".join(result.output.split())  # unwrapped
    assert said.count("broken.nii.gz: ") == 1  # its line names it once (the error names the file)


def test_pose_folder_reports_the_start_then_each_volume(tmp_path, monkeypatch):
    from mrmotion.commands import pose as pose_commands

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.nii.gz", "b.nii"):
        save(folder / name, np.random.default_rng(0).random((6, 6, 6)), np.eye(4))
    monkeypatch.setattr(pose_commands, "pose_file", lambda volume, *args: pose_commands.PoseResult(volume, None, None))
    calls = []
    results = pose_commands.pose_folder(folder, tmp_path / "out", progress=lambda *call: calls.append(call))
    assert calls == [(0, 2, None), (1, 2, results[0]), (2, 2, results[1])]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.zeros((20, 20)), "3-D"),
        (np.zeros((8, 8, 8, 3)), "3-D"),
        (np.full((12, 12, 12), 5.0), "constant"),
        (np.where(np.eye(12)[:, :, None] > 0, np.nan, 1.0) * np.ones((12, 12, 12)), "NaN"),
    ],
)
def test_pose_bad_volumes(tmp_path, data, message, monkeypatch):
    """Refused with the reason, nothing written, and before the networks are loaded (no wait for a bad file)."""
    import mrmotion.pose.estimate

    def no_weights(*args, **kwargs):
        raise AssertionError("the weights were loaded for a volume that fails its checks")

    monkeypatch.setattr(mrmotion.pose.estimate, "default_model", no_weights)
    volume = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), np.eye(4)), volume)
    output = tmp_path / "pose.json"
    result = invoke("pose", volume, "-o", output)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not output.exists()


def test_pose_precision_option(atlas_volume, tmp_path):
    volume, truth = atlas_volume
    output = tmp_path / "pose.json"
    result = invoke("pose", volume, "-o", output, "--precision", "float32")
    assert result.exit_code == 0, result.output
    assert read_transform(output, require_rigid=True).extra["precision"] == "float32"
    refused = tmp_path / "refused.json"
    result = invoke("pose", volume, "-o", refused, "--precision", "half")
    assert result.exit_code == 2 and "unknown precision 'half'" in result.output
    assert not refused.exists()


def test_pose_missing_input_and_output_over_input(tmp_path):
    result = invoke("pose", tmp_path / "missing.nii.gz", "-o", tmp_path / "p.json")
    assert result.exit_code == 2 and "does not exist" in result.output
    volume = save(tmp_path / "v.nii.gz", np.random.default_rng().random((8, 8, 8)), np.eye(4))
    before = volume.read_bytes()
    result = invoke("pose", volume, "-o", volume)
    assert result.exit_code == 2 and volume.read_bytes() == before


def _poses_and_slices(tmp_path):
    rng = np.random.default_rng()
    before, after = random_rigid(rng, 2, scale_mm=10)
    write_transform(tmp_path / "p0.json", before, "head", "scanner", confidence=0.9)
    write_transform(tmp_path / "p1.json", after, "head", "scanner", confidence=0.9)
    write_prescription(
        tmp_path / "slices.json", anatomical_slices(before, "coronal", 4, 5.0, (200, 180), 4.0, (96, 80))
    )
    return before, after


def test_prescribe_follows_the_head(tmp_path):
    _, after = _poses_and_slices(tmp_path)
    output = tmp_path / "new.json"
    result = invoke(
        "prescribe",
        "--slices",
        tmp_path / "slices.json",
        "--pose-ref",
        tmp_path / "p0.json",
        "--pose",
        tmp_path / "p1.json",
        "-o",
        output,
    )
    assert result.exit_code == 0, result.output
    expected = anatomical_slices(after, "coronal", 4, 5.0, (200, 180), 4.0, (96, 80))
    for a, b in zip(read_prescription(output), expected, strict=True):
        assert np.allclose(a.scanner_from_logical(), b.scanner_from_logical(), atol=1e-9)


def test_prescribe_anatomical(tmp_path):
    _, after = _poses_and_slices(tmp_path)
    output = tmp_path / "sag.json"
    result = invoke(
        "prescribe",
        "--slices",
        tmp_path / "slices.json",
        "--pose",
        tmp_path / "p1.json",
        "--anatomical",
        "sagittal",
        "-o",
        output,
    )
    assert result.exit_code == 0, result.output
    new = read_prescription(output)
    assert len(new) == 4 and new[0].matrix == (96, 80)
    assert np.allclose(abs(np.dot(new[0].slice_dir, after[:3, 0])), 1)  # normal along the head's left–right axis


@pytest.mark.parametrize(
    "args",
    [
        ["--pose", "p1.json"],  # no mode
        ["--pose-ref", "p0.json"],  # --pose missing
        ["--pose-ref", "p0.json", "--pose", "p1.json", "--anatomical", "axial"],  # two modes
        ["--pose", "p1.json", "--anatomical", "oblique"],
        ["--tracker", "p0.json"],  # calibration missing
    ],
)
def test_prescribe_bad_combinations(tmp_path, args):
    _poses_and_slices(tmp_path)
    output = tmp_path / "out.json"
    result = invoke(
        "prescribe",
        "--slices",
        tmp_path / "slices.json",
        *[tmp_path / a if a.endswith(".json") else a for a in args],
        "-o",
        output,
    )
    assert result.exit_code == 2, result.output
    assert "error" in result.output and not output.exists()


def test_prescribe_refuses_a_doubtful_pose_unless_told_otherwise(tmp_path):
    """A pose below --min-confidence (default: the 0.5 below which `mrmotion pose` calls it not reliable) moves no
    slices and writes nothing; --min-confidence 0 takes it; a pose without a confidence (not from `mrmotion pose`)
    is taken as it is."""
    from mrmotion.pose.estimate import LOW_CONFIDENCE

    _, after = _poses_and_slices(tmp_path)
    write_transform(tmp_path / "doubtful.json", after, "head", "scanner", confidence=0.31)
    write_transform(tmp_path / "plain.json", after, "head", "scanner")

    def prescribe(pose, *more):
        return invoke(
            "prescribe", "--slices", tmp_path / "slices.json", "--pose-ref", tmp_path / "p0.json", "--pose",
            tmp_path / pose, "-o", tmp_path / "new.json", *more,
        )  # fmt: skip

    result = prescribe("doubtful.json")
    assert result.exit_code == 2 and "confidence 0.31, below 0.5" in result.output
    assert not (tmp_path / "new.json").exists()
    anatomical = invoke(
        "prescribe", "--slices", tmp_path / "slices.json", "--pose", tmp_path / "doubtful.json", "--anatomical",
        "axial", "-o", tmp_path / "new.json",
    )  # fmt: skip
    assert anatomical.exit_code == 2 and "confidence 0.31" in anatomical.output
    assert not (tmp_path / "new.json").exists()
    assert prescribe("doubtful.json", "--min-confidence", "0.3").exit_code == 0
    (tmp_path / "new.json").unlink()
    assert prescribe("plain.json").exit_code == 0
    (tmp_path / "new.json").unlink()
    for bad in ("1.5", "-0.1", "nan"):
        result = prescribe("p1.json", "--min-confidence", bad)
        assert result.exit_code == 2 and "--min-confidence" in result.output, result.output
        assert not (tmp_path / "new.json").exists()
    write_transform(tmp_path / "odd.json", after, "head", "scanner", confidence="high")
    result = prescribe("odd.json")
    assert result.exit_code == 2 and "confidence must be a number" in result.output
    # the default threshold is the one below which `mrmotion pose` calls a pose not reliable
    for offset, code in ((-0.01, 2), (0.01, 0)):
        write_transform(tmp_path / "edge.json", after, "head", "scanner", confidence=LOW_CONFIDENCE + offset)
        assert prescribe("edge.json").exit_code == code


def test_prescribe_refuses_a_non_head_pose_and_a_non_rigid_one(tmp_path):
    _poses_and_slices(tmp_path)
    write_transform(tmp_path / "cam.json", np.eye(4), "camera", "scanner")
    shear = np.eye(4)
    shear[0, 1] = 0.2
    write_transform(tmp_path / "shear.json", shear, "head", "scanner")
    for bad, message in (("cam.json", "head pose"), ("shear.json", "")):
        result = invoke(
            "prescribe",
            "--slices",
            tmp_path / "slices.json",
            "--pose-ref",
            tmp_path / "p0.json",
            "--pose",
            tmp_path / bad,
            "-o",
            tmp_path / "o.json",
        )
        assert result.exit_code == 2 and message in result.output
        assert not (tmp_path / "o.json").exists()


def test_train_pose_bad_arguments(tmp_path):
    result = invoke("train-pose", "--atlases", tmp_path, "-o", tmp_path / "missing")
    assert result.exit_code == 2 and "does not exist" in result.output
    result = invoke("train-pose", "--atlases", tmp_path, "-o", tmp_path, "--stage", "everything")
    assert result.exit_code == 2 and "stage" in result.output
    result = invoke("train-pose", "--atlases", tmp_path, "-o", tmp_path, "--stage", "regions", "--steps", "1")
    assert result.exit_code == 2 and "no atlas folder" in result.output
    result = invoke("train-pose", "--atlases", tmp_path, "-o", tmp_path, "--stage", "localiser", "--t2-share", "1.5")
    assert result.exit_code == 2 and "--t2-share must be in [0, 1]" in result.output
    result = invoke("train-pose", "--atlases", tmp_path, "-o", tmp_path, "--stage", "templates", "--t2-share", "-1")
    assert result.exit_code == 2 and "--t2-share must be in [0, 1]" in result.output  # checked before any stage
    result = invoke("train-pose", "--atlases", tmp_path, "-o", tmp_path, "--stage", "regions", "--adult-share", "2")
    assert result.exit_code == 2 and "--adult-share must be in [0, 1]" in result.output
    result = invoke(
        "train-pose", "--atlases", tmp_path, "-o", tmp_path, "--stage", "localiser", "--zero-fill-share", "nan"
    )
    assert result.exit_code == 2 and "--zero-fill-share must be in [0, 1]" in result.output
    result = invoke("train-pose", "--atlases", tmp_path, "-o", tmp_path, "--stage", "templates")
    assert result.exit_code == 2 and "no atlas folder" in result.output
    assert not list(tmp_path.glob("*.safetensors"))


def test_train_pose_templates_stage_writes_templates_the_estimator_uses(tmp_path):
    import shutil

    from mrmotion.pose.estimate import TEMPLATES_FILE, PoseModel, weights_folder

    atlases = atlas_folder().parent
    result = invoke("train-pose", "--atlases", atlases, "-o", tmp_path, "--stage", "templates")
    assert result.exit_code == 0, result.output
    for name in ("pose_localiser.safetensors", "pose_regions.safetensors"):
        shutil.copy(weights_folder() / name, tmp_path / name)
    model = PoseModel.load(tmp_path)
    shipped = PoseModel.load()
    assert model.templates is not None and torch.equal(model.templates.templates, shipped.templates.templates)
    (tmp_path / TEMPLATES_FILE).unlink()
    assert PoseModel.load(tmp_path).templates is None  # without templates: the closed-form rotation alone


def test_train_pose_runs_resumes_and_extends(tmp_path):
    atlases = atlas_folder().parent
    result = invoke("train-pose", "--atlases", atlases, "-o", tmp_path, "--stage", "regions", "--steps", "2")
    assert result.exit_code == 0, result.output
    weights = tmp_path / "pose_regions.safetensors"
    assert weights.is_file()
    first = weights.read_bytes()
    result = invoke(  # extended with samples rendered from the atlases' T2 images (the regions stage takes them too)
        "train-pose", "--atlases", atlases, "-o", tmp_path, "--stage", "regions", "--steps", "3", "--resume",
        "--t2-share", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "pose_regions.log.csv").read_text().splitlines()
    assert rows[0].startswith("step") and [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    assert weights.read_bytes() != first
    from mrmotion.pose.estimate import _load

    network, config = _load(weights)
    assert config["stage"] == "regions" and config["steps"] == 3 and config["t2_share"] == 1
    card = (tmp_path / "pose_card.md").read_text()
    assert "pose_regions.safetensors" in card and "3 × 8" in card and "not trained yet" in card


def test_pose_passes_option(atlas_volume, tmp_path):
    volume, truth = atlas_volume
    output = tmp_path / "pose.json"
    result = invoke("pose", volume, "-o", output, "--passes", "2")
    assert result.exit_code == 0, result.output
    record = read_transform(output, require_rigid=True)
    assert record.extra["passes"] in (1, 2)
    for bad in ("0", "6"):
        refused = tmp_path / f"refused{bad}.json"
        result = invoke("pose", volume, "-o", refused, "--passes", bad)
        assert result.exit_code == 2 and "passes must be a whole number from 1 to 5" in result.output
        assert not refused.exists()


def test_card_compares_the_passes_runs_beside_the_benchmark(tmp_path):
    """The card's held-out table comes from pose.json and its --passes table from every pose_passes<N>.json beside
    it (a tagged run adds a row, it does not replace the card's evaluation); one run alone: no passes table."""
    import json

    from mrmotion.pose.card import card_text
    from mrmotion.pose.estimate import weights_folder

    def run(name: str, median: float, equivariance: float, passes: int | None = None, date: str | None = None):
        summary = {"count": 6, "rotation_median_deg": median, "rotation_p95_deg": 9.0, "failures": 0.0,
                   "translation_median_mm": 0.7, "seconds_per_volume": 0.2}  # fmt: skip
        results = {"summary": {"ours": summary, "other": {**summary, "rotation_median_deg": 40.0}},
                   "equivariance_deg": {"head": [equivariance] * 3, "head, clean": [1.0, 2.0, 9.0]}}  # fmt: skip
        if passes is not None:
            results["run"] = {"passes": passes}
        (tmp_path / name).write_text(json.dumps(results))
        if date:
            (tmp_path / name).with_suffix(".txt").write_text(f"# {date} · vm · more\n")

    run("pose.json", 3.5, 3.53, date="2026-11-25 06:07")
    alone = card_text(weights_folder(), tmp_path / "pose.json")
    assert "| ours | 6 | 3.5 | 9.0 |" in alone and "--passes N" not in alone
    run("pose_passes5.json", 3.3, 2.9)
    run("pose_passes3.json", 3.4, 3.0, passes=3, date="2026-11-25 03:23")
    run("pose_passes3_quick.json", 9.9, 9.9, passes=3)  # a quick run: not in the card
    card = card_text(weights_folder(), tmp_path / "pose.json")
    assert "| ours | 6 | 3.5 | 9.0 |" in card  # the evaluation is still pose.json's
    rows = [
        line
        for line in card.splitlines()
        if line.startswith("| 1 |") or line.startswith("| 3 |") or line.startswith("| 5 |")
    ]
    assert [row.split(" | ")[1] for row in rows] == [
        "`pose.json` (2026-11-25 06:07)",
        "`pose_passes3.json` (2026-11-25 03:23)",
        "`pose_passes5.json` (?)",
    ]
    assert "3.53 / 2.00 / —" in rows[0] and "| 3.3 |" in rows[2] and "| 9.9 |" not in card
