"""Training stages, resume, weights and card; the `correct` and `train-correct` commands on good and bad input."""

from __future__ import annotations

import csv
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mrmotion.cli import app
from mrmotion.errors import MrMotionError
from mrmotion.io.weights import weights_metadata
from mrmotion.learn import data, train
from mrmotion.learn.card import write_card
from mrmotion.learn.correct import correct_image
from mrmotion.learn.model import FILES, CorrectionModel, load_unet
from tests.helpers import save_with_sform_only
from tests.learn.conftest import phantom

runner = CliRunner()
TINY = {"steps": 3, "finetune_steps": 0, "batch": 2, "pairs": 6,
        "vq": {"channels": 16, "top_codes": 16, "bottom_codes": 16, "code_dim": 4, "commitment": 0.25},
        "unet_width": 4, "prior": {"channels": 8, "layers": 1}}  # fmt: skip


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_same_unet(first, second) -> None:
    """The two U-Net weights files hold the same tensors."""
    a, b = load_unet(first), load_unet(second)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, msg=name)


@pytest.fixture(autouse=True)
def phantom_data(monkeypatch, phantom_slices):
    """Phantom slices instead of the MNI template, so a training run takes seconds."""
    monkeypatch.setattr(data, "mni_slices", lambda split, every=3: phantom_slices)
    monkeypatch.setattr(train, "VALIDATION_COUNT", 3)
    monkeypatch.setattr(train, "SHIPPED", {
        name: (replace(config, **TINY), filename) for name, (config, filename) in train.SHIPPED.items()
    })  # fmt: skip


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as patch:
        slices = [data.SliceImage(phantom(seed=s), 1.8, f"phantom:{s}") for s in range(3)]
        patch.setattr(data, "mni_slices", lambda split, every=3: slices)
        patch.setattr(train, "VALIDATION_COUNT", 3)
        for stage in ("vqvae", "prior", "unet"):
            config = replace(train.SHIPPED[stage][0], **TINY)
            train.train(config, None, folder / FILES[stage], vqvae_weights=folder / FILES["vqvae"])
    return folder


def test_each_stage_writes_weights_log_and_card(tiny_weights):
    for stage in ("vqvae", "prior", "unet"):
        assert (tiny_weights / FILES[stage]).is_file()
        log = (tiny_weights / FILES[stage]).with_suffix(".log.csv").read_text().splitlines()
        assert log[0].startswith("step,seconds") and len(log) == 1 + TINY["steps"]
        assert log[-1].split(",")[4] != ""  # validation on the last step
    with (tiny_weights / FILES["vqvae"]).with_suffix(".log.csv").open() as handle:
        vq_last = list(csv.DictReader(handle))[-1]
    assert float(vq_last["top_perplexity"]) >= 1.0 and 0.0 <= float(vq_last["top_dead"]) <= 1.0
    assert float(vq_last["validation_psnr"]) > 0.0
    card = write_card(tiny_weights).read_text()
    for stage in ("vqvae", "prior", "unet"):
        assert FILES[stage] in card
    assert "code usage" in card and "drift" in card


def test_a_run_stopped_after_a_checkpoint_resumes_to_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "CHECKPOINT_EVERY", 2)
    config = replace(train.SHIPPED["unet"][0], **{**TINY, "steps": 4})
    train.train(config, None, tmp_path / "straight.safetensors")

    def stop(done, total, row):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.train(config, None, tmp_path / "resumed.safetensors", progress=stop)
    assert not (tmp_path / "resumed.safetensors").exists()
    train.train(config, None, tmp_path / "resumed.safetensors", resume=True)
    assert_same_unet(tmp_path / "straight.safetensors", tmp_path / "resumed.safetensors")
    assert len((tmp_path / "resumed.log.csv").read_text().splitlines()) == 5
    assert b"\r" not in (tmp_path / "resumed.log.csv").read_bytes()  # one line ending, before and after the resume
    with pytest.raises(MrMotionError, match="different configuration"):
        train.train(replace(config, learning_rate=0.5), None, tmp_path / "resumed.safetensors", resume=True)


