"""The networks: shapes, the quantisers' codes seen from outside, the prior's causality, guided re-ranking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrmotion.learn.guided import choose_codes, correct_batch, rerank
from mrmotion.learn.prior import CodePrior, MaskedConv2d, PriorConfig
from mrmotion.learn.unet import UNet
from mrmotion.learn.vqvae import HierarchicalVQVAE, VQConfig, code_usage

SMALL = VQConfig(channels=16, top_codes=32, bottom_codes=48, code_dim=8)


@pytest.fixture(scope="module")
def vqvae() -> HierarchicalVQVAE:
    torch.manual_seed(0)
    model = HierarchicalVQVAE(SMALL)
    model(torch.rand(4, 1, 32, 32))  # k-means initialisation of the codebooks on a first batch
    return model.eval()


def test_codes_from_distances_and_lookup_match_the_quantisers(vqvae):
    images = torch.rand(3, 1, 32, 48)
    with torch.no_grad():
        out = vqvae(images)
        bottom_features, top_features = vqvae.features(images)
        top = vqvae.distances(vqvae.quantise_top, top_features).argmin(1)
        top_q = vqvae.lookup(vqvae.quantise_top, top)
        bottom = vqvae.distances(vqvae.quantise_bottom, vqvae.bottom_input(bottom_features, top_q)).argmin(1)
        decoded = vqvae.decode_codes(top, bottom, images)
    assert out.top.shape == (3, 4, 6) and out.bottom.shape == (3, 8, 12) and out.image.shape == images.shape
    torch.testing.assert_close(top, out.top, rtol=0, atol=0)
    torch.testing.assert_close(bottom, out.bottom, rtol=0, atol=0)
    torch.testing.assert_close(decoded, out.image, rtol=1e-5, atol=1e-5)


def test_guided_inference_at_strength_zero_is_the_plain_vqvae(vqvae):
    images = torch.rand(2, 1, 32, 32)
    prior = CodePrior(PriorConfig(channels=8, layers=1), SMALL.top_codes, SMALL.bottom_codes).eval()
    with torch.no_grad():
        torch.testing.assert_close(correct_batch(vqvae, prior, images, 0.0), vqvae(images).image)
        top, bottom = choose_codes(vqvae, prior, images, 0.0)
        torch.testing.assert_close(top, vqvae(images).top, rtol=0, atol=0)
        torch.testing.assert_close(bottom, vqvae(images).bottom, rtol=0, atol=0)
    with pytest.raises(ValueError, match="prior_strength"):
        correct_batch(vqvae, prior, images, -1.0)
    with pytest.raises(ValueError, match="prior"):
        correct_batch(vqvae, None, images, 0.5)


def test_rerank_follows_the_prior_as_its_strength_grows():
    rng = np.random.default_rng(3)
    distances = torch.from_numpy(rng.uniform(0.1, 0.5, (1, 5, 4, 4)))
    favourite = torch.full((1, 5, 4, 4), -10.0, dtype=torch.float64)
    favourite[:, 2] = 10.0  # a prior sure of code 2 everywhere
    nearest = distances.argmin(1)
    assert torch.equal(rerank(distances, lambda c: favourite, 0.0), nearest)
    assert torch.all(rerank(distances, lambda c: favourite, 10.0) == 2)
    weak = rerank(distances, lambda c: favourite, 1e-6)
    assert torch.equal(weak, nearest)


def test_prior_is_causal_in_raster_order():
    torch.manual_seed(1)
    prior = CodePrior(PriorConfig(channels=8, layers=3), 10, 12).eval()
    top = torch.randint(10, (1, 6, 6))
    bottom = torch.randint(12, (1, 12, 12))
    with torch.no_grad():
        base_top, base_bottom = prior(top, bottom)
        for row, col in [(0, 0), (2, 3), (5, 5)]:
            changed = top.clone()
            changed[0, row, col] = (changed[0, row, col] + 1) % 10
            logits = prior.top_logits(changed)
            flat = (logits - base_top).abs().amax(1).flatten()
            position = row * 6 + col
            assert flat[: position + 1].max() == 0  # nothing at or before the changed code moves
            if position < 35:
                assert flat[position + 1 :].max() > 0  # and the next code sees it
        changed = bottom.clone()
        changed[0, 4, 4] = (changed[0, 4, 4] + 1) % 12
        flat = (prior.bottom_logits(changed, top) - base_bottom).abs().amax(1).flatten()
        assert flat[: 4 * 12 + 5].max() == 0
        other_top = (top + 1) % 10  # the bottom prior sees the whole top level
        assert (prior.bottom_logits(bottom, other_top) - base_bottom).abs().max() > 0
    with pytest.raises(ValueError, match="twice"):
        prior.bottom_logits(bottom[:, :10], top)
    with pytest.raises(ValueError, match="mask kind"):
        MaskedConv2d("C", 1, 1, 3)


def test_unet_is_residual_and_checks_shapes():
    net = UNet(4)
    torch.nn.init.zeros_(net.out.weight)
    torch.nn.init.zeros_(net.out.bias)
    images = torch.rand(2, 1, 16, 24)
    torch.testing.assert_close(net(images), images)
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.rand(1, 1, 12, 16))
    with pytest.raises(ValueError, match="multiples of 8"):
        HierarchicalVQVAE(SMALL)(torch.rand(1, 2, 16, 16))


def test_code_usage_counts_perplexity_and_dead_codes():
    codes = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    usage = code_usage(codes, 8)
    assert usage["perplexity"] == pytest.approx(4.0)
    assert usage["dead"] == pytest.approx(0.5)


def test_detail_path_is_local_and_optional(vqvae):
    images = torch.rand(1, 1, 32, 32)
    poked = images.clone()
    poked[0, 0, 16, 16] += 1.0
    with torch.no_grad():
        out = vqvae(images)
        change = (vqvae.decode_codes(out.top, out.bottom, poked) - out.image).abs()[0, 0]
    rows, cols = torch.nonzero(change > 1e-6, as_tuple=True)
    assert len(rows) > 0  # the detail path sees the pixel …
    assert rows.min() >= 13 and rows.max() <= 19 and cols.min() >= 13 and cols.max() <= 19  # … only 3 pixels around
    with torch.no_grad():  # dropped (as in training's detail dropout): the image from the codes alone
        codes_only = vqvae.decode_codes(out.top, out.bottom, images, detail=False)
        torch.testing.assert_close(vqvae.decode_codes(out.top, out.bottom, poked, detail=False), codes_only)
    assert not torch.allclose(codes_only, out.image)
    torch.manual_seed(2)
    plain = HierarchicalVQVAE(VQConfig(**{**SMALL.to_dict(), "skip_channels": 0}))
    plain(torch.rand(4, 1, 32, 32))
    plain.eval()
    with torch.no_grad():
        out = plain(images)
        torch.testing.assert_close(plain.decode_codes(out.top, out.bottom, poked), out.image)  # codes only


def test_freeze_encoder_trains_the_decoder_side_only_and_keeps_the_codes():
    """After freeze_encoder, training steps change the decoder side only: the codebooks get no EMA updates (the
    quantisers stay in eval mode in train()), so every image keeps its codes; the detail path is never dropped."""
    torch.manual_seed(1)
    model = HierarchicalVQVAE(SMALL)
    model(torch.rand(4, 1, 32, 32))  # k-means initialisation
    images = torch.rand(6, 1, 32, 32)
    with torch.no_grad():
        before = model.eval()(images)
    encoder = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("upsample_top", "decode.",
                                                                                        "detail", "fuse"))}  # fmt: skip
    decoder = {k: v.clone() for k, v in model.state_dict().items() if k not in encoder}
    model.freeze_encoder()
    model.train()
    assert not model.quantise_top.training and not model.encode_bottom.training and model.decode.training
    with torch.no_grad():  # detail dropout off: two passes in training mode give the same image
        torch.testing.assert_close(model(images).image, model(images).image)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = (model(torch.rand(4, 1, 32, 32)).image - 0.5).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    state = model.state_dict()
    for key, value in encoder.items():
        torch.testing.assert_close(state[key], value, msg=key)
    assert any(not torch.equal(state[key], value) for key, value in decoder.items())
    with torch.no_grad():
        after = model.eval()(images)
    assert torch.equal(after.top, before.top) and torch.equal(after.bottom, before.bottom)
