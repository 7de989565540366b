"""The diagonal net of chapter 09's second half against brute force on a tiny float64 problem."""

import numpy as np
import pytest
import torch

from eoslab.chapters.ch09_sgd_stability.diagonal_net import DiagonalProblem, minimum_report, train


def test_report_matches_the_autograd_hessian_at_an_interpolating_point():
    prob = DiagonalProblem(n=5, d=4, k=2, n_test=20)
    X, _y, _, _ = prob.data()
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=4), rng.normal(size=4)
    # labels fitted exactly at (u, v): there the Hessian is the Gauss-Newton J^T J / n
    y = X @ (u * u - v * v)
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def loss(w):
        a, b = w[:4], w[4:]
        return 0.5 * torch.mean((Xt @ (a * a - b * b) - yt) ** 2)

    H = torch.autograd.functional.hessian(loss, torch.tensor(np.concatenate([u, v])))
    rep = minimum_report(prob, u, v)
    # minimum_report uses the problem's own labels: only loss and test depend on them
    assert rep["trace"] == pytest.approx(float(torch.trace(H)), rel=1e-10)
    assert rep["sharpness"] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-10)
    assert rep["l1"] == pytest.approx(float(np.abs(u * u - v * v).sum()), rel=1e-12)
    assert rep["l1"] <= rep["l1_bound"] + 1e-12


def test_one_gd_step_is_the_gradient_step_and_bad_input_is_refused():
    prob = DiagonalProblem(n=6, d=3, k=1, n_test=10)
    X, y, _, _ = prob.data()
    u, v = np.full(3, 0.5), np.full(3, 0.2)
    w = torch.tensor(np.concatenate([u, v]), requires_grad=True)
    loss = 0.5 * torch.mean((torch.tensor(X) @ (w[:3] ** 2 - w[3:] ** 2) - torch.tensor(y)) ** 2)
    loss.backward()
    out = train(X, y, u, v, lr=0.1, batch=6, steps=1)
    assert np.allclose(np.concatenate([out["u"], out["v"]]),
                       w.detach().numpy() - 0.1 * w.grad.numpy(), rtol=1e-12)
    assert train(X, y, u, v, lr=1e3, batch=6, steps=50)["status"] == "diverged"
    with pytest.raises(ValueError, match="batch=7 is not allowed"):
        train(X, y, u, v, lr=0.1, batch=7, steps=1)
    with pytest.raises(ValueError, match="lr=-1 is not allowed"):
        train(X, y, u, v, lr=-1, batch=1, steps=1)
