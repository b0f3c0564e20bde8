"""Autoregressive priors over the VQ-VAE's codes of motion-free images (gated PixelCNN, van den Oord et al. 2016).

Codes are modelled in raster order (row by row, left to right): ``p(c) = Π p(c_i | c_<i)``. The first layer is a
type-A masked convolution (the centre is excluded), the following ones type-B (the centre included), so the logits
at position i depend only on codes before i. The bottom prior is also conditioned on the whole top level (embedded,
upsampled ×2, an unmasked convolution), as in VQ-VAE-2: ``p(bottom | top)``.

This plain masked-convolution stack has the PixelCNN "blind spot" (some positions above-right are not seen); we
accept it for its speed on this CPU: the prior is used to re-rank the encoder's code choices, not to sample.

Shapes: top codes (B, h, w), bottom codes (B, 2h, 2w), int64 → logits (B, K, h, w) and (B, K', 2h, 2w).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class PriorConfig:
    """Width and depth of each level's PixelCNN."""

    channels: int = 64
    layers: int = 6

    def to_dict(self) -> dict:
        return asdict(self)


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only positions before the centre in raster order (type "A") or also the centre ("B")."""

    def __init__(self, kind: str, inputs: int, outputs: int, kernel: int) -> None:
        super().__init__(inputs, outputs, kernel, padding=kernel // 2)
        if kind not in ("A", "B"):
            raise ValueError(f"mask kind must be 'A' or 'B', got {kind!r}")
        mask = torch.ones_like(self.weight)
        centre = kernel // 2
        mask[:, :, centre, centre + (kind == "B") :] = 0
        mask[:, :, centre + 1 :, :] = 0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class GatedBlock(nn.Module):
    """Masked 3×3 convolution → tanh ⊙ sigmoid gate (+ an optional conditioning bias) → 1×1, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = MaskedConv2d("B", channels, 2 * channels, 3)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        h = self.conv(x)
        if condition is not None:
            h = h + condition
        a, b = h.chunk(2, dim=1)
        return x + self.out(torch.tanh(a) * torch.sigmoid(b))


class PixelCNN(nn.Module):
    """Logits of each code given the codes before it (and an optional conditioning map of 2C channels)."""

    def __init__(self, codes: int, config: PriorConfig) -> None:
        super().__init__()
        c = config.channels
        self.codes = codes
        self.embed = nn.Embedding(codes, c)
        self.first = MaskedConv2d("A", c, c, 7)
        self.blocks = nn.ModuleList([GatedBlock(c) for _ in range(config.layers)])
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, codes, 1))

    def forward(self, codes: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        x = self.first(self.embed(codes).permute(0, 3, 1, 2))
        for block in self.blocks:
            x = block(x, condition)
        return self.head(x)


class CodePrior(nn.Module):
    """``p(top) · p(bottom | top)`` over the two code levels of :class:`~mrmotion.learn.vqvae.HierarchicalVQVAE`."""

    def __init__(self, config: PriorConfig, top_codes: int, bottom_codes: int) -> None:
        super().__init__()
        c = config.channels
        self.config = config
        self.top = PixelCNN(top_codes, config)
        self.bottom = PixelCNN(bottom_codes, config)
        self.condition_embed = nn.Embedding(top_codes, c)
        self.condition = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 1),
        )  # fmt: skip

    def top_logits(self, top: torch.Tensor) -> torch.Tensor:
        return self.top(top)

    def bottom_logits(self, bottom: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
        if bottom.shape[-2:] != (2 * top.shape[-2], 2 * top.shape[-1]):
            raise ValueError(f"bottom codes {tuple(bottom.shape)} must be twice the size of top {tuple(top.shape)}")
        condition = self.condition(self.condition_embed(top).permute(0, 3, 1, 2))
        return self.bottom(bottom, condition)

    def forward(self, top: torch.Tensor, bottom: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.top_logits(top), self.bottom_logits(bottom, top)
