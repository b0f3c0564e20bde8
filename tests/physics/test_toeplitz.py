"""The Toeplitz normal operator against a brute-force sum over points, and its bad inputs."""

import numpy as np
import pytest

from mrmotion.errors import MrMotionError
from mrmotion.physics.toeplitz import ToeplitzNormal


def brute_force(image: np.ndarray, kappa: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Σ_m w_m e^{iκ_m·(u − c)} Σ_u' f(u') e^{−iκ_m·(u' − c)}, as matrices."""
    shape = np.array(image.shape)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, len(shape))
    encode = np.exp(-1j * kappa @ (index - shape // 2).T)
    return (encode.conj().T @ (weights * (encode @ image.reshape(-1)))).reshape(image.shape)


@pytest.mark.parametrize("shape", [(7, 6, 5), (8, 9), (4, 4, 4), (1, 6)])
@pytest.mark.parametrize(("dtype", "eps", "tolerance"), [(np.complex128, 1e-11, 1e-9), (np.complex64, 1e-5, 1e-4)])
def test_equals_the_brute_force_normal_operator(shape, dtype, eps, tolerance):
    rng = np.random.default_rng()
    kappa = rng.uniform(-10.0, 10.0, (120, len(shape)))  # beyond [−3π, 3π]: the kernel is 2π-periodic
    weights = rng.uniform(0.0, 2.0, 120)
    image = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    operator = ToeplitzNormal(shape, kappa, weights, eps=eps, dtype=dtype)
    assert all(p >= 2 * n - 1 for p, n in zip(operator.padded, shape, strict=True))
    expected = brute_force(image, kappa, weights)
    got = operator.apply(image)
    assert got.dtype == dtype and got.shape == shape
    assert np.linalg.norm(got - expected) <= tolerance * np.linalg.norm(expected)


def test_bad_inputs():
    with pytest.raises(MrMotionError, match="2-D or 3-D"):
        ToeplitzNormal((5,), np.zeros((3, 1)), np.ones(3))
    with pytest.raises(MrMotionError, match=r"expected shape \(M, 2\)"):
        ToeplitzNormal((4, 4), np.zeros((3, 3)), np.ones(3))
    with pytest.raises(MrMotionError, match=r"expected shape \(M, 2\)"):
        ToeplitzNormal((4, 4), np.zeros((0, 2)), np.ones(0))
    with pytest.raises(MrMotionError, match="NaN"):
        ToeplitzNormal((4, 4), np.array([[0.0, np.nan]]), np.ones(1))
    with pytest.raises(MrMotionError, match="weights"):
        ToeplitzNormal((4, 4), np.zeros((2, 2)), np.array([1.0, -1.0]))
    with pytest.raises(MrMotionError, match="weights"):
        ToeplitzNormal((4, 4), np.zeros((2, 2)), np.ones(3))
    operator = ToeplitzNormal((4, 4), np.zeros((2, 2)), np.ones(2))
    with pytest.raises(MrMotionError, match="does not match"):
        operator.apply(np.zeros((4, 5)))