def test_learning_rate_is_one_cosine_or_a_cosine_then_the_extension():
    config = replace(train.SHIPPED["unet"][0], steps=10, extended_from=0, learning_rate=1.0)
    assert train.learning_rate(config, 0) == 1.0 and train.learning_rate(config, 5) == pytest.approx(0.5)
    extended = replace(config, extended_from=4)
    assert train.learning_rate(extended, 2) == pytest.approx(0.5)  # the first cosine, over 4 steps
    assert train.learning_rate(extended, 5) == pytest.approx(train.learning_rate(config, 5))  # then the one over 10
    for first in (10, 12):  # not shorter than the run: one cosine
        assert train.learning_rate(replace(config, extended_from=first), 2) == train.learning_rate(config, 2)


def test_a_finished_run_extended_with_more_steps_equals_the_extended_schedule_in_one_run(tmp_path):
    """Train 2 steps, then --steps 4 --resume: the same weights as one run with steps=4, extended_from=2 (how the
    shipped weights' schedule is written down)."""
    config = replace(train.SHIPPED["unet"][0], **{**TINY, "steps": 2}, extended_from=0)
    train.train(config, None, tmp_path / "twice.safetensors")
    train.train(replace(config, steps=4), None, tmp_path / "twice.safetensors", resume=True)
    train.train(replace(config, steps=4, extended_from=2), None, tmp_path / "once.safetensors")
    assert_same_unet(tmp_path / "twice.safetensors", tmp_path / "once.safetensors")
    assert weights_metadata(tmp_path / "twice.safetensors")["config"]["extended_from"] == 2  # the card says so
    rates = [row.split(",")[2] for row in (tmp_path / "twice.log.csv").read_text().splitlines()[1:]]
    assert rates == [row.split(",")[2] for row in (tmp_path / "once.log.csv").read_text().splitlines()[1:]]


def test_learning_rate_of_the_fine_tuning_is_a_fresh_cosine_over_its_steps():
    config = replace(train.SHIPPED["unet"][0], steps=10, extended_from=0, learning_rate=1.0, finetune_steps=4,
                     finetune_learning_rate=0.5)  # fmt: skip
    assert train.main_steps(config) == 6
    assert train.learning_rate(config, 3) == pytest.approx(0.5)  # the main cosine, over 6 steps
    assert train.learning_rate(config, 6) == 0.5 and train.learning_rate(config, 8) == pytest.approx(0.25)
    assert train.learning_rate(replace(config, extended_from=2), 4) == pytest.approx(train.learning_rate(config, 4))


def _vq_weights(path):
    from mrmotion.learn.model import load_vqvae

    return load_vqvae(path).state_dict()


def test_vqvae_fine_tuning_keeps_the_codes_and_resumes_exactly(tmp_path, monkeypatch):
    """steps=6 with finetune_steps=3 in one run equals 3 steps, then --steps 6 --resume with the fine-tuning, and a
    run stopped during the fine-tuning and resumed; the fine-tuning leaves the encoder and codebooks as they were."""
    monkeypatch.setattr(train, "CHECKPOINT_EVERY", 2)
    base = replace(train.SHIPPED["vqvae"][0], **TINY, extended_from=0)
    config = replace(base, steps=6, finetune_steps=3)
    train.train(config, None, tmp_path / "once.safetensors")
    train.train(replace(base, steps=3, finetune_steps=0), None, tmp_path / "twice.safetensors")
    main = _vq_weights(tmp_path / "twice.safetensors")
    train.train(config, None, tmp_path / "twice.safetensors", resume=True)

    def stop(done, total, row):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.train(config, None, tmp_path / "stopped.safetensors", progress=stop)
    train.train(config, None, tmp_path / "stopped.safetensors", resume=True)  # from the checkpoint at step 4
    once = _vq_weights(tmp_path / "once.safetensors")
    for other in ("twice", "stopped"):
        for key, value in _vq_weights(tmp_path / f"{other}.safetensors").items():
            torch.testing.assert_close(value, once[key], msg=f"{other}: {key}")
    decoder = ("upsample_top", "decode.", "detail", "fuse")
    for key, value in once.items():
        if not key.startswith(decoder):
            torch.testing.assert_close(value, main[key], msg=key)
    assert any(not torch.equal(once[k], main[k]) for k in once if k.startswith(decoder))
    used = weights_metadata(tmp_path / "twice.safetensors")["config"]
    assert used["finetune_steps"] == 3 and used["extended_from"] == 0


