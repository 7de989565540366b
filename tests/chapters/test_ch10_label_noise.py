"""Label-noise SGD and the product model, against exact answers on tiny float64 problems."""

import math

import pytest
import torch
from torch import nn

from eoslab.chapters.ch10_label_noise_sgd.label_noise import (
    LabelNoiseSGD,
    TraceProbe,
    flat_minimiser,
    min_trace,
    product_grad,
    product_label_noise,
    product_trace,
)
from eoslab.core.data import Dataset
from eoslab.core.train import ProbeContext, fit
from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.objective import Objective


def _loss(theta, y):
    return 0.5 * (theta.prod() - y) ** 2


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_product_grad_and_trace_match_autograd_off_the_manifold(k):
    gen = torch.Generator().manual_seed(k)
    for _ in range(3):
        theta = torch.randn(k, generator=gen, dtype=torch.float64) * 1.5
        grad = torch.func.grad(lambda t: t.prod())(theta)
        assert torch.allclose(product_grad(theta), grad, atol=1e-12)
        hess = torch.func.hessian(lambda t: _loss(t, 0.7))(theta)
        assert math.isclose(float(product_trace(theta)), float(torch.trace(hess)),
                            rel_tol=1e-10, abs_tol=1e-12)
    with_zero = torch.tensor([0.0, 2.0, 3.0][:k] or [0.0], dtype=torch.float64)
    assert torch.allclose(product_grad(with_zero),
                          torch.func.grad(lambda t: t.prod())(with_zero))


@pytest.mark.parametrize("k,y", [(2, 1.0), (2, 3.0), (3, -2.0)])
def test_flat_minimiser_is_the_smallest_trace_on_the_manifold(k, y):
    # brute force: random points with prod = y (scale the last factor)
    gen = torch.Generator().manual_seed(0)
    free = torch.exp(torch.randn(20000, k - 1, generator=gen, dtype=torch.float64))
    last = y / free.prod(-1, keepdim=True)
    points = torch.cat([free, last], -1)
    assert torch.allclose(points.prod(-1), torch.full((20000,), y, dtype=torch.float64))
    traces = product_trace(points)
    assert float(traces.min()) >= min_trace(y, k) - 1e-9
    assert float(traces.min()) <= min_trace(y, k) * 1.01
    c = flat_minimiser(y, k)
    flat = torch.tensor([c] * (k - 1) + [y / c ** (k - 1)], dtype=torch.float64)
    assert math.isclose(float(product_trace(flat)), min_trace(y, k), rel_tol=1e-12)


def test_imbalance_contracts_by_exactly_one_minus_eta_squared_r_squared():
    traj = product_label_noise(torch.tensor([[2.5, 0.4], [-0.5, -2.0]], dtype=torch.float64),
                               1.0, 0.1, 0.5, 50, seed=3, keep_residuals=True)
    D = traj.theta[..., 0] ** 2 - traj.theta[..., 1] ** 2
    predicted = D[:-1] * (1 - 0.01 * traj.residuals ** 2)
    assert torch.allclose(D[1:], predicted, rtol=1e-10, atol=1e-13)


def test_without_noise_a_minimiser_stays_put_and_with_noise_it_drifts_to_the_flat_one():
    start = torch.tensor([[2.5, 0.4], [0.5, 2.0], [-2.0, -0.5]], dtype=torch.float64)
    clean = product_label_noise(start, 1.0, 0.2, 0.0, 500)
    assert torch.allclose(clean.theta[-1], start, atol=1e-12)
    noisy = product_label_noise(start, 1.0, 0.2, 0.5, 3000, seed=1, record_every=100)
    final = noisy.theta[-1]
    assert torch.all((final[:, 0].abs() - final[:, 1].abs()).abs() < 1e-3)
    assert torch.all(torch.sign(final[:, 0]) == torch.sign(start[:, 0]))  # stays on its branch
    assert float(noisy.trace[-20:].mean()) < 0.5 * float(noisy.trace[0].min())


def test_a_deeper_product_also_balances_its_factors():
    start = torch.tensor([[2.0, 1.0, 0.5], [0.5, 0.5, 4.0]], dtype=torch.float64)
    traj = product_label_noise(start, 1.0, 0.1, 0.5, 8000, seed=2, record_every=500)
    final = traj.theta[-1].abs()
    assert float((final.max(-1).values - final.min(-1).values).max()) < 0.05
    assert float(traj.trace[-1].max()) < 0.6 * float(traj.trace[0].min())


