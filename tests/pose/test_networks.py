"""The axis networks: O(3)-equivariance (exact for the symmetries of the voxel grid), the coordinate head, losses."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mrmotion.pose import synth
from mrmotion.pose.networks import (
    CnnAxesNet,
    CoordinateAxes,
    EquivariantAxesNet,
    Localiser,
    axes_loss,
    coordinate_loss,
    cube_positions,
)

GRID_SYMMETRIES = [
    (lambda t: torch.rot90(t, 1, dims=(-3, -2)), np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])),
    (lambda t: torch.rot90(t, 1, dims=(-2, -1)), np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])),
    (lambda t: torch.flip(t, dims=(-3,)), np.diag([-1.0, 1, 1])),  # a mirror
]


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(1)
    return EquivariantAxesNet().eval()


@pytest.mark.parametrize("which", range(len(GRID_SYMMETRIES)))
def test_axes_rotate_and_mirror_with_the_input(network, which):
    transform, matrix = GRID_SYMMETRIES[which]
    x = torch.rand(1, 1, 33, 33, 33)
    with torch.no_grad():
        plain = network(x)
        moved = network(transform(x))
    # invariant maps; the left–right coordinate is a pseudoscalar: it changes sign under a mirror
    expected = transform(plain["output"]) * torch.tensor([1, np.linalg.det(matrix), 1, 1]).view(1, 4, 1, 1, 1)
    assert torch.allclose(moved["output"], expected.float(), atol=1e-4)
    for name in ("anterior", "superior"):
        assert np.allclose(moved[name][0].numpy(), matrix @ plain[name][0].numpy(), atol=1e-3), name
    # a pseudovector: rotates with the input but does not flip under a mirror
    expected_left = np.linalg.det(matrix) * matrix @ plain["left"][0].numpy()
    assert np.dot(moved["left"][0].numpy(), expected_left) > np.cos(np.radians(1.0))  # cross product: float32 error
    assert abs(float(moved["confidence"][0] - plain["confidence"][0])) < 1e-3


def test_the_cnn_is_not_equivariant_but_has_the_same_outputs_and_size(network):
    cnn = CnnAxesNet().eval()
    x = torch.rand(2, 1, 33, 33, 33)
    with torch.no_grad():
        a, b = cnn(x), network(x)
        assert a["output"].shape == b["output"].shape == (2, 4, 17, 17, 17)
        turned = cnn(torch.rot90(x, 1, dims=(-3, -2)))
    assert not torch.allclose(turned["output"], torch.rot90(a["output"], 1, dims=(-3, -2)), atol=1e-3)
    count = [sum(p.numel() for p in net.parameters()) for net in (network, cnn)]
    assert 0.67 < count[0] / count[1] < 1.5


def test_localiser_keeps_the_grid():
    with torch.no_grad():
        assert Localiser()(torch.rand(1, 1, 24, 24, 24)).shape == (1, 1, 24, 24, 24)


def test_coordinate_head_recovers_the_pose_from_true_coordinates(toy_subject):
    """True head coordinates of a rotated head give back its rotation (left–right sign free): the geometry is right.

    The Kabsch ``rotation`` is exact (a constant offset of the coordinates changes nothing either). The per-column
    normalised axes, used by the training loss, are within 10° (median 2°, worst 7.3° in 300 draws on this
    anisotropic toy): each axis is Σ w·z·r, the brain's second-moment matrix times the true axis."""
    rng = np.random.default_rng()
    head = CoordinateAxes()
    for sign in (1, -1):
        sample = synth.rotation_sample(toy_subject, rng, size=33)
        coordinates = torch.from_numpy(sample.coordinates)[None].float()
        coordinates[:, 0] *= sign
        coordinates += torch.tensor(rng.normal(size=3), dtype=torch.float32)[None, :, None, None, None]
        weight = torch.from_numpy(sample.brain)[None, None] * 40 - 20
        with torch.no_grad():
            out = head(torch.cat([weight, coordinates], dim=1))
        truth = np.stack([sample.left, -sample.anterior, sample.superior], axis=-1)
        kabsch = out["rotation"][0].double().numpy()
        assert np.linalg.det(kabsch) == pytest.approx(1.0)
        assert np.degrees(np.arccos(np.clip((np.trace(kabsch.T @ truth) - 1) / 2, -1, 1))) < 0.1
        assert float(out["anterior"][0] @ torch.from_numpy(sample.anterior).float()) > np.cos(np.radians(10))
        assert float(out["superior"][0] @ torch.from_numpy(sample.superior).float()) > np.cos(np.radians(10))
        assert abs(float(out["left"][0] @ torch.from_numpy(sample.left).float())) > np.cos(np.radians(10))
        assert float(out["confidence"][0]) > 0.9


def test_losses():
    rng = np.random.default_rng()
    rotation = Rotation.random(random_state=rng).as_matrix()
    left, posterior, superior = (torch.tensor(v, dtype=torch.float32)[None] for v in rotation.T)
    anterior = -posterior
    for sign in (1, -1):  # the left–right term is sign-free
        axes = {"left": sign * left, "anterior": anterior, "superior": superior}
        assert float(axes_loss(axes, left, anterior, superior)) < 1e-6
    assert float(axes_loss({"left": left, "anterior": -anterior, "superior": superior}, left, anterior, superior)) > 1
    brain = (torch.rand(1, 3, 3, 3) > 0.5).float()
    coordinates = torch.randn(1, 3, 3, 3, 3)
    perfect = torch.cat([brain[:, None] * 40 - 20, coordinates], dim=1)
    mirrored = perfect.clone()
    mirrored[:, 1] *= -1  # the left–right coordinate may come out with either sign
    assert float(coordinate_loss(perfect, brain, coordinates)) < 1e-6
    assert float(coordinate_loss(mirrored, brain, coordinates)) < 1e-6
    shifted = perfect.clone()
    shifted[:, 1:] += torch.tensor([0.3, -0.2, 0.5])[None, :, None, None, None]  # where the centre is: not asked
    assert float(coordinate_loss(shifted, brain, coordinates)) < 1e-5
    assert float(coordinate_loss(torch.zeros_like(perfect), brain, coordinates)) > 0.5
    positions = cube_positions(5)
    assert positions.shape == (3, 125) and float(positions.min()) == -0.5 and float(positions.max()) == 0.5
