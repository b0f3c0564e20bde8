"""The pose networks: a brain localiser and a brain-region segmenter, both small 3-D U-Nets.

:class:`Localiser` gives brain logits on a whole field of view; :class:`RegionNet` gives logits of the
left–right-symmetric brain regions of :mod:`mrmotion.pose.regions` on a cube around the brain, from which the head's
orientation follows in closed form. Rotation equivariance comes from averaging over the grid's symmetries
(:func:`mrmotion.pose.regions.symmetrised_probabilities`), not from the layers.

Earlier versions regressed the head's axes with an O(3)-equivariant e3nn network (and a plain-CNN twin) through
dense head coordinates; on two CPU cores within an hour neither got past chance (validation median 148°, see
benchmarks/results/pose_run1.txt), and they were replaced by the region network.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TypeVar

import torch
from threadpoolctl import threadpool_limits
from torch import nn

from mrmotion.errors import MrMotionError

#: arithmetic of the networks at inference: "bfloat16" runs the convolutions in bfloat16 (torch.autocast) on CPUs
#: with native bfloat16 (AVX512-BF16 or AMX): 1.1–1.7× faster for the batches estimate_pose runs, and about 4× for a
#: single volume, whose float32 convolutions take PyTorch's slow native path (benchmarks/pose_speed_settings.py);
#: "float32" as trained; "auto": bfloat16 where the CPU has it natively, else float32 (emulated bfloat16 is slower)
PRECISIONS = ("auto", "bfloat16", "float32")


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX). ``torch.cpu`` offers the checks only under
    private names; a PyTorch without them counts as no."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def inference_precision(precision: str = "auto") -> contextlib.AbstractContextManager:
    """Context in which the pose networks run at ``precision`` (:data:`PRECISIONS`): convolutions in bfloat16 and
    normalisations in float32 (torch.autocast), or all float32. Their outputs may then be bfloat16: callers take
    ``.float()`` of them. Networks and inputs in channels-last layout (``torch.channels_last_3d``) run faster."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=resolved_precision(precision) == "bfloat16")


Function = TypeVar("Function", bound=Callable)


def single_threaded_blas(function: Function) -> Function:
    """Run ``function`` with numpy's and scipy's BLAS on one thread (threadpoolctl; PyTorch's threads untouched).

    Between the networks' PyTorch calls the pose estimator makes many small BLAS calls through numpy and scipy (3 × N
    point products, 3 × 3 decompositions). After each, OpenBLAS's worker threads keep spinning for a while, waiting
    for more work, and on a 2-core machine they took a core from PyTorch's next convolutions: the region network took
    70–140 ms per call inside ``estimate_pose`` against 35 ms alone, and a whole pose 0.23 s against 0.11 s with
    BLAS on one thread (scratch timings on 24 held-out scouts, 2026-11-25; ``benchmarks/pose.py`` measures the
    result). These products are far too small to gain from a second BLAS thread."""

    @functools.wraps(function)
    def limited(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return limited  # type: ignore[return-value]


def resolved_precision(precision: str = "auto") -> str:
    """ "bfloat16" or "float32": what ``precision`` (:data:`PRECISIONS`) means on this CPU."""
    if precision not in PRECISIONS:
        raise MrMotionError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return precision


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """Trilinear upsampling by 2 (align_corners=False), computed in float32 on a channels-last copy and returned in
    ``x``'s dtype. The arithmetic is PyTorch's; the layout is ours because its trilinear kernel is about 6× faster on
    channels-last float32 than on contiguous or bfloat16 tensors (on 2 CPU cores; benchmarks/pose_speed_settings.py)."""
    wide = x.float().contiguous(memory_format=torch.channels_last_3d)
    return nn.functional.interpolate(wide, scale_factor=2, mode="trilinear", align_corners=False).to(x.dtype)


def _double_conv(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(channels_in, channels_out, 3, padding=1),
        nn.InstanceNorm3d(channels_out, affine=True),
        nn.LeakyReLU(0.1),
        nn.Conv3d(channels_out, channels_out, 3, padding=1),
        nn.InstanceNorm3d(channels_out, affine=True),
        nn.LeakyReLU(0.1),
    )


class Localiser(nn.Module):
    """3-D U-Net (three levels) from a normalised volume to brain logits on the same grid (size divisible by 4)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.down1 = _double_conv(1, width)
        self.down2 = _double_conv(width, 2 * width)
        self.bottom = _double_conv(2 * width, 4 * width)
        self.up2 = _double_conv(6 * width, 2 * width)
        self.up1 = _double_conv(3 * width, width)
        self.out = nn.Conv3d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = nn.functional.avg_pool3d
        a = self.down1(x)
        b = self.down2(pool(a, 2))
        c = self.bottom(pool(b, 2))
        b = self.up2(torch.cat([b, upsample2(c)], dim=1))
        a = self.up1(torch.cat([a, upsample2(b)], dim=1))
        return self.out(a)


#: channels of the region network's levels (32³ → 4³ at the bottom, whose receptive field covers the whole cube)
REGION_CHANNELS = (12, 24, 48, 96)


class RegionNet(nn.Module):
    """3-D U-Net from a normalised cube around the brain to logits of the brain regions
    (:data:`mrmotion.pose.regions.REGIONS`), on the same grid (size divisible by 2^(levels-1))."""

    def __init__(self, channels: tuple[int, ...] = REGION_CHANNELS, classes: int = 9) -> None:
        super().__init__()
        self.down = nn.ModuleList(
            _double_conv(1 if i == 0 else channels[i - 1], width) for i, width in enumerate(channels)
        )
        self.up = nn.ModuleList(
            _double_conv(channels[i] + channels[i + 1], channels[i]) for i in range(len(channels) - 1)
        )
        self.out = nn.Conv3d(channels[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else nn.functional.max_pool3d(x, 2))
            skips.append(x)
        for level in reversed(range(len(self.up))):
            x = self.up[level](torch.cat([skips[level], upsample2(x)], dim=1))
        return self.out(x)


def region_loss(logits: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Soft cross-entropy against the region fractions plus soft Dice of every region but the background."""
    log_probability = torch.log_softmax(logits, dim=1)
    cross_entropy = -(regions * log_probability).sum(dim=1).mean()
    probability = log_probability.exp()
    overlap = (probability * regions).sum(dim=(2, 3, 4))
    dice = (2 * overlap + 1) / (probability.sum(dim=(2, 3, 4)) + regions.sum(dim=(2, 3, 4)) + 1)
    return cross_entropy + (1 - dice[:, 1:]).mean()
