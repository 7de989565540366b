"""Lanczos eigenpairs against dense eigendecompositions on tiny float64 problems."""

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import eigsh
from torch.func import hessian

from eoslab import Objective, build_model, load_dataset
from eoslab.curvature.eigen import MatrixOperator, bottom_eigen, lanczos_eigsh, top_eigen
from eoslab.curvature.hessian import HessianOperator, flatten, unflatten


def tiny_objective(device="cpu", dtype="float64", seed=0):
    data = load_dataset("teacher", n_train=30, n_test=0, dim=5, device=device, dtype=dtype,
                        seed=seed)
    model = build_model("fc-tanh", data.input_shape, 1, width=4, depth=2, seed=seed,
                        device=device, dtype=dtype)
    return Objective(model, "mse", data.x_train, data.y_train)


def dense_hessian(objective):
    params = objective.params()
    return hessian(lambda t: objective(unflatten(t, params)))(flatten(params))


def quadratic_operator(spectrum, device="cpu", seed=0):
    data = load_dataset("quadratic", spectrum=spectrum, dtype="float64", device=device, seed=seed)
    model = build_model("linear", data.input_shape, 1, dtype="float64", device=device)
    return HessianOperator(Objective(model, "mse", data.x_train, data.y_train))


@pytest.mark.parametrize("k", [1, 3])
def test_top_k_matches_dense(device, k):
    obj = tiny_objective(device)
    H = dense_hessian(obj)
    exact = torch.linalg.eigvalsh(H).flip(0)[:k].cpu()
    op = HessianOperator(obj)
    res = top_eigen(op, k=k, tol=1e-10)
    assert res.converged
    torch.testing.assert_close(res.values, exact, rtol=1e-8, atol=0)
    resid = (H @ res.vectors - res.vectors * res.values.to(device)).norm(dim=0)
    assert float(resid.max()) < 1e-8 * float(exact[0])
    assert res.hvps == op.hvps  # one fresh operator: every product is counted
    assert res.vectors.device.type == device.type


def test_most_negative_matches_dense():
    obj = tiny_objective()
    H = dense_hessian(obj)
    exact = torch.linalg.eigvalsh(H)[:2]
    res = bottom_eigen(HessianOperator(obj), k=2, tol=1e-10)
    torch.testing.assert_close(res.values, exact, rtol=1e-8, atol=1e-12)
    assert res.values[0] <= res.values[1]


def test_scipy_eigsh_agrees_over_the_same_products():
    op = HessianOperator(tiny_objective())
    ours = top_eigen(op, k=2, tol=1e-10).values.numpy()
    theirs = np.sort(eigsh(op.to_scipy(), k=2, which="LA")[0])[::-1]
    np.testing.assert_allclose(ours, theirs, rtol=1e-8)


def test_quadratic_returns_the_chosen_spectrum():
    spectrum = [10.0, 7.0, 5.0, 2.0, 1.0, 0.5, 0.1, 0.0]
    op = quadratic_operator(spectrum)
    np.testing.assert_allclose(top_eigen(op, k=3, tol=1e-12).values, [10, 7, 5], rtol=1e-10)
    np.testing.assert_allclose(bottom_eigen(op, k=2, tol=1e-12).values, [0.0, 0.1], atol=1e-10)


def test_repeated_eigenvalues_are_all_found():
    # one start vector only sees one copy of a repeated eigenvalue: the restart finds the other
    op = quadratic_operator([4.0, 4.0, 1.0, 1.0, 0.5])
    res = top_eigen(op, k=3, tol=1e-12)
    np.testing.assert_allclose(res.values, [4, 4, 1], rtol=1e-10)


def test_warm_start_needs_fewer_products_than_cold():
    gen = torch.Generator().manual_seed(3)
    n = 200
    Q = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))[0]
    lam = torch.linspace(0, 1, n, dtype=torch.float64) ** 3 * 10
    A = Q @ torch.diag(lam) @ Q.T
    E = torch.randn(n, n, generator=gen, dtype=torch.float64) * 1e-3
    B = A + (E + E.T) / 2
    before = top_eigen(A, k=1, tol=1e-8)
    cold = top_eigen(MatrixOperator(B), k=1, tol=1e-8, seed=1)
    warm = top_eigen(MatrixOperator(B), k=1, tol=1e-8, init=before.vectors)
    np.testing.assert_allclose(warm.values, cold.values, rtol=1e-7)
    assert warm.hvps < cold.hvps


def test_float32_is_close(device):
    obj64, obj32 = tiny_objective(device), tiny_objective(device, "float32")
    exact = torch.linalg.eigvalsh(dense_hessian(obj64))[-1].cpu()
    res = top_eigen(HessianOperator(obj32), k=1, tol=1e-5)
    assert abs(float(res.values[0]) - float(exact)) < 1e-4 * float(exact)


@pytest.mark.parametrize("kwargs,match", [
    ({"k": 0}, "k=0"), ({"k": 50}, r"\[1, 49\]"), ({"k": 2.0}, "k=2.0"),
    ({"which": "LM"}, "which"), ({"tol": 0.0}, "tol"),
    ({"init": torch.zeros(5, dtype=torch.float64)}, "init"),
    ({"init": torch.full((49,), float("nan"), dtype=torch.float64)}, "init"),
])
def test_bad_inputs(kwargs, match):
    op = HessianOperator(tiny_objective())
    assert op.numel == 49
    with pytest.raises(ValueError, match=match):
        lanczos_eigsh(op, **{"k": 1, **kwargs})