def test_fine_tuning_steps_that_do_not_fit_are_refused(tmp_path):
    for stage, steps, finetune in (("unet", 3, 3), ("unet", 3, -1), ("prior", 3, 1)):
        config = replace(train.SHIPPED[stage][0], **{**TINY, "steps": steps, "finetune_steps": finetune})
        with pytest.raises(MrMotionError, match="finetune_steps"):
            train.train(config, None, tmp_path / "x.safetensors", vqvae_weights=tmp_path / "none")
    assert not (tmp_path / "x.safetensors").exists()


def test_prior_stage_needs_the_vqvae_and_unknown_stages_are_refused(tmp_path):
    with pytest.raises(MrMotionError, match="VQ-VAE"):
        train.train(train.SHIPPED["prior"][0], None, tmp_path / "p.safetensors", vqvae_weights=tmp_path / "none")
    with pytest.raises(MrMotionError, match="unknown stage"):
        train.train(replace(train.SHIPPED["unet"][0], stage="gan"), None, tmp_path / "g.safetensors")


def test_correct_image_keeps_shape_scale_and_empty_slices(tiny_weights):
    model = CorrectionModel.load(tiny_weights)
    volume = np.stack([phantom(96, seed=s)[:, :80] * 500 for s in range(3)], axis=-1)
    volume[..., 1] = 0
    out = correct_image(volume, 0.5, model)
    assert out.shape == volume.shape and out.dtype == np.float32
    assert np.all(out[..., 1] == 0) and np.all(out >= 0)
    assert correct_image(volume[..., 0], 0.0, model).shape == (96, 80)


def test_intensities_far_outside_training_are_normalised_not_refused(tiny_weights):
    model = CorrectionModel.load(tiny_weights)
    image = phantom(64)
    reference = correct_image(image, 0.5, model)
    for factor in (1e-6, 1e6):
        np.testing.assert_allclose(correct_image(image * factor, 0.5, model), reference * factor, rtol=1e-4, atol=0)


def test_correct_image_puts_each_slice_back_where_and_as_bright_as_it_was(tiny_weights, monkeypatch):
    """With a network that changes nothing, the pipeline (normalise, pad, resample, back) returns the input exactly,
    also the detail of slices finer than the working grid (a pixel checkerboard, lost when the corrected image itself
    was resampled back); a network that adds a constant on the working grid adds it across the whole slice."""
    from mrmotion.learn import correct

    model = CorrectionModel.load(tiny_weights)
    monkeypatch.setattr(correct, "correct_batch", lambda vqvae, prior, images, strength: images)
    for height, width in ((100, 70), (300, 260)):
        y, x = np.mgrid[0:height, 0:width]
        blob = [np.exp(-(((y - 0.4 * height - 5 * s) / 15) ** 2) - ((x - 0.4 * width) / 12) ** 2) for s in range(3)]
        volume = np.stack([700 * (b + 0.2 + 0.1 * ((x + y) % 2)) for b in blob], -1)
        out = correct_image(volume, 1.0, model)
        np.testing.assert_allclose(out, volume, rtol=1e-5)
    monkeypatch.setattr(correct, "correct_batch", lambda vqvae, prior, images, strength: images + 0.1)
    scale = np.percentile(volume[:, :, 0], 99.5)
    out = correct_image(volume[:, :, 0], 0.0, model, symmetries=1)
    np.testing.assert_allclose(out, volume[:, :, 0] + 0.1 * scale, rtol=1e-4)


