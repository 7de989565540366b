"""SGD noise and mean-square stability against brute-force enumeration of every batch on a
tiny float64 over-parameterised linear regression (where linearised SGD *is* SGD)."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from eoslab.chapters.ch09_sgd_stability.sgd_noise import (
    batch_factor,
    mean_square_operator,
    noise_alignment,
    noise_covariance,
    per_sample_gradients,
    per_sample_jacobian,
    stability_report,
)
from eoslab.curvature.objective import Objective


def _problem(n=4, d=6, seed=0, device="cpu", equal_norms=False):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    if equal_norms:
        x = x / x.norm(dim=1, keepdim=True) * 1.3
    w = torch.randn(d, 1, generator=gen, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double().to(device)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=gen, dtype=torch.float64))
    return Objective(model, "mse", x.to(device), (x @ w).to(device)), x.numpy()


def _batches(n, b, replace):
    if replace:
        return [list(t) for t in itertools.product(range(n), repeat=b)]
    return [list(c) for c in itertools.combinations(range(n), b)]


def test_per_sample_gradients_and_jacobians_are_the_closed_forms(device):
    obj, x = _problem(device=device)
    w = obj.model.weight.detach().cpu().numpy().ravel()
    resid = x @ w - obj.y.cpu().numpy().ravel()
    grads = per_sample_gradients(obj).cpu().numpy()
    np.testing.assert_allclose(grads, resid[:, None] * x, rtol=1e-12)
    jac = per_sample_jacobian(obj).cpu().numpy()
    assert jac.shape == (4, 1, 6)
    np.testing.assert_allclose(jac[:, 0, :], x, rtol=1e-12)


@pytest.mark.parametrize("replace", [False, True])
def test_noise_covariance_is_the_covariance_over_all_batches(replace):
    obj, _ = _problem()
    grads = per_sample_gradients(obj)
    n, b = grads.shape[0], 2
    means = torch.stack([grads[idx].mean(0) for idx in _batches(n, b, replace)])
    centred = means - grads.mean(0)
    brute = centred.T @ centred / len(means)
    torch.testing.assert_close(noise_covariance(grads, b, replace), brute, rtol=1e-10,
                               atol=1e-12)


def test_noise_alignment_of_a_full_rank_toy_is_its_formula():
    grads = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    hess = torch.diag(torch.tensor([2.0, 1.0], dtype=torch.float64))
    # Sigma_1 = diag(1, 0): Tr(Sigma H) = 2, ||H||_F^2 = 5, loss 0.5 -> 2 / (2 * 0.5 * 5)
    assert noise_alignment(grads, hess, 0.5) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="loss"):
        noise_alignment(grads, hess, 0.0)


@pytest.mark.parametrize("b,replace", [(1, False), (2, False), (3, False), (2, True)])
def test_mean_square_operator_is_the_expectation_over_all_batches(b, replace):
    """T(N) in residual space equals the enumerated E[(I - lr/B K D) N (I - lr/B D K)], and
    the expected loss it predicts equals the enumerated parameter-space second moment."""
    obj, x = _problem()
    n, lr = x.shape[0], 0.3
    jac = per_sample_jacobian(obj)
    apply, m = mean_square_operator(jac, lr, b, replace)
    gram = x @ x.T
    rng = np.random.default_rng(1)
    root = rng.standard_normal((m, m))
    N = root @ root.T
    batches = _batches(n, b, replace)
    brute = np.zeros_like(N)
    for idx in batches:
        D = np.zeros((n, n))
        for i in idx:
            D[i, i] += 1.0
        step = np.eye(n) - lr / b * gram @ D
        brute += step @ N @ step.T / len(batches)
    np.testing.assert_allclose(apply(N), brute, rtol=1e-10, atol=1e-12)

    # parameter space: M' = E[(I - lr H_xi) M (I - lr H_xi)], loss = Tr(H M) / 2
    d = x.shape[1]
    H_i = [np.outer(x[i], x[i]) for i in range(n)]
    M = np.outer(rng.standard_normal(d), rng.standard_normal(d))
    M = M + M.T + 3 * np.eye(d)
    Nres = x @ M @ x.T
    for _ in range(5):
        M = sum((np.eye(d) - lr * sum(H_i[i] for i in idx) / b) @ M @
                (np.eye(d) - lr * sum(H_i[i] for i in idx) / b) for idx in batches) / len(batches)
        Nres = apply(Nres)
    assert np.trace(Nres) / (2 * n) == pytest.approx(np.trace(x.T @ x / n @ M) / 2, rel=1e-10)


def test_report_curvatures_match_dense_hessians():
    obj, x = _problem()
    n = x.shape[0]
    rep = stability_report(per_sample_jacobian(obj), lr=0.2, batch_size=2)
    H_i = [np.outer(x[i], x[i]) for i in range(n)]
    H = sum(H_i) / n
    assert rep["sharpness"] == pytest.approx(np.linalg.eigvalsh(H)[-1], rel=1e-10)
    assert rep["trace"] == pytest.approx(np.trace(H), rel=1e-10)
    assert rep["frobenius"] == pytest.approx(np.linalg.norm(H), rel=1e-10)
    sigma = sum(h @ h for h in H_i) / n - H @ H
    assert rep["nonuniformity"] ** 2 == pytest.approx(np.linalg.eigvalsh(sigma)[-1], rel=1e-8)
    assert rep["c_B"] == pytest.approx(batch_factor(n, 2)) and rep["c_B"] == pytest.approx(1 / 3)


def test_full_batch_reduces_to_gd_and_small_batches_are_less_stable():
    obj, x = _problem(n=5, d=8, seed=3)
    jac = per_sample_jacobian(obj)
    H = x.T @ x / 5
    lam = np.linalg.eigvalsh(H)
    for lr in (1.5 / lam[-1], 2.1 / lam[-1]):
        full = stability_report(jac, lr, 5)
        # B = n is GD: residual modes decay by (1 - lr lambda)^2 per step
        expected = max((1 - lr * v) ** 2 for v in lam if v > 1e-9)
        assert full["ms_rate"] == pytest.approx(expected, rel=1e-8)
        rates = [stability_report(jac, lr, b)["ms_rate"] for b in (1, 2, 3, 4, 5)]
        assert all(a >= b - 1e-12 for a, b in itertools.pairwise(rates)), rates


def test_stable_minima_satisfy_the_necessary_conditions():
    """Where the exact mean-square rate is <= 1, GD's and the trace condition hold; the
    trace condition is tight enough to be violated while GD's still holds."""
    seen_gap = False
    for seed in range(6):
        obj, _ = _problem(n=5, d=8, seed=seed, equal_norms=True)
        jac = per_sample_jacobian(obj)
        for b in (1, 2, 4):
            for lr in np.linspace(0.05, 1.6, 12):
                rep = stability_report(jac, float(lr), b)
                if rep["ms_rate"] <= 1 + 1e-9:
                    assert rep["gd_ratio"] <= 1 + 1e-9, rep
                    assert rep["trace_ratio"] <= 1 + 1e-9, rep
                if rep["trace_ratio"] > 1 and rep["gd_ratio"] < 1:
                    assert rep["ms_rate"] > 1, rep
                    seen_gap = True
    assert seen_gap, "no case where SGD is unstable although GD is stable"


def test_bad_arguments_are_named():
    obj, _ = _problem()
    jac = per_sample_jacobian(obj)
    with pytest.raises(ValueError, match="batch_size"):
        stability_report(jac, 0.1, 0)
    with pytest.raises(ValueError, match="batch_size"):
        batch_factor(4, 5)
    with pytest.raises(ValueError, match="lr"):
        mean_square_operator(jac, -1.0, 1)
    assert math.isclose(batch_factor(4, 4), 0.0)
