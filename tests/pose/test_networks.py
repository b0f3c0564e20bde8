"""The pose networks keep their grids; the region network's behaviour is tested in test_regions.py."""

import pytest
import torch

from mrmotion.errors import MrMotionError
from mrmotion.pose.networks import (
    Localiser,
    RegionNet,
    inference_precision,
    native_bfloat16,
    resolved_precision,
    upsample2,
)
from mrmotion.pose.regions import REGIONS


def test_localiser_keeps_the_grid():
    with torch.no_grad():
        assert Localiser()(torch.rand(1, 1, 24, 24, 24)).shape == (1, 1, 24, 24, 24)


def test_region_network_keeps_the_grid_and_gives_every_region():
    with torch.no_grad():
        assert RegionNet()(torch.rand(2, 1, 32, 32, 32)).shape == (2, len(REGIONS), 32, 32, 32)


def test_upsample2_is_pytorchs_trilinear_upsampling_in_the_input_dtype():
    features = torch.randn(2, 5, 6, 7, 8)
    expected = torch.nn.functional.interpolate(features, scale_factor=2, mode="trilinear", align_corners=False)
    assert torch.allclose(upsample2(features), expected, atol=1e-6)  # another kernel, the same arithmetic
    halved = upsample2(features.bfloat16())
    assert halved.dtype == torch.bfloat16
    assert torch.allclose(halved.float(), expected, atol=0.05)


def test_inference_precision_runs_convolutions_in_bfloat16_or_float32_and_refuses_others():
    network = RegionNet(channels=(4, 8))
    volume = torch.rand(1, 1, 8, 8, 8)
    with torch.no_grad():
        with inference_precision("float32"):
            plain = network(volume)
        with inference_precision("bfloat16"):
            low = network(volume)
    assert plain.dtype == torch.float32 and low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), plain, atol=0.1) and not torch.equal(low.float(), plain)
    assert resolved_precision("auto") == ("bfloat16" if native_bfloat16() else "float32")
    for bad in ("half", "float16", ""):
        with pytest.raises(MrMotionError, match="unknown precision"):
            inference_precision(bad)
