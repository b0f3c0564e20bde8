"""Hierarchical VQ-VAE (after VQ-VAE-2, Razavi et al. 2019) that maps a motion-corrupted slice to clean codes.

Two levels of discrete codes: *top* at 1/8 of the image side (coarse layout, contrast) and *bottom* at 1/4 (fine
anatomy). The encoder sees the corrupted image; the decoder sees the codes and is trained to output the clean
image, so the codebooks hold features of motion-free anatomy and the encoder learns to map corrupted features onto
them (the "disentangled embedding" of Wang et al. 2025).

A shallow *detail path* (``skip_channels`` > 0: two 3×3 convolutions of the input at full resolution, receptive
field 5 pixels) joins the decoder's last layer. Codes at 1/4 of the side cannot hold pixel-level detail: without
this path the VQ-VAE's output was 6 dB below the corrupted input's PSNR under light motion (the session-7
evaluation). Motion artefacts (ghosts, blurring) span far more than 5 pixels, so removing them is still the codes'
work; the path only lends edges and texture where the codes say there is anatomy. In training the path is
dropped for a random half of the images (``detail_dropout``), so the decoder must make a clean image from the
codes alone: trained without this, the decoder ignored the codes (random codes gave the same output) and the
model was a 5-pixel filter.

Quantisers are ``vector_quantize_pytorch.VectorQuantize`` (used rather than our own because it already has the
remedies against the codebook collapse seen on grey-scale brain MRI): low-dimensional cosine-similarity codes,
k-means initialisation on the first batch, EMA updates and restart of dead codes.

Shapes: images (B, 1, H, W) with H and W multiples of 8, intensities ~[0, 1] (see ``learn.data.normalise``);
top codes (B, H/8, W/8) and bottom codes (B, H/4, W/4), int64.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from vector_quantize_pytorch import VectorQuantize


@dataclass(frozen=True)
class VQConfig:
    """Sizes of the hierarchical VQ-VAE: feature ``channels``, code counts and code dimension per level."""

    channels: int = 64
    top_codes: int = 256
    bottom_codes: int = 512
    code_dim: int = 16
    commitment: float = 0.25
    skip_channels: int = 16
    detail_dropout: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, half, 3, padding=1), nn.ReLU(), nn.Conv2d(half, channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _quantiser(channels: int, codes: int, config: VQConfig) -> VectorQuantize:
    return VectorQuantize(
        dim=channels,
        codebook_size=codes,
        codebook_dim=config.code_dim,
        use_cosine_sim=True,
        kmeans_init=True,
        kmeans_iters=10,
        threshold_ema_dead_code=2,
        decay=0.99,
        commitment_weight=config.commitment,
        accept_image_fmap=True,
    )


@dataclass
class VQOutput:
    """What :meth:`HierarchicalVQVAE.forward` returns: the decoded image, both levels' codes, the VQ loss."""

    image: torch.Tensor
    top: torch.Tensor
    bottom: torch.Tensor
    vq_loss: torch.Tensor


#: the modules that map an image to its codes (:meth:`HierarchicalVQVAE.freeze_encoder` fixes them)
ENCODER_PARTS = (
    "encode_bottom", "encode_top", "pre_top", "quantise_top", "decode_top", "pre_bottom", "quantise_bottom",
)  # fmt: skip


