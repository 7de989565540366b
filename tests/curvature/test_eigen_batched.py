"""The batched Lanczos iteration against a dense float64 eigensolver, copy by copy."""

import math

import torch

from eoslab.core.sweep import batched_top_eigen as reexported
from eoslab.curvature.eigen_batched import batched_top_eigen


def test_the_sweep_module_still_exports_it():
    assert reexported is batched_top_eigen


def test_batched_top_eigen_matches_eigvalsh_per_copy(device):
    gen = torch.Generator().manual_seed(0)
    n, C = 30, 4
    mats = []
    for c in range(C):
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
        lam = torch.linspace(-3.0, 1.0 + c, n, dtype=torch.float64)
        if c == 3:
            lam = -lam.abs() - 0.5  # all negative: the top is the least negative
        mats.append(q @ torch.diag(lam) @ q.T)
    H = torch.stack(mats).to(device)
    calls = []

    def matvec(V, rows):
        calls.append(len(rows))
        return torch.einsum("cij,cj->ci", H[torch.as_tensor(rows, device=device)], V)

    values, vectors, _ = batched_top_eigen(matvec, torch.zeros(C, n, device=device,
                                                                 dtype=torch.float64),
                                           tol=1e-12, max_iter=n)
    exact = torch.linalg.eigvalsh(H.cpu())[:, -1]
    assert torch.allclose(values, exact, rtol=1e-10, atol=1e-10)
    assert calls[0] == C
    resid = matvec(vectors, range(C)) - values.to(device)[:, None] * vectors
    assert float(resid.norm(dim=1).max()) < 1e-5
    # a warm start from the answer needs fewer products; inactive copies are skipped
    active = torch.tensor([True, False, True, True])
    cold = torch.zeros(C, n, device=device, dtype=torch.float64)
    calls.clear()
    _, _, cold_products = batched_top_eigen(matvec, cold, active, tol=1e-8, max_iter=n)
    # only copies still iterating pay: the products done are the products reported
    assert max(calls) == 3 and sum(calls) == int(cold_products.sum())
    again, _, products = batched_top_eigen(matvec, vectors, active, tol=1e-8, max_iter=n)
    assert math.isnan(float(again[1])) and products[1] == 0
    assert products.sum() < cold_products.sum()
    assert torch.allclose(again[active], exact[active], rtol=1e-7)
