"""Santurkar et al.'s smoothness measures against exact answers on tiny float64 problems."""

import math

import pytest
import torch

from eoslab.chapters.ch13_normalization_sharpness.smoothness import (
    SmoothnessProbe,
    smoothness_along_gradient,
)
from eoslab.core.train import ProbeContext
from eoslab.curvature.hessian import HessianOperator, flatten
from eoslab.curvature.objective import Objective
from eoslab.curvature.scale_invariance import ScaleInvariantMLP


def _quadratic(device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, generator=gen, dtype=torch.float64).to(device)
    y = torch.randn(20, 2, generator=gen, dtype=torch.float64).to(device)
    net = torch.nn.Linear(3, 2, bias=False).to(device=device, dtype=torch.float64)
    return Objective(net, "mse", x, y)


def test_on_a_quadratic_the_measures_follow_from_the_hessian(device):
    obj = _quadratic(device)
    lr, multiples = 0.3, (0.5, 1.0, 3.0)
    out = smoothness_along_gradient(obj, lr=lr, multiples=multiples)
    p = obj.params()
    op = HessianOperator(obj, p)
    H, g = op.dense(), op.gradient()
    w = flatten(p)
    for s, loss, change in zip(multiples, out["loss"][1:], out["grad_change"]):
        d = -s * lr * g
        # exact second-order expansion of a quadratic
        want = float(obj(p)) + float(g @ d) + 0.5 * float(d @ H @ d)
        assert loss == pytest.approx(want, rel=1e-10)
        assert change == pytest.approx(float((H @ d).norm()), rel=1e-10)
    beta = float((H @ g).norm() / g.norm())
    assert out["beta_smoothness"] == pytest.approx(beta, rel=1e-10)
    assert out["beta_smoothness"] <= float(torch.linalg.eigvalsh(H)[-1]) * (1 + 1e-12)
    assert out["grad_predictiveness"] == pytest.approx(max(out["grad_change"]))
    assert out["loss_variation"] == pytest.approx(max(out["loss"]) - min(out["loss"]))
    assert out["grad_norm"] == pytest.approx(float(g.norm()))
    assert torch.equal(flatten(obj.params()), w)  # the model was not moved


def test_on_a_batchnorm_net_it_matches_brute_force_autograd(device):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(16, 5, generator=gen, dtype=torch.float64).to(device)
    y = torch.randint(0, 3, (16,), generator=gen).to(device)
    net = ScaleInvariantMLP(5, 3, width=6, depth=2, seed=1).to(device=device,
                                                                dtype=torch.float64)
    obj = Objective(net, "cross-entropy", x, y, train_mode=True)
    lr = 0.4
    out = smoothness_along_gradient(obj, lr=lr, multiples=(2.0,))

    def loss_and_grad(model):
        model.train()
        for q in model.parameters():
            q.grad = None
        value = torch.nn.functional.cross_entropy(model(x), y)
        value.backward()
        return float(value.detach()), torch.cat([q.grad.reshape(-1) for q in model.parameters()])

    import copy
    l0, g0 = loss_and_grad(copy.deepcopy(net))
    moved = copy.deepcopy(net)
    with torch.no_grad():
        i = 0
        for q in moved.parameters():
            q.add_(-2.0 * lr * g0[i:i + q.numel()].reshape(q.shape))
            i += q.numel()
    l1, g1 = loss_and_grad(moved)
    assert out["loss"] == pytest.approx([l0, l1], rel=1e-9)
    assert out["grad_change"][0] == pytest.approx(float((g1 - g0).norm()), rel=1e-8)
    assert out["beta_smoothness"] == pytest.approx(
        float((g1 - g0).norm()) / (2.0 * lr * float(g0.norm())), rel=1e-8)


def test_probe_uses_batch_statistics_and_reports_three_keys(device):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(10, 4, generator=gen, dtype=torch.float64).to(device)
    y = torch.randint(0, 2, (10,), generator=gen).to(device)
    net = ScaleInvariantMLP(4, 2, width=5, depth=1, seed=0).to(device=device,
                                                               dtype=torch.float64)
    loop_objective = Objective(net, "cross-entropy", x, y)  # fit's: running statistics
    opt = torch.optim.SGD(net.parameters(), lr=0.2)
    row = SmoothnessProbe(1, multiples=(1.0, 2.0))(
        ProbeContext(0, net, opt, loop_objective, None, 0.2))
    want = smoothness_along_gradient(Objective(net, "cross-entropy", x, y, train_mode=True),
                                     lr=0.2, multiples=(1.0, 2.0))
    assert set(row) == {"loss_variation", "grad_predictiveness", "beta_smoothness"}
    for key, value in row.items():
        assert value == pytest.approx(want[key], rel=1e-12)
    eval_mode = smoothness_along_gradient(loop_objective, lr=0.2, multiples=(1.0, 2.0))
    assert not math.isclose(eval_mode["grad_predictiveness"], row["grad_predictiveness"],
                            rel_tol=1e-3)


def test_bad_arguments_are_rejected():
    obj = _quadratic("cpu")
    with pytest.raises(ValueError, match="lr=0"):
        smoothness_along_gradient(obj, lr=0, multiples=(1.0,))
    with pytest.raises(ValueError, match="multiples"):
        smoothness_along_gradient(obj, lr=0.1, multiples=())
    with pytest.raises(ValueError, match="multiples"):
        SmoothnessProbe(5, multiples=(1.0, -2.0))
    with pytest.raises(ValueError, match="every=0"):
        SmoothnessProbe(0)