class HierarchicalVQVAE(nn.Module):
    """Corrupted image → (top, bottom) codes → clean image."""

    def __init__(self, config: VQConfig = VQConfig()) -> None:
        super().__init__()
        c = config.channels
        self.config = config
        self.encoder_frozen = False
        self.encode_bottom = nn.Sequential(
            nn.Conv2d(1, c // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c // 2, c, 4, stride=2, padding=1), ResBlock(c), ResBlock(c),
        )  # fmt: skip
        self.encode_top = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 4, stride=2, padding=1), ResBlock(c), ResBlock(c))
        self.pre_top = nn.Conv2d(c, c, 1)
        self.quantise_top = _quantiser(c, config.top_codes, config)
        self.decode_top = nn.Sequential(ResBlock(c), nn.ReLU(), nn.ConvTranspose2d(c, c, 4, stride=2, padding=1))
        self.pre_bottom = nn.Conv2d(2 * c, c, 1)
        self.quantise_bottom = _quantiser(c, config.bottom_codes, config)
        self.upsample_top = nn.ConvTranspose2d(c, c, 4, stride=2, padding=1)
        skip = config.skip_channels
        self.decode = nn.Sequential(
            nn.Conv2d(2 * c, c, 3, padding=1), ResBlock(c), ResBlock(c), nn.ReLU(),
            nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c // 2, c // 4 if skip else 1, 4, stride=2, padding=1),
        )  # fmt: skip
        self.detail = (
            nn.Sequential(nn.Conv2d(1, skip, 3, padding=1), nn.ReLU(), nn.Conv2d(skip, skip, 3, padding=1))
            if skip
            else None
        )
        self.fuse = (
            nn.Sequential(nn.ReLU(), nn.Conv2d(c // 4 + skip, c // 4, 3, padding=1), nn.ReLU(), nn.Conv2d(c // 4, 1, 1))
            if skip
            else None
        )

    def freeze_encoder(self) -> None:
        """From now on train the decoder side only (``upsample_top``, ``decode``, ``detail``, ``fuse``): the
        modules of :data:`ENCODER_PARTS` get no gradients and stay in eval mode whatever :meth:`train` is told (no
        codebook EMA updates or dead-code restarts), so the codes of every image, and the prior trained on them,
        stay as they are; and the detail path is no longer dropped (``detail_dropout`` made the decoder learn to
        use the codes; with the codes fixed, it learns to use both)."""
        self.encoder_frozen = True
        for name in ENCODER_PARTS:
            getattr(self, name).requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> HierarchicalVQVAE:
        super().train(mode)
        if self.encoder_frozen:
            for name in ENCODER_PARTS:
                getattr(self, name).eval()
        return self

    # --- the pieces guided inference needs -------------------------------------------------------------------
    def features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder features before quantisation: bottom (B, C, H/4, W/4) and top (B, C, H/8, W/8)."""
        bottom = self.encode_bottom(image)
        return bottom, self.pre_top(self.encode_top(bottom))

    def bottom_input(self, bottom_features: torch.Tensor, top_quantised: torch.Tensor) -> torch.Tensor:
        """What the bottom quantiser sees: encoder features joined with the decoded top level."""
        return self.pre_bottom(torch.cat([bottom_features, self.decode_top(top_quantised)], dim=1))

    @staticmethod
    def distances(quantiser: VectorQuantize, features: torch.Tensor) -> torch.Tensor:
        """Cosine distance ``1 − cos`` (B, K, h, w) between projected features (B, C, h, w) and every code."""
        projected = quantiser.project_in(features.permute(0, 2, 3, 1))
        projected = F.normalize(projected, dim=-1)
        codebook = F.normalize(quantiser.codebook, dim=-1)
        return (1.0 - torch.einsum("bhwd,kd->bkhw", projected, codebook)).clamp_min(0.0)

    @staticmethod
    def lookup(quantiser: VectorQuantize, codes: torch.Tensor) -> torch.Tensor:
        """Quantised features (B, C, h, w) of integer codes (B, h, w)."""
        # our own lookup: the library's get_output_from_indices expects flattened sequences, not (B, h, w) maps
        codebook = quantiser.codebook
        codebook = F.normalize(codebook, dim=-1) if quantiser.use_cosine_sim else codebook
        return quantiser.project_out(codebook[codes]).permute(0, 3, 1, 2)

    def decode_codes(
        self, top: torch.Tensor, bottom: torch.Tensor, image: torch.Tensor, detail: bool = True
    ) -> torch.Tensor:
        """The clean image (B, 1, H, W) from codes (B, H/8, W/8) and (B, H/4, W/4) and the corrupted ``image``
        (B, 1, H, W; used by the detail path only). ``detail=False``: the detail path dropped, as training's
        ``detail_dropout`` drops it (the image from the codes alone)."""
        top_q = self.lookup(self.quantise_top, top)
        bottom_q = self.lookup(self.quantise_bottom, bottom)
        return self._decode(top_q, bottom_q, image, detail)

    def _decode(
        self, top_q: torch.Tensor, bottom_q: torch.Tensor, image: torch.Tensor, with_detail: bool = True
    ) -> torch.Tensor:
        decoded = self.decode(torch.cat([bottom_q, self.upsample_top(top_q)], dim=1))
        if self.detail is None:
            return decoded
        detail = self.detail(image)
        if not with_detail:
            detail = torch.zeros_like(detail)
        elif self.training and self.config.detail_dropout > 0 and not self.encoder_frozen:
            keep = torch.rand(len(image), 1, 1, 1, device=image.device) >= self.config.detail_dropout
            detail = detail * keep
        return self.fuse(torch.cat([decoded, detail], dim=1))

    # --- training ------------------------------------------------------------------------------------------------
    def forward(self, image: torch.Tensor) -> VQOutput:
        _check_image(image)
        bottom_features, top_features = self.features(image)
        top_q, top_codes, top_loss = self.quantise_top(top_features)
        bottom_q, bottom_codes, bottom_loss = self.quantise_bottom(self.bottom_input(bottom_features, top_q))
        decoded = self._decode(top_q, bottom_q, image)
        return VQOutput(decoded, top_codes, bottom_codes, top_loss.sum() + bottom_loss.sum())


def _check_image(image: torch.Tensor) -> None:
    if image.ndim != 4 or image.shape[1] != 1 or image.shape[2] % 8 or image.shape[3] % 8:
        raise ValueError(f"expected images (B, 1, H, W) with H, W multiples of 8, got {tuple(image.shape)}")


def code_usage(codes: torch.Tensor, count: int) -> dict[str, float]:
    """Perplexity (effective number of codes used) and the share of dead codes (never used) in ``codes``."""
    histogram = torch.bincount(codes.flatten(), minlength=count).double()
    p = histogram / histogram.sum().clamp_min(1.0)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"perplexity": float(entropy.exp()), "dead": float((histogram == 0).double().mean())}
