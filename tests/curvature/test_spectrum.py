"""Stochastic Lanczos quadrature: exactness for polynomials, mass, support."""

import numpy as np
import pytest
import torch
from test_eigen import dense_hessian, quadratic_operator, tiny_objective

from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.spectrum import gaussian_density, slq


@pytest.fixture(scope="module")
def problem():
    obj = tiny_objective()
    return obj, dense_hessian(obj)


def test_gauss_quadrature_is_exact_for_low_degree_polynomials(problem):
    obj, H = problem
    m = 4
    V = torch.randn(H.shape[0], 3, generator=torch.Generator().manual_seed(0), dtype=H.dtype)
    res = slq(HessianOperator(obj), n_iter=m, vectors=V)
    assert res.hvps == 3 * m
    Vn = V / V.norm(dim=0)
    for p in range(1, 2 * m):
        exact = torch.einsum("nr,nr->r", Vn, torch.linalg.matrix_power(H, p) @ Vn)
        ours = (res.weights * res.nodes ** p).sum(dim=1)
        torch.testing.assert_close(ours, exact, rtol=1e-8, atol=1e-12)
    assert res.integrate(lambda x: x ** 3) == pytest.approx(
        float(torch.einsum("nr,nr->r", Vn, torch.linalg.matrix_power(H, 3) @ Vn).mean()),
        rel=1e-8)


def test_mass_and_support(problem):
    obj, H = problem
    lam = torch.linalg.eigvalsh(H)
    res = slq(HessianOperator(obj), n_iter=20, n_runs=3, seed=1)
    torch.testing.assert_close(res.weights.sum(dim=1), torch.ones(3, dtype=torch.float64))
    assert float(res.nodes.min()) >= float(lam[0]) - 1e-9
    assert float(res.nodes.max()) <= float(lam[-1]) + 1e-9
    assert float(res.nodes.max()) == pytest.approx(float(lam[-1]), rel=1e-6)
    grid, phi = res.density()
    assert float(torch.trapezoid(phi, grid)) == pytest.approx(1.0, abs=1e-6)
    assert bool((phi >= 0).all())


def test_quadratic_nodes_are_the_spectrum_and_density_peaks_there():
    spectrum = [9.0, 9.0, 5.0, 5.0, 1.0, 1.0]
    res = slq(quadratic_operator(spectrum), n_iter=6, n_runs=4, seed=2)
    for r in range(4):
        keep = res.weights[r] > 1e-12
        np.testing.assert_allclose(sorted(set(np.round(res.nodes[r][keep].numpy(), 8))),
                                   [1.0, 5.0, 9.0], atol=1e-8)
    grid, phi = res.density(sigma=0.2)
    peaks = [float(grid[i]) for i in range(1, len(grid) - 1)
             if phi[i] > phi[i - 1] and phi[i] >= phi[i + 1]]
    np.testing.assert_allclose(peaks, [1.0, 5.0, 9.0], atol=0.05)


def test_lockstep_runs_equal_separate_runs(problem):
    _, H = problem
    V = torch.randn(H.shape[0], 3, generator=torch.Generator().manual_seed(5), dtype=H.dtype)
    together = slq(H, n_iter=6, vectors=V)
    for r in range(3):
        alone = slq(H, n_iter=6, vectors=V[:, r])
        torch.testing.assert_close(together.nodes[r], alone.nodes[0], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(together.weights[r], alone.weights[0], rtol=1e-9, atol=1e-9)


def test_bad_inputs():
    H = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="n_iter=0"):
        slq(H, n_iter=0)
    with pytest.raises(ValueError, match="n_runs"):
        slq(H, n_runs=-1)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_density(torch.ones(1, 2), torch.ones(1, 2) / 2, sigma=0.0)