def test_a_too_large_step_diverges_only_in_the_sharp_replica():
    start = torch.tensor([[4.0, 0.25], [1.0, 1.0]], dtype=torch.float64)  # tr 16.06 and 2
    traj = product_label_noise(start, 1.0, 0.5, 0.1, 200, record_every=10)  # eta*tr: 8 and 1
    assert traj.diverged_at[0] > 0 and traj.diverged_at[1] == -1
    assert torch.isnan(traj.theta[-1, 0]).all() and torch.isfinite(traj.theta[-1, 1]).all()


@pytest.mark.parametrize("bad", [{"lr": 0.0}, {"sigma": -1.0}, {"steps": 0},
                                 {"record_every": 0}, {"target": float("nan")}])
def test_product_label_noise_rejects_bad_values(bad):
    args = {"target": 1.0, "lr": 0.1, "sigma": 0.1, "steps": 5, "record_every": 1} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        product_label_noise([1.0, 1.0], args.pop("target"), args.pop("lr"), args.pop("sigma"),
                            args.pop("steps"), **args)


def _regression(device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    empty = torch.empty(0, 3, dtype=torch.float64)
    return Dataset("toy", x.to(device), y.to(device), empty.to(device),
                   torch.empty(0, 2, dtype=torch.float64).to(device), 0, (3,))


def _linear(device):
    torch.manual_seed(0)
    return nn.Linear(3, 2).double().to(device)


def test_label_noise_sgd_is_sgd_on_freshly_noised_targets(device):
    data = _regression(device)
    model = _linear(device)
    ref = _linear(device)
    opt = LabelNoiseSGD(torch.optim.SGD(model.parameters(), lr=0.1), sigma=0.3, seed=5)
    fit(model, data, "mse", opt, steps=3, record_every=1, eval_test=False)
    # by hand: the same noise stream, plain SGD on y + xi, three times
    gen = torch.Generator().manual_seed(5)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for _ in range(3):
        xi = (0.3 * torch.randn(data.y_train.shape, generator=gen, dtype=torch.float64))
        ref_opt.zero_grad()
        (0.5 * (ref(data.x_train) - data.y_train - xi.to(device)).pow(2).sum(1).mean()
         ).backward()
        ref_opt.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-12)


def test_zero_noise_is_exactly_the_base_optimiser(device):
    data = _regression(device)
    a, b = _linear(device), _linear(device)
    fit(a, data, "mse", LabelNoiseSGD(torch.optim.SGD(a.parameters(), lr=0.1), 0.0), steps=5,
        batch_size=4, eval_test=False)
    fit(b, data, "mse", torch.optim.SGD(b.parameters(), lr=0.1), steps=5, batch_size=4,
        eval_test=False)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_label_noise_rejects_class_indices_and_bad_arguments():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=gen)
    data = Dataset("toy", x, torch.tensor([0, 1, 0, 1, 0, 1]), x[:0], torch.zeros(0).long(), 2,
                   (3,))
    model = nn.Linear(3, 2)
    opt = LabelNoiseSGD(torch.optim.SGD(model.parameters(), lr=0.1), 0.1)
    with pytest.raises(ValueError, match="real-valued targets"):
        fit(model, data, "ce", opt, steps=1, eval_test=False)
    with pytest.raises(ValueError, match="sigma"):
        LabelNoiseSGD(torch.optim.SGD(model.parameters(), lr=0.1), -0.5)
    with pytest.raises(ValueError, match="base"):
        LabelNoiseSGD(model, 0.1)
    with pytest.raises(ValueError, match="closure"):
        opt.step()


def test_trace_probe_matches_the_dense_hessian_trace():
    data = _regression("cpu")
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 2)).double()  # 14 params
    objective = Objective(model, "mse", data.x_train, data.y_train)
    dense = HessianOperator(objective).dense()
    probe = TraceProbe(1, m=45)  # Hutch++ with 15 sketch columns >= 14 parameters: exact
    row = probe(ProbeContext(0, model, None, objective, data, 0.1))
    assert math.isclose(row["trace"], float(torch.trace(dense)), rel_tol=1e-8)
    with pytest.raises(ValueError, match="every"):
        TraceProbe(0)
    with pytest.raises(ValueError, match="method"):
        TraceProbe(1, method="exact")
