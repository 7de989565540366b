"""Hutchinson and Hutch++ against exact traces and the variance their theory predicts."""

import math

import numpy as np
import pytest
import torch
from test_eigen import dense_hessian, quadratic_operator, tiny_objective

from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.trace import hutchinson, hutchpp


@pytest.fixture(scope="module")
def problem():
    obj = tiny_objective()
    return obj, dense_hessian(obj)


def test_hutchinson_on_the_hessian_operator_equals_the_dense_formula(problem):
    obj, H = problem
    est = hutchinson(HessianOperator(obj), m=20, seed=4, batch=7)
    dense = hutchinson(H, m=20, seed=4)
    torch.testing.assert_close(est.samples, dense.samples, rtol=0, atol=1e-10)
    assert est.hvps == 20


@pytest.mark.parametrize("dist", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_with_the_predicted_variance(problem, dist):
    _, H = problem
    m = 20000
    est = hutchinson(H, m=m, dist=dist, seed=11, batch=m)
    frob2, diag2 = float((H * H).sum()), float((torch.diagonal(H) ** 2).sum())
    var_theory = 2 * (frob2 - diag2) if dist == "rademacher" else 2 * frob2
    exact = float(torch.trace(H))
    assert abs(est.estimate - exact) < 5 * math.sqrt(var_theory / m)
    assert est.samples.var().item() == pytest.approx(var_theory, rel=0.15)
    assert est.std_error == pytest.approx(math.sqrt(var_theory / m), rel=0.1)


def test_hutchpp_is_exact_on_low_rank_and_unbiased(problem):
    op = quadratic_operator([5.0, 3.0, 1.0] + [0.0] * 9)
    assert hutchpp(op, m=9).estimate == pytest.approx(9.0, abs=1e-10)
    _, H = problem
    exact = float(torch.trace(H))
    draws = np.array([hutchpp(H, m=12, seed=s).estimate for s in range(200)])
    assert abs(draws.mean() - exact) < 5 * draws.std() / math.sqrt(len(draws))


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum():
    gen = torch.Generator().manual_seed(0)
    n = 40
    Q = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))[0]
    A = Q @ torch.diag(1.0 / torch.arange(1, n + 1, dtype=torch.float64) ** 2) @ Q.T
    pp = np.array([hutchpp(A, m=15, seed=s).estimate for s in range(100)])
    plain = np.array([hutchinson(A, m=15, seed=s).estimate for s in range(100)])
    assert ((pp - float(torch.trace(A))) ** 2).mean() < ((plain - float(torch.trace(A))) ** 2
                                                         ).mean() / 3


def test_quadratic_trace_is_the_sum_of_the_spectrum():
    spectrum = [4.0, 2.0, 1.0, 0.5, 0.25]
    assert hutchpp(quadratic_operator(spectrum), m=15).estimate == pytest.approx(
        sum(spectrum), abs=1e-10)


def test_bad_inputs():
    H = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="m=0"):
        hutchinson(H, m=0)
    with pytest.raises(ValueError, match="m=2"):
        hutchpp(H, m=2)
    with pytest.raises(ValueError, match="dist"):
        hutchinson(H, m=3, dist="uniform")
