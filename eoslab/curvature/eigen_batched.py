"""The top Hessian eigenpair of many stacked copies at once: batched Lanczos.

:func:`batched_top_eigen` runs :func:`eoslab.curvature.eigen.lanczos_eigsh`'s iteration
(Lanczos 1950, full reorthogonalisation, twice) on ``C`` symmetric operators
:math:`H_1, \\dots, H_C` side by side: the Krylov bases are one ``(C, m, n)`` tensor, every
iteration asks for one batched product :math:`(H_c q_c)_c`, and the ``C`` tridiagonal
Ritz problems are solved by one stacked ``numpy.linalg.eigh``.  Each copy stops on its own
residual test and stops costing products; warm starts (the previous eigenvectors, plus
``mix`` times a random unit vector) make tracking during training cheap.  The batched
sweep (:mod:`eoslab.core.sweep`) feeds it Hessian-vector products of all its copies.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["batched_top_eigen"]


def batched_top_eigen(matvec: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor,
                      active: torch.Tensor | None = None, *, tol: float = 1e-2,
                      max_iter: int = 100, seed: int = 0, mix: float = 1e-2):
    """Top eigenpair of ``C`` symmetric operators at once (Lanczos, full reorthogonalisation).

    One batched product per iteration serves every copy still iterating.  Copy ``c``
    stops when its top Ritz pair has the residual :math:`r = \\beta_j |e_j^\\top s| \\le
    \\mathrm{tol}\\, \\max_i|\\theta_i|`, the rule of
    :func:`eoslab.curvature.eigen.lanczos_eigsh` (and so of
    :class:`~eoslab.curvature.sharpness.SharpnessProbe`): by Kahan's bound an eigenvalue
    lies within :math:`r` of :math:`\\theta`, and the actual error is about
    :math:`r^2/\\delta` for a gap :math:`\\delta`.  Stopped copies are fed zero vectors.

    Args:
        matvec: ``matvec(V, rows)`` maps vectors ``V`` of shape ``(len(rows), n)`` to
            :math:`(H_r v_r)_{r \\in \\mathrm{rows}}` (``rows``: a sorted index array of
            the copies still iterating).
        start: ``(C, n)`` warm-start vectors (previous eigenvectors); zero rows start at random.
        active: ``(C,)`` bool, copies to solve (the others give NaN).
        tol: relative residual at which a copy stops.
        max_iter: Krylov dimension cap.
        seed: the random start's CPU generator seed.
        mix: the random start's weight added to a warm start.

    Returns:
        ``(values (C,) float64 on the CPU, vectors (C, n), products (C,) per copy)``.

    >>> H = torch.stack([torch.diag(torch.tensor([3.0, 1.0, -5.0])), torch.eye(3) * 2])
    >>> vals, _, _ = batched_top_eigen(lambda v, rows: torch.einsum("cij,cj->ci", H[rows], v),
    ...                                torch.zeros(2, 3), tol=1e-10)
    >>> [round(v, 6) for v in vals.tolist()]
    [3.0, 2.0]
    """
    C, n = start.shape
    dtype, device = start.dtype, start.device
    active = torch.ones(C, dtype=torch.bool) if active is None else active.detach().cpu()
    q = _start_vectors(start, active, seed, mix)
    m_max = max(1, min(n, int(max_iter)))
    basis = torch.zeros(C, min(m_max, 16), n, dtype=dtype, device=device)
    alphas, betas = np.zeros((C, m_max)), np.zeros((C, m_max))
    values, coeffs = np.full(C, np.nan), np.zeros((C, m_max))
    products = np.zeros(C, dtype=np.int64)
    done = ~active.numpy().copy()
    eps = float(torch.finfo(dtype).eps)
    for j in range(m_max):
        if j == basis.shape[1]:
            basis = torch.cat([basis, torch.zeros_like(basis)], 1)[:, :m_max]
        basis[:, j] = q
        w = _products(matvec, q, np.flatnonzero(~done))
        products += ~done
        alpha = (q * w).sum(1)
        Q = basis[:, :j + 1]
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w = w - torch.bmm(torch.bmm(w.unsqueeze(1), Q.transpose(1, 2)), Q).squeeze(1)
        beta = w.norm(dim=1)
        ab = torch.stack([alpha, beta]).double().cpu().numpy()  # the one sync per iteration
        alphas[:, j] = np.where(done, 0.0, ab[0])
        beta_np = np.where(done, 0.0, ab[1])
        live = np.flatnonzero(~done)
        theta, S = np.linalg.eigh(_tridiagonals(alphas[live, :j + 1], betas[live, :j]))
        scale = np.maximum(np.abs(theta).max(1), eps)
        converged = (beta_np[live] * np.abs(S[:, -1, -1]) <= tol * scale) | (j + 1 == m_max)
        for k in np.flatnonzero(converged):
            c = live[k]
            values[c], coeffs[c, :j + 1], done[c] = theta[k, -1], S[k, :, -1], True
        if done.all():
            break
        betas[:, j] = np.where(done, 0.0, beta_np)
        live = torch.as_tensor(~done, device=device).unsqueeze(1)
        scale_b = torch.as_tensor(betas[:, j], dtype=dtype, device=device).clamp_min(
            torch.finfo(dtype).tiny).unsqueeze(1)
        q = torch.where(live, w / scale_b, torch.zeros_like(w))
    m = j + 1
    S = torch.as_tensor(coeffs[:, :m], dtype=dtype, device=device).unsqueeze(1)
    vectors = torch.bmm(S, basis[:, :m]).squeeze(1)
    return torch.as_tensor(values), vectors, torch.as_tensor(products)


def _start_vectors(start: torch.Tensor, active: torch.Tensor, seed: int, mix: float
                   ) -> torch.Tensor:
    """Unit start vectors: a warm start plus ``mix`` times noise, or noise; 0 if inactive."""
    C, n = start.shape
    dtype, device = start.dtype, start.device
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(C, n, generator=gen, dtype=torch.float64).to(device, dtype)
    noise = noise / noise.norm(dim=1, keepdim=True)
    norms = start.norm(dim=1, keepdim=True)
    q = torch.where(norms > 0, start / norms.clamp_min(torch.finfo(dtype).tiny) + mix * noise,
                    noise)
    keep = active.to(device).unsqueeze(1)
    return torch.where(keep, q / q.norm(dim=1, keepdim=True), torch.zeros_like(q))


def _products(matvec, q: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """:math:`H_c q_c` for the copies ``rows``, zero for the others (which pay nothing)."""
    if rows.size == q.shape[0]:
        return matvec(q, rows)
    idx = torch.as_tensor(rows, device=q.device)
    return torch.zeros_like(q).index_copy_(0, idx, matvec(q.index_select(0, idx), rows))


def _tridiagonals(alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """``(C, m, m)`` symmetric tridiagonal matrices: every copy's Lanczos matrix.

    Diagonals ``alphas`` ``(C, m)``, off-diagonals ``betas`` ``(C, m - 1)``; one stacked
    ``numpy.linalg.eigh`` call then serves every copy.
    """
    copies, m = alphas.shape
    out = np.zeros((copies, m, m))
    i = np.arange(m)
    out[:, i, i] = alphas
    out[:, i[:-1], i[1:]] = betas
    out[:, i[1:], i[:-1]] = betas
    return out
