"""Lookahead against exact answers: the closed-form cycle factor, the step-size threshold,
a hand-written loop through eoslab.core.train.fit, and alpha = 1 being the inner optimiser."""

import copy
import math

import numpy as np
import pytest
import torch

from eoslab.chapters.ch01_quadratic_stability.quadratic import Quadratic
from eoslab.core.data import Dataset
from eoslab.core.train import fit
from eoslab.optimizers.lookahead import (
    Lookahead,
    exact_noise_floors,
    lookahead_factor,
    lookahead_paths,
    lookahead_threshold,
    noise_floors,
    stationary_loss,
)


def _quadratic_run(lr, lam, alpha, k, cycles, start=1.0):
    w = torch.nn.Parameter(torch.tensor([start], dtype=torch.float64))
    opt = Lookahead(torch.optim.SGD([w], lr=lr), alpha=alpha, k=k)
    for _ in range(cycles * k):
        w.grad = lam * w.detach().clone()
        opt.step()
    return float(w.detach())


@pytest.mark.parametrize("lr,alpha,k", [(0.3, 0.5, 5), (2.1, 0.5, 5), (1.7, 0.8, 3),
                                        (0.9, 0.2, 4)])
def test_slow_error_follows_the_closed_form_cycle_factor(lr, alpha, k):
    lam, cycles = 1.3, 7
    rho = lookahead_factor(lr, lam, alpha, k)
    assert _quadratic_run(lr, lam, alpha, k, cycles) == pytest.approx(rho ** cycles, rel=1e-10,
                                                                      abs=1e-300)


@pytest.mark.parametrize("alpha,k", [(0.5, 5), (0.3, 3), (0.5, 1), (0.5, 4), (0.7, 6)])
def test_threshold_separates_convergence_from_divergence(alpha, k):
    lam = 2.0
    edge = lookahead_threshold(lam, alpha, k)
    assert abs(lookahead_factor(edge, lam, alpha, k)) == pytest.approx(1.0, abs=1e-12)
    below = abs(_quadratic_run(edge * 0.99, lam, alpha, k, 400))
    above = abs(_quadratic_run(edge * 1.01, lam, alpha, k, 400))
    assert below < 1e-3 and above > 1e3
    # brute force: the largest stable step size on a fine grid
    grid = np.linspace(0.01, 5.0, 5000) / lam
    stable = [lr for lr in grid if abs(lookahead_factor(lr, lam, alpha, k)) < 1]
    assert max(stable) == pytest.approx(edge, abs=2e-3)


def test_odd_k_extends_gd_range_and_even_k_does_not():
    assert lookahead_threshold(1.0, 0.5, 5) == pytest.approx(1 + 3 ** 0.2)
    assert lookahead_threshold(1.0, 0.5, 5) > 2.0
    assert lookahead_threshold(1.0, 0.5, 6) == 2.0
    assert lookahead_threshold(1.0, 1.0, 5) == pytest.approx(2.0)  # alpha = 1 is GD


def test_alpha_one_is_the_inner_optimiser():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    b = torch.nn.Parameter(a.detach().clone())
    la = Lookahead(torch.optim.SGD([a], lr=0.1, momentum=0.9), alpha=1.0, k=3)
    sgd = torch.optim.SGD([b], lr=0.1, momentum=0.9)
    for _ in range(10):
        for p, opt in ((a, la), (b, sgd)):
            opt.zero_grad()
            (p ** 4).sum().backward()
            opt.step()
    assert torch.allclose(a, b, atol=1e-14)


