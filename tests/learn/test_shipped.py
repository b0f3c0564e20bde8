"""The shipped correction weights, on held-out adult slices with unseen motion: they must actually correct."""

from __future__ import annotations

import numpy as np
import pytest

from mrmotion.learn import data
from mrmotion.learn.correct import correct_image
from mrmotion.learn.model import default_model
from mrmotion.report.metrics import image_quality


@pytest.fixture(scope="module")
def held_out_pairs():
    images = data.mni_slices("test")
    return data.make_pairs(images, 6, ("drift", "periodic"), ("moderate",), seed=77)


def test_shipped_model_improves_unseen_motion_on_held_out_slices(held_out_pairs):
    model = default_model()
    corrupted = held_out_pairs["corrupted"]
    corrected = correct_image(np.moveaxis(corrupted, 0, -1), model=model)
    before = [image_quality(c, k)["ssim"] for c, k in zip(corrupted, held_out_pairs["clean"], strict=True)]
    after = [image_quality(corrected[..., i], k)["ssim"] for i, k in enumerate(held_out_pairs["clean"])]
    assert np.mean(after) > np.mean(before) + 0.05, (np.mean(before), np.mean(after))


def test_shipped_prior_prefers_real_codes_to_shuffled_ones(held_out_pairs):
    """The prior has learnt something about anatomy: clean slices' codes are likelier than the same codes shuffled."""
    import torch

    model = default_model()
    with torch.no_grad():
        out = model.vqvae(torch.from_numpy(held_out_pairs["clean"][:, None]))
        rng = np.random.default_rng(0)
        shuffled = out.top.flatten(1)[:, torch.from_numpy(rng.permutation(out.top[0].numel()))].reshape(out.top.shape)
        real = torch.nn.functional.cross_entropy(model.prior.top_logits(out.top), out.top)
        fake = torch.nn.functional.cross_entropy(model.prior.top_logits(shuffled), shuffled)
    assert float(real) < float(fake) - 0.5


def test_shipped_vqvae_decodes_from_its_codes(held_out_pairs):
    """The codes carry the image: random bottom codes must ruin the output (a decoder that ignored its codes, leaning
    on the detail path alone, would be a 5-pixel filter and not a VQ-VAE)."""
    import torch

    vqvae = default_model().vqvae
    images = torch.from_numpy(held_out_pairs["corrupted"][:, None])
    with torch.no_grad():
        out = vqvae(images)
        generator = torch.Generator().manual_seed(0)
        random = torch.randint(vqvae.config.bottom_codes, out.bottom.shape, generator=generator)
        scrambled = vqvae.decode_codes(out.top, random, images)
    clean = held_out_pairs["clean"]
    real = np.mean([image_quality(o, c)["psnr_db"] for o, c in zip(out.image[:, 0].numpy(), clean, strict=True)])
    fake = np.mean([image_quality(o, c)["psnr_db"] for o, c in zip(scrambled[:, 0].numpy(), clean, strict=True)])
    assert fake < real - 6.0, (real, fake)


def test_train_correct_defaults_are_what_the_shipped_weights_were_trained_with():
    """`mrmotion train-correct` reproduces the shipped weights: its configurations equal those in their metadata."""
    from dataclasses import asdict

    from mrmotion.io.weights import weights_metadata
    from mrmotion.learn.model import weights_folder
    from mrmotion.learn.train import ADDED_KEYS, SHIPPED

    for name, (config, filename) in SHIPPED.items():
        used = weights_metadata(weights_folder() / filename)["config"]
        assert {**ADDED_KEYS, **used} == asdict(config), name
