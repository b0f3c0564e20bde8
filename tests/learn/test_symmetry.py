"""The square's symmetries: exact inverses, subgroups in SUBGROUP_ORDER, and averaging over them."""

from __future__ import annotations

import pytest
import torch

from mrmotion.errors import MrMotionError
from mrmotion.learn.symmetry import SUBGROUP_ORDER, SYMMETRY_COUNTS, dihedral, symmetrised, undo_dihedral


def test_each_symmetry_is_undone_exactly_and_all_eight_differ():
    images = torch.randn(2, 1, 6, 6)
    for which in range(8):
        assert torch.equal(undo_dihedral(dihedral(images, which), which), images)
    assert len({tuple(dihedral(images, w).flatten().tolist()) for w in range(8)}) == 8


@pytest.mark.parametrize("count", SYMMETRY_COUNTS)
def test_the_first_symmetries_of_the_order_form_a_group(count):
    """Closed under composition, so averaging over them is exactly invariant to each of them."""
    images = torch.randn(1, 1, 5, 5)
    members = {tuple(dihedral(images, w).flatten().tolist()) for w in SUBGROUP_ORDER[:count]}
    for a in SUBGROUP_ORDER[:count]:
        for b in SUBGROUP_ORDER[:count]:
            assert tuple(dihedral(dihedral(images, a), b).flatten().tolist()) in members


def test_symmetrised_keeps_an_equivariant_map_and_makes_any_map_equivariant():
    images = torch.randn(3, 1, 8, 8)
    assert torch.allclose(symmetrised(lambda x: x**2, images, 8), images**2)
    ramp = torch.arange(8.0)[None, None, :, None]  # not equivariant: depends on where a pixel is
    averaged = symmetrised(lambda x: x + ramp, images, 4)
    for which in SUBGROUP_ORDER[:4]:
        moved = symmetrised(lambda x: x + ramp, dihedral(images, which), 4)
        assert torch.allclose(moved, dihedral(averaged, which), atol=1e-6)
    assert torch.equal(symmetrised(lambda x: x + ramp, images, 1), images + ramp)


def test_symmetrised_refuses_other_counts_and_non_square_images():
    for count in (0, 3, 16, True):
        with pytest.raises(MrMotionError, match="symmetries must be one of 1, 2, 4, 8"):
            symmetrised(lambda x: x, torch.zeros(1, 1, 4, 4), count)
    with pytest.raises(MrMotionError, match="square"):
        symmetrised(lambda x: x, torch.zeros(1, 1, 4, 6), 2)
    assert symmetrised(lambda x: x, torch.ones(1, 1, 4, 6), 1).shape == (1, 1, 4, 6)