def test_correct_image_keeps_fine_detail_inside_the_object_only(tiny_weights, monkeypatch):
    """A slice finer than the working grid, an identity network: inside the object the slice comes back as it was
    (its pixel checkerboard included); outside, its fine noise is the working grid's smooth round trip."""
    from mrmotion.learn import correct

    monkeypatch.setattr(correct, "correct_batch", lambda vqvae, prior, images, strength: images)
    rng = np.random.default_rng()
    y, x = np.mgrid[0:320, 0:280]
    disc = np.hypot(y - 160, x - 140) < 90
    image = np.where(disc, 500 + 100 * ((x + y) % 2), 0) + np.abs(rng.normal(0, 20, disc.shape))
    out = correct_image(image, 0.0, CorrectionModel.load(tiny_weights), symmetries=1)
    core = np.hypot(y - 160, x - 140) < 80
    np.testing.assert_allclose(out[core], image[core], rtol=1e-4)
    far = np.hypot(y - 160, x - 140) > 110
    assert np.std(out[far]) < 0.5 * np.std(image[far])  # the background's pixel noise smoothed, not copied


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((4, 4, 4, 2)), "4-D"),
        (np.zeros(5), "1-D"),
        (np.zeros((0, 8)), "empty"),
        (np.zeros((16, 16)), "all zeros"),
        (np.ones((1, 1, 1)), "too small"),
        (np.ones((256, 8, 3)), "8 pixels are too small"),
        (np.where(np.eye(16) > 0, np.nan, 1.0), "NaN"),
        (np.random.default_rng(0).normal(size=(16, 16)), "magnitude"),
    ],
)
def test_correct_image_refuses_bad_input(tiny_weights, bad, message):
    with pytest.raises(MrMotionError, match=message):
        correct_image(bad, 1.0, CorrectionModel.load(tiny_weights))


def test_correct_image_refuses_bad_strength(tiny_weights):
    for strength in (-1.0, float("nan")):
        with pytest.raises(MrMotionError, match="prior strength"):
            correct_image(phantom(), strength, CorrectionModel.load(tiny_weights))


def test_correct_image_averaged_over_flips_is_exactly_equivariant_to_them(tiny_weights, monkeypatch):
    """With a stand-in network that is not equivariant (it adds a ramp), the 4-flip average is: flipping the
    input flips the output."""
    from mrmotion.learn import correct

    ramp = torch.linspace(0, 0.5, data.WORKING_SIZE)[None, None, :, None]
    monkeypatch.setattr(correct, "correct_batch", lambda vqvae, prior, images, strength: images + ramp)
    model = CorrectionModel.load(tiny_weights)
    image = phantom(64, seed=2)
    once = correct_image(image, 0.0, model, symmetries=1)
    averaged = correct_image(image, 0.0, model, symmetries=4)
    assert not np.allclose(once, averaged, rtol=0, atol=0.05 * once.max())
    for flip in ((0,), (1,), (0, 1)):
        flipped = correct_image(np.flip(image, flip), 0.0, model, symmetries=4)
        np.testing.assert_allclose(flipped, np.flip(averaged, flip), rtol=0, atol=1e-5 * averaged.max())


def test_correct_image_refuses_bad_symmetries(tiny_weights):
    for symmetries in (0, 3, True, 2.5):
        with pytest.raises(MrMotionError, match="symmetries must be one of 1, 2, 4, 8"):
            correct_image(phantom(), 0.0, CorrectionModel.load(tiny_weights), symmetries=symmetries)


