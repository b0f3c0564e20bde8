"""The pose networks keep their grids; the region network's behaviour is tested in test_regions.py."""

import torch

from mrmotion.pose.networks import Localiser, RegionNet
from mrmotion.pose.regions import REGIONS


def test_localiser_keeps_the_grid():
    with torch.no_grad():
        assert Localiser()(torch.rand(1, 1, 24, 24, 24)).shape == (1, 1, 24, 24, 24)


def test_region_network_keeps_the_grid_and_gives_every_region():
    with torch.no_grad():
        assert RegionNet()(torch.rand(2, 1, 32, 32, 32)).shape == (2, len(REGIONS), 32, 32, 32)