def test_runs_in_fit_and_matches_a_hand_written_loop():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(20, 1, generator=gen, dtype=torch.float64)
    data = Dataset("toy", x, y, x[:0], y[:0], 0, (3,))
    model = torch.nn.Linear(3, 1).double()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = Lookahead(torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.5), alpha=0.4, k=3)
    run = fit(model, data, "mse", opt, steps=11, record_every=5)
    assert run.status == "finished"
    # by hand: heavy ball on the mean squared error, pulled back every 3 steps
    w, b = start["weight"].clone(), start["bias"].clone()
    slow_w, slow_b = w.clone(), b.clone()
    buf_w, buf_b = torch.zeros_like(w), torch.zeros_like(b)
    for t in range(11):
        r = x @ w.T + b - y
        gw, gb = r.T @ x / 20, r.sum(0) / 20  # eoslab's mse is 1/(2n) sum r^2
        buf_w, buf_b = 0.5 * buf_w + gw, 0.5 * buf_b + gb
        w, b = w - 0.2 * buf_w, b - 0.2 * buf_b
        if (t + 1) % 3 == 0:
            slow_w, slow_b = slow_w + 0.4 * (w - slow_w), slow_b + 0.4 * (b - slow_b)
            w, b = slow_w.clone(), slow_b.clone()
    assert torch.allclose(model.weight, w, atol=1e-12)
    assert torch.allclose(model.bias, b, atol=1e-12)


def test_state_dict_round_trip_and_scheduler():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = Lookahead(torch.optim.SGD([w], lr=0.1, momentum=0.9), alpha=0.5, k=4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
        sched.step()
    assert opt.base.param_groups[0]["lr"] == pytest.approx(0.05)
    saved = copy.deepcopy(opt.state_dict())  # torch shares buffers with the live state
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = Lookahead(torch.optim.SGD([w2], lr=0.1, momentum=0.9), alpha=0.5, k=4)
    opt2.load_state_dict(saved)
    for o, p in ((opt, w), (opt2, w2)):
        o.zero_grad()
        (p ** 2).sum().backward()
        o.step()
    assert opt2.inner_steps == 4 and opt2.synced
    assert torch.allclose(w, w2, atol=1e-15)


def test_paths_gd_diverges_where_lookahead_converges():
    q = Quadratic((1.0, 0.1), angle=30.0)
    paths = lookahead_paths(q, (1.5, 1.0), 2.1, 200, alpha=0.5, k=5)
    assert paths.inner_diverged is not None and paths.lookahead_diverged is None
    assert paths.slow_loss[-1] < 1e-6 * paths.slow_loss[0]
    assert len(paths.slow) == 200 // 5 + 1
    assert np.allclose(paths.fast[::5], paths.slow)  # fast restarts at the slow weights


def test_bad_input_names_the_value():
    w = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="alpha=1.5"):
        Lookahead(torch.optim.SGD([w], lr=0.1), alpha=1.5)
    with pytest.raises(ValueError, match="k=0"):
        Lookahead(torch.optim.SGD([w], lr=0.1), k=0)
    with pytest.raises(ValueError, match="base="):
        Lookahead("sgd")
    with pytest.raises(ValueError, match="lam=-1"):
        lookahead_threshold(-1.0)
    with pytest.raises(ValueError, match="noise=-0.1"):
        lookahead_paths(Quadratic(), (1, 1), 0.1, 10, noise=-0.1)
    with pytest.raises(ValueError, match="last=0"):
        stationary_loss([1.0], last=0)
    assert math.isfinite(lookahead_factor(0.1, 1.0))


def test_noise_floors_match_the_exact_stationary_variance():
    q = Quadratic((1.0, 0.1), angle=30.0)
    exact = exact_noise_floors(q.eigenvalues, 1.0, 0.1, alpha=0.5, k=5)
    measured = noise_floors(q, 1.0, 0.1, 1000, 32, alpha=0.5, k=5)
    assert measured["inner"] == pytest.approx(exact["inner"], rel=0.1)
    assert measured["slow"] == pytest.approx(exact["slow"], rel=0.1)
    assert exact["ratio"] < 0.5 and measured["ratio"] < 0.5
    # the exact formula against a brute-force linear recursion of the covariance, 1-D
    lam, lr, s, alpha, k = 0.3, 1.5, 0.2, 0.4, 3
    r = 1 - lr * lam
    var_slow = 0.0
    for _ in range(5000):  # phi' = rho phi + alpha sum_j r^(k-1-j) noise_j
        var_slow = lookahead_factor(lr, lam, alpha, k) ** 2 * var_slow + alpha ** 2 * sum(
            (r ** (k - 1 - j) * lr * s) ** 2 for j in range(k))
    assert exact_noise_floors((lam,), lr, s, alpha=alpha, k=k)["slow"] == pytest.approx(
        0.5 * lam * var_slow, rel=1e-9)