def test_correct_command_writes_the_input_geometry_and_refuses_to_overwrite(tmp_path, tiny_weights):
    affine = np.array([[0.9, 0, 0, -40], [0, 0.9, 0.1, -50], [0, -0.1, 3.0, 10], [0, 0, 0, 1]])
    source = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([phantom(64, s) for s in range(2)], -1).astype(np.float32), affine), source)
    before = source.read_bytes()
    out = tmp_path / "out.nii.gz"
    result = invoke("correct", source, "-o", out, "--prior-strength", "0.5", "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    written = nib.load(out)
    assert written.shape == (64, 64, 2)
    np.testing.assert_allclose(written.affine, affine, atol=1e-5)
    result = invoke("correct", source, "-o", source, "--weights", tiny_weights)
    assert result.exit_code == 2 and "input" in result.output
    assert source.read_bytes() == before
    result = invoke("correct", tmp_path / "missing.nii.gz", "-o", tmp_path / "x.nii.gz", "--weights", tiny_weights)
    assert result.exit_code == 2 and "missing.nii.gz" in result.output
    (tmp_path / "corrupt.nii.gz").write_bytes(b"not nifti")
    result = invoke("correct", tmp_path / "corrupt.nii.gz", "-o", tmp_path / "y.nii.gz", "--weights", tiny_weights)
    assert result.exit_code == 2 and "corrupt.nii.gz" in result.output
    result = invoke("correct", source, "-o", tmp_path / "z.nii.gz", "--weights", tmp_path / "nowhere")
    assert result.exit_code == 2 and "weights not found" in result.output
    flat = tmp_path / "flat.nii.gz"
    save_with_sform_only(flat, phantom(64)[..., None].repeat(2, -1))
    result = invoke("correct", flat, "-o", tmp_path / "flat_out.nii.gz", "--weights", tiny_weights)
    assert result.exit_code == 2 and "the affine is singular" in result.output
    assert "correcting slices" not in result.output  # refused before any work: no progress bar above the error
    assert not (tmp_path / "flat_out.nii.gz").exists()
    result = invoke("correct", source, "-o", tmp_path / "w.png", "--weights", tiny_weights)
    assert result.exit_code == 2 and ".nii" in result.output
    result = invoke("correct", source, "-o", tmp_path / "v.nii.gz", "--weights", tiny_weights, "--symmetries", "3")
    assert result.exit_code == 2 and "symmetries must be one of" in result.output
    assert not (tmp_path / "v.nii.gz").exists()
    result = invoke("correct", source, "-o", tmp_path / "u.nii.gz", "--weights", tiny_weights, "--symmetries", "1")
    assert result.exit_code == 0 and (tmp_path / "u.nii.gz").is_file()
    for shape in ((64, 64), (64, 64, 1)):  # a single slice keeps its stored shape
        single = tmp_path / f"single{len(shape)}.nii.gz"
        nib.save(nib.Nifti1Image(phantom(64).reshape(shape).astype(np.float32), affine), single)
        result = invoke("correct", single, "-o", tmp_path / f"out{len(shape)}.nii.gz", "--weights", tiny_weights)
        assert result.exit_code == 0, result.output
        assert nib.load(tmp_path / f"out{len(shape)}.nii.gz").shape == shape


def test_train_correct_command(tmp_path):
    result = invoke("train-correct", "-o", tmp_path, "--stage", "unet", "--steps", "2")
    assert result.exit_code == 0, result.output
    assert (tmp_path / FILES["unet"]).is_file() and (tmp_path / "correct_card.md").is_file()
    assert invoke("train-correct", "-o", tmp_path / "none").exit_code == 2
    result = invoke("train-correct", "-o", tmp_path, "--stage", "gan")
    assert result.exit_code == 2 and "unknown stage" in result.output
    assert invoke("train-correct", "-o", tmp_path, "--steps", "0").exit_code == 2
    result = invoke("train-correct", "-o", tmp_path, "--stage", "unet", "--steps", "2", "--finetune-steps", "2")
    assert result.exit_code == 2 and "2 fine-tuning steps do not fit in 2 steps" in result.output
    result = invoke("train-correct", "-o", tmp_path, "--finetune-steps", "-1")
    assert result.exit_code == 2 and "-1 fine-tuning steps do not fit" in result.output
    unet_weights = (tmp_path / FILES["unet"]).read_bytes()
    result = invoke("train-correct", "-o", tmp_path, "--stage", "unet", "--steps", "3", "--finetune-steps", "1")
    assert result.exit_code == 0, result.output
    assert weights_metadata(tmp_path / FILES["unet"])["config"]["finetune_steps"] == 1
    assert (tmp_path / FILES["unet"]).read_bytes() != unet_weights


def test_correct_command_finds_the_slice_axis(tmp_path, tiny_weights, monkeypatch):
    """A volume is corrected along its slices: the header's slice dimension, else the axis of thick voxels, else
    the third; --slice-axis overrides. The output keeps the stored axis order."""
    from mrmotion.learn import correct as correct_module

    seen = []

    pixels = []

    def record(data, *args, **kwargs):
        seen.append(np.shape(data))
        pixels.append(kwargs.get("pixel_mm"))
        return np.asarray(data, dtype=np.float32) * 2

    monkeypatch.setattr(correct_module, "correct_image", record)
    volume = np.stack([phantom(64, s) for s in range(3)], 0).astype(np.float32)  # (3, 64, 64): slices along axis 0
    thick_first = np.diag([4.0, 0.9, 0.9, 1.0])
    cases = [
        ("thick.nii.gz", thick_first, None, "auto", (64, 64, 3)),
        ("header.nii.gz", np.diag([1.0, 1.0, 1.0, 1.0]), 1, "auto", (3, 64, 64)),
        ("isotropic.nii.gz", np.diag([1.0, 1.0, 1.0, 1.0]), None, "auto", (3, 64, 64)),
        ("forced.nii.gz", thick_first, None, "1", (3, 64, 64)),
    ]
    for name, affine, dim, axis, expected in cases:
        image = nib.Nifti1Image(volume, affine)
        if dim is not None:
            image.header.set_dim_info(slice=dim)
        nib.save(image, tmp_path / name)
        out = tmp_path / f"out_{name}"
        result = invoke("correct", tmp_path / name, "-o", out, "--weights", tiny_weights, "--slice-axis", axis)
        assert result.exit_code == 0, result.output
        assert seen[-1] == expected, (name, seen[-1])
        in_plane = {"thick.nii.gz": (0.9, 0.9), "forced.nii.gz": (4.0, 0.9)}.get(name, (1.0, 1.0))
        assert pixels[-1] == pytest.approx(in_plane, rel=1e-6)  # the in-plane pixel sizes reach the model
        np.testing.assert_allclose(nib.load(out).get_fdata(), 2 * volume, rtol=1e-6)  # back in the stored order
    result = invoke("correct", tmp_path / "thick.nii.gz", "-o", tmp_path / "bad.nii.gz", "--slice-axis", "3")
    assert result.exit_code == 2 and "--slice-axis must be one of auto, 0, 1, 2" in result.output
    assert not (tmp_path / "bad.nii.gz").exists()


def test_rectangular_pixels_reach_the_model_square(tiny_weights, monkeypatch):
    """A disc scanned with 1 × 2 mm pixels (an ellipse in pixels) reaches the network as a disc, and with a network
    that changes nothing the image comes back on its own grid; the command passes the affine's pixel sizes."""
    from mrmotion.learn import correct

    seen = []

    def identity(vqvae, prior, images, strength):
        seen.append(images.numpy().copy())
        return images

    monkeypatch.setattr(correct, "correct_batch", identity)
    x, y = np.meshgrid(np.arange(120) * 1.0, np.arange(60) * 2.0, indexing="ij")  # mm
    disc = (np.hypot(x - 60, y - 60) < 40).astype(float) * 100 + 1
    out = correct_image(disc, 0.0, CorrectionModel.load(tiny_weights), symmetries=1, pixel_mm=(1.0, 2.0))
    assert out.shape == disc.shape
    assert np.abs(out - disc).mean() < 0.03 * disc.max()
    working = seen[-1][0, 0] > 0.5 * seen[-1][0, 0].max()
    extent = [np.ptp(np.flatnonzero(working.any(axis=1 - a))) for a in (0, 1)]
    assert abs(extent[0] - extent[1]) <= 2, extent  # round on the working grid
    plain = correct_image(disc, 0.0, CorrectionModel.load(tiny_weights), symmetries=1)
    working = seen[-1][0, 0] > 0.5 * seen[-1][0, 0].max()
    squashed = [np.ptp(np.flatnonzero(working.any(axis=1 - a))) for a in (0, 1)]
    assert squashed[0] > 1.5 * squashed[1] and plain.shape == disc.shape  # without pixel sizes: an ellipse
    for bad in ((1.0,), (1.0, 0.0), (np.nan, 1.0)):
        with pytest.raises(MrMotionError, match="pixel_mm"):
            correct_image(disc, 0.0, CorrectionModel.load(tiny_weights), pixel_mm=bad)
