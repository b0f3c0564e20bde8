"""Guided inference: the encoder's code choices re-ranked by the prior of motion-free anatomy, top level first.

At every code position the encoder's cosine distances ``d_k`` to the codebook give a distribution
``p_enc(k) ∝ exp(−d_k / τ)``, with ``τ`` the image's mean nearest-code distance (so the sharpness adapts to how far
the corrupted features lie from the codebook). The autoregressive prior gives ``p_prior(k | codes before)``. Codes
are chosen as ``argmax_k log p_enc(k) + λ log p_prior(k | …)`` with ``λ = prior_strength``, in a few parallel sweeps
(each sweep recomputes the prior's logits from the codes of the previous sweep: "resampling of unlikely codes"
rather than a slow sequential decode). The top level is chosen first; the bottom level's encoder features are then
recomputed from the chosen top codes and re-ranked with ``p(bottom | top)``. ``prior_strength = 0`` is the plain
VQ-VAE (nearest codes), the ablation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mrmotion.learn.prior import CodePrior
from mrmotion.learn.vqvae import HierarchicalVQVAE

#: parallel re-ranking sweeps per level.
SWEEPS = 2


def rerank(
    distances: torch.Tensor, prior_logits: Callable[[torch.Tensor], torch.Tensor], strength: float, sweeps: int = SWEEPS
) -> torch.Tensor:
    """Codes (B, h, w) maximising ``log p_enc + strength · log p_prior`` given distances (B, K, h, w)."""
    codes = distances.argmin(dim=1)
    if strength == 0:
        return codes
    temperature = distances.min(dim=1).values.mean(dim=(1, 2), keepdim=True).clamp_min(1e-4)[:, None]
    encoder = torch.log_softmax(-distances / temperature, dim=1)
    for _ in range(sweeps):
        prior = torch.log_softmax(prior_logits(codes), dim=1)
        codes = (encoder + strength * prior).argmax(dim=1)
    return codes


@torch.no_grad()
def choose_codes(
    vqvae: HierarchicalVQVAE, prior: CodePrior | None, images: torch.Tensor, prior_strength: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top (B, H/8, W/8) and bottom (B, H/4, W/4) codes for normalised corrupted images (B, 1, H, W), top first."""
    if prior_strength < 0 or not torch.isfinite(torch.tensor(float(prior_strength))):
        raise ValueError(f"prior_strength must be a finite number ≥ 0, got {prior_strength}")
    if prior is None and prior_strength > 0:
        raise ValueError("prior_strength > 0 needs the prior's weights")
    bottom_features, top_features = vqvae.features(images)
    top_distances = vqvae.distances(vqvae.quantise_top, top_features)
    top = rerank(top_distances, lambda codes: prior.top_logits(codes), prior_strength)
    top_quantised = vqvae.lookup(vqvae.quantise_top, top)
    bottom_distances = vqvae.distances(vqvae.quantise_bottom, vqvae.bottom_input(bottom_features, top_quantised))
    bottom = rerank(bottom_distances, lambda codes: prior.bottom_logits(codes, top), prior_strength)
    return top, bottom


@torch.no_grad()
def correct_batch(
    vqvae: HierarchicalVQVAE, prior: CodePrior | None, images: torch.Tensor, prior_strength: float = 1.0
) -> torch.Tensor:
    """Corrected images (B, 1, H, W) from normalised corrupted images (B, 1, H, W), H and W multiples of 8."""
    top, bottom = choose_codes(vqvae, prior, images, prior_strength)
    return vqvae.decode_codes(top, bottom, images)
