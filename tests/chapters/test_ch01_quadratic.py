"""The exact quadratic simulator against closed forms and against torch.optim."""

import math

import numpy as np
import pytest
import torch

from eoslab.chapters.ch01_quadratic_stability.quadratic import (
    Quadratic,
    convergence_rate,
    convergence_rates,
    converges,
    default_levels,
    iteration_matrix,
    level_sets,
    simulate,
    spectral_radius,
    stability_threshold,
)


def test_hessian_has_the_asked_spectrum_and_eigenvector_angle():
    q = Quadratic((3.0, 0.25), angle=40.0)
    vals, vecs = np.linalg.eigh(q.hessian)
    assert np.allclose(vals, [0.25, 3.0])
    top = vecs[:, 1] * np.sign(vecs[0, 1])
    assert math.degrees(math.atan2(top[1], top[0])) == pytest.approx(40.0)


def test_gradient_matches_finite_differences():
    q = Quadratic((2.0, 0.7), angle=-25.0, center=(0.3, -1.0))
    w, h = np.array([0.4, 0.9]), 1e-6
    fd = [(q.loss(w + h * e) - q.loss(w - h * e)) / (2 * h) for e in np.eye(2)]
    assert np.allclose(q.grad(w), fd, atol=1e-7)


@pytest.mark.parametrize("angle", [0.0, 33.0, 90.0])
def test_gd_matches_the_closed_form(angle):
    q = Quadratic((1.7, 0.4), angle=angle, center=(0.5, -0.2))
    w0, lr, steps = np.array([1.0, 2.0]), 0.9, 25
    traj = simulate(q, w0, lr, steps)
    r, lam = q.rotation, np.array(q.eigenvalues)
    for t in (0, 1, 7, 25):
        exact = q.center + r @ np.diag((1 - lr * lam) ** t) @ r.T @ (w0 - q.center)
        assert np.allclose(traj.points[t], exact, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_heavy_ball_matches_torch_sgd_momentum(beta):
    q = Quadratic((2.0, 0.3), angle=20.0, center=(0.1, 0.2))
    w0, lr, steps = (1.0, -0.5), 0.6, 30
    traj = simulate(q, w0, lr, steps, momentum=beta)
    a = torch.tensor(q.hessian)
    c = torch.tensor(q.center, dtype=torch.float64)
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=lr, momentum=beta)
    for t in range(steps):
        opt.zero_grad()
        (0.5 * (w - c) @ a @ (w - c)).backward()
        opt.step()
        assert np.allclose(traj.points[t + 1], w.detach().numpy(), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("lam", [0.5, 1.0, 3.0])
def test_gd_diverges_iff_one_minus_eta_lambda_exceeds_one(lam):
    q = Quadratic((lam, lam / 10), angle=15.0)
    for lr in np.linspace(0.05, 4.0 / lam, 41):
        factor = abs(1 - lr * lam)
        if abs(factor - 1) < 0.05:  # too slow to tell apart in 300 steps
            continue
        traj = simulate(q, (1.0, 0.0), lr, 300, blowup=1e3)
        assert (traj.diverged_at is not None) == (factor > 1), (lr, factor)
        assert converges(lr, q.eigenvalues) == (factor < 1)


def test_spectral_radius_is_one_minus_eta_lambda_for_gd():
    for lr, lam in [(0.1, 2.0), (0.9, 2.0), (1.3, 2.0), (0.5, 7.0)]:
        assert spectral_radius(lr, lam) == pytest.approx(abs(1 - lr * lam), abs=1e-12)


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.6, 0.9])
@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_heavy_ball_threshold_from_companion_matrix(beta, lam):
    closed = stability_threshold(lam, beta)
    grid = np.linspace(1e-3, 2 * closed, 4001)
    stable = np.array([spectral_radius(lr, lam, beta) < 1 - 1e-9 for lr in grid])
    brute = grid[stable].max()  # stable set is the interval (0, closed)
    assert brute == pytest.approx(closed, rel=2e-3)
    assert stable[grid < closed * 0.999].all() and not stable[grid > closed * 1.001].any()


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_heavy_ball_simulation_converges_below_and_diverges_above_threshold(beta):
    q = Quadratic((2.0, 0.5), angle=30.0)
    threshold = stability_threshold(q.lambda_max, beta)
    below = simulate(q, (1.0, 1.0), 0.9 * threshold, 2000, momentum=beta)
    above = simulate(q, (1.0, 1.0), 1.1 * threshold, 2000, momentum=beta, blowup=1e3)
    assert below.diverged_at is None and below.losses[-1] < 1e-6 * below.losses[0]
    assert above.diverged_at is not None


def test_rate_is_the_slowest_direction():
    assert convergence_rate(0.1, (2.0, 0.5)) == pytest.approx(0.95)
    assert convergence_rate(0.9, (2.0, 0.5)) == pytest.approx(0.8)


def test_iteration_matrix_propagates_heavy_ball_errors():
    lam, lr, beta = 1.5, 0.7, 0.4
    q = Quadratic((lam, 0.0))
    traj = simulate(q, (1.0, 0.0), lr, 5, momentum=beta)
    m = iteration_matrix(lr, lam, beta)
    state = np.array([traj.points[1, 0], traj.points[0, 0]])
    for t in range(1, 5):
        state = m @ state
        assert state[0] == pytest.approx(traj.points[t + 1, 0], abs=1e-12)


def test_level_sets_lie_on_their_level():
    q = Quadratic((3.0, 0.2), angle=70.0, center=(1.0, -1.0))
    levels = default_levels(q, (2.0, 2.0), count=4)
    assert levels[0] == pytest.approx(float(q.loss(np.array([2.0, 2.0]))))
    for curve, level in zip(level_sets(q, levels), levels):
        assert np.allclose(q.loss(curve), level, rtol=1e-10)


def test_bad_inputs_name_the_value():
    with pytest.raises(ValueError, match="momentum=1.0"):
        stability_threshold(2.0, 1.0)
    with pytest.raises(ValueError, match="lambda_max=0"):
        stability_threshold(0)
    with pytest.raises(ValueError, match="lr=-0.1"):
        simulate(Quadratic(), (1, 1), -0.1, 3)
    with pytest.raises(ValueError, match="eigenvalues"):
        Quadratic((1.0, -2.0))
    with pytest.raises(ValueError, match="start"):
        simulate(Quadratic(), (1, 1, 1), 0.1, 3)


@pytest.mark.parametrize("beta", [0.0, 0.2, 0.81, 0.95])
def test_vectorised_rates_match_companion_eigenvalues(beta):
    lam = (3.0, 0.4)
    lrs = np.linspace(0.01, 2.0, 57)
    brute = [max(abs(np.linalg.eigvals(iteration_matrix(lr, v, beta))).max() for v in lam)
             for lr in lrs]
    assert np.allclose(convergence_rates(lrs, lam, beta), brute, atol=1e-7)
