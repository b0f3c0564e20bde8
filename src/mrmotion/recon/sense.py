"""Iterative SENSE with known motion: conjugate gradients on the Tikhonov-regularised normal equations.

Solves ``(EᴴE + λ I) x = Eᴴ y`` where E is a :class:`~mrmotion.physics.encoding.MotionEncoding` (coil maps,
per-sample transformed k-space and phase: the augmented SENSE of Bammer et al. 2007 / Zahneisen & Ernst 2016).
With the true motion the moved object is brought back to its reference position; with no motion it is plain
CG-SENSE. ``λ = regularization · scale``, where ``scale`` estimates the largest eigenvalue of EᴴE by a few power
iterations, so ``regularization`` is dimensionless (1e-5 … 1e-3 typical).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mrmotion.errors import MrMotionError
from mrmotion.physics.encoding import MotionEncoding

Progress = Callable[[int, float], None]


@dataclass(frozen=True)
class SenseResult:
    """Reconstructed ``image`` (grid shape, complex), iterations run and relative residual after each."""

    image: np.ndarray
    iterations: int
    residuals: list[float]
    regularization_abs: float


def largest_eigenvalue(operator: MotionEncoding, iterations: int = 3, seed: int = 0) -> float:
    """Power-iteration estimate of the largest eigenvalue of ``EᴴE`` (a scale for λ: a few iterations do)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(operator.grid.shape) + 1j * rng.standard_normal(operator.grid.shape)
    value = 0.0
    for _ in range(iterations):
        x = x / np.linalg.norm(x)
        y = operator.normal(x)
        value = float(np.real(np.vdot(x, y)))
        x = y
    return value


def cg_sense(
    operator: MotionEncoding,
    data: np.ndarray,
    iterations: int = 30,
    regularization: float = 1e-4,
    tolerance: float = 1e-6,
    progress: Progress | None = None,
    preconditioner: np.ndarray | None = None,
    initial: np.ndarray | None = None,
    lam: float | None = None,
) -> SenseResult:
    """Conjugate-gradient SENSE: minimise ``‖E x − y‖² + λ‖x‖²`` from x = 0 or from ``initial``.

    Stops after ``iterations`` or when ``‖r‖/‖r₀‖ < tolerance`` (r₀ = Eᴴy from zero). ``progress(iteration,
    relative residual)`` is called after each iteration (for progress bars). ``preconditioner``: an image-space
    diagonal approximating ``(EᴴE + λ)⁻¹`` (e.g. ``1 / Σ_c |S_c|²``): coil sensitivities that vary across the
    field of view otherwise slow CG down by an order of magnitude. ``initial``: a starting image (a warm start;
    its residual ``Eᴴ(y − E x₀) − λx₀`` costs one E and one Eᴴ). ``lam``: the absolute λ, when it is already known
    (otherwise ``regularization`` times the largest eigenvalue of EᴴE, by power iterations).
    """
    samples = np.asarray(data)
    if samples.shape != (operator.coils, operator.count):
        raise MrMotionError(f"k-space data shape {samples.shape} does not match ({operator.coils}, {operator.count})")
    if not np.all(np.isfinite(samples)):
        raise MrMotionError("k-space data contain NaN or infinite values")
    if iterations < 1 or regularization < 0:
        raise MrMotionError(f"need iterations ≥ 1 and regularization ≥ 0, got {iterations} and {regularization}")
    shape = operator.grid.shape
    weight = np.ones(shape) if preconditioner is None else np.asarray(preconditioner)
    if weight.shape != shape or not np.all(np.isfinite(weight)) or np.any(weight <= 0):
        raise MrMotionError(f"preconditioner must be positive and finite with shape {shape}")
    if initial is not None and (np.shape(initial) != shape or not np.all(np.isfinite(initial))):
        raise MrMotionError(f"initial image must be finite with shape {shape}, got {np.shape(initial)}")
    if lam is None:
        lam = regularization * largest_eigenvalue(operator) if regularization > 0 else 0.0
    if initial is None:
        x = np.zeros(shape, dtype=operator.dtype)
        residual = operator.adjoint(samples)
    else:
        x = np.array(initial, dtype=operator.dtype)
        residual = operator.adjoint(samples - operator.forward(x)) - lam * x
    norm_start = float(np.linalg.norm(residual)) or 1.0
    preconditioned = weight * residual
    direction = preconditioned.copy()
    energy = float(np.real(np.vdot(residual, preconditioned)))
    history: list[float] = []
    for iteration in range(1, iterations + 1):
        applied = operator.normal(direction) + lam * direction
        step = energy / float(np.real(np.vdot(direction, applied)))
        x += step * direction
        residual -= step * applied
        history.append(float(np.linalg.norm(residual)) / norm_start)
        if progress is not None:
            progress(iteration, history[-1])
        if history[-1] < tolerance:
            break
        preconditioned = weight * residual
        new_energy = float(np.real(np.vdot(residual, preconditioned)))
        direction = preconditioned + (new_energy / energy) * direction
        energy = new_energy
    return SenseResult(x, len(history), history, lam)
