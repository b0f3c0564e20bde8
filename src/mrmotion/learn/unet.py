"""The conventional baseline: a 2-D U-Net trained directly on (corrupted → clean) pairs of the training motion.

Four resolution levels (widths ``w, 2w, 4w, 8w``), two 3×3 convolutions per level, skip connections, and a
residual output (the network predicts the correction added to its input), as artifact-specific correction networks
usually are. The default width gives about as many weights as the default VQ-VAE (~0.5 M; see
``benchmarks/learned_correction.py``).

Shapes: (B, 1, H, W) → (B, 1, H, W), H and W multiples of 8.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(), nn.Conv2d(outputs, outputs, 3, padding=1), nn.ReLU()
    )


class UNet(nn.Module):
    """U-Net with widths ``(w, 2w, 4w, 8w)``; ``forward`` returns ``input + correction``."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.width = width
        widths = [width * 2**level for level in range(4)]
        self.down = nn.ModuleList([_block(i, o) for i, o in zip([1, *widths[:-2]], widths[:-1], strict=True)])
        self.middle = _block(widths[-2], widths[-1])
        self.up = nn.ModuleList([nn.ConvTranspose2d(o * 2, o, 2, stride=2) for o in reversed(widths[:-1])])
        self.merge = nn.ModuleList([_block(2 * o, o) for o in reversed(widths[:-1])])
        self.out = nn.Conv2d(width, 1, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != 1 or image.shape[2] % 8 or image.shape[3] % 8:
            raise ValueError(f"expected images (B, 1, H, W) with H, W multiples of 8, got {tuple(image.shape)}")
        skips, x = [], image
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.middle(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return image + self.out(x)
