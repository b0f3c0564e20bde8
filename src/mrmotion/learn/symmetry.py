"""The eight symmetries of the square (quarter turns and flips) on image batches, for augmentation and for
averaging a correction over them.

``which`` in 0…7: ``rot90`` by ``which % 4`` quarter turns, then a flip of the last axis when ``which ≥ 4``.
Training draws one of the eight per batch (every network saw all of them). At inference the correction can be
averaged over a subgroup (:data:`SUBGROUP_ORDER`): each symmetry applied to the input, the network run, the
symmetry undone on its output. For the VQ-VAE this averages out part of the error of choosing discrete codes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mrmotion.errors import MrMotionError

#: the symmetries in an order whose first 1, 2, 4 and 8 are subgroups: identity; + a flip; the four flips
#: (identity, half turn, and the flips of either axis); all eight
SUBGROUP_ORDER = (0, 4, 2, 6, 1, 5, 3, 7)
#: how many symmetries a correction may be averaged over (the sizes of those subgroups)
SYMMETRY_COUNTS = (1, 2, 4, 8)


def dihedral(images: torch.Tensor, which: int) -> torch.Tensor:
    """One of the eight flips/quarter turns of the square (``which`` in 0…7) of (B, C, H, W) images."""
    out = torch.rot90(images, which % 4, dims=(2, 3))
    return torch.flip(out, dims=(3,)) if which >= 4 else out


def undo_dihedral(images: torch.Tensor, which: int) -> torch.Tensor:
    """The inverse of :func:`dihedral`: ``undo_dihedral(dihedral(x, w), w) == x``."""
    out = torch.flip(images, dims=(3,)) if which >= 4 else images
    return torch.rot90(out, -(which % 4), dims=(2, 3))


def check_symmetries(count: object) -> int:
    """``count`` if it is one of :data:`SYMMETRY_COUNTS`, else a :class:`MrMotionError` naming them."""
    if isinstance(count, bool) or count not in SYMMETRY_COUNTS:
        raise MrMotionError(f"symmetries must be one of {', '.join(map(str, SYMMETRY_COUNTS))}, got {count!r}")
    return int(count)


def symmetrised(correct: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, count: int) -> torch.Tensor:
    """The mean of ``undo(correct(g · images))`` over the first ``count`` symmetries g of :data:`SUBGROUP_ORDER`
    (``count`` in :data:`SYMMETRY_COUNTS`; 1: ``correct(images)``). Images (B, C, H, W) with H == W."""
    check_symmetries(count)
    if count > 1 and images.shape[2] != images.shape[3]:
        raise MrMotionError(f"averaging over symmetries needs square images, got {tuple(images.shape)}")
    total = None
    for which in SUBGROUP_ORDER[:count]:
        out = undo_dihedral(correct(dihedral(images, which)), which)
        total = out if total is None else total + out
    return total / count
