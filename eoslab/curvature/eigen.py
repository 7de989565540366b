"""Extreme Hessian eigenpairs by Lanczos with full reorthogonalisation.

The sharpness of Cohen et al. (ICLR 2021, arXiv 2103.00065) is the top eigenvalue
:math:`S(\\theta) = \\lambda_{\\max}(\\nabla^2 L(\\theta))`.  Lanczos builds an orthonormal
Krylov basis :math:`Q_m` of :math:`\\mathcal K_m(H, q_1)` with :math:`H Q_m = Q_m T_m +
\\beta_m q_{m+1} e_m^\\top`, :math:`T_m` tridiagonal; the Ritz pairs
:math:`(\\theta_i, Q_m s_i)` of :math:`T_m` converge first at both ends of the spectrum,
and their residuals come for free:

.. math::

    \\lVert H Q_m s_i - \\theta_i Q_m s_i \\rVert = \\beta_m\\, |e_m^\\top s_i|.

The iteration stops when each of the ``k`` wanted Ritz pairs has a residual at most
``tol`` :math:`\\cdot \\max|\\theta|`.  An eigenvalue of :math:`H` lies within the residual
of each Ritz value (Kahan's bound), so ``tol`` *guarantees* the relative eigenvalue
accuracy; by the gap theorem the actual error is about :math:`r^2/\\delta` (:math:`\\delta`
the gap to the next eigenvalue), usually far smaller.  The basis is reorthogonalised
in full (twice, Gram-Schmidt) at every step, so the method is stable in float32; vectors
stay on the operator's device and only the small tridiagonal problem goes to the CPU.

Warm start: when tracking during training, ``init`` passes the previous eigenvectors; the
start vector is their normalised sum (plus ``mix`` times a random unit vector, so a
direction that has become dominant is still seen); while the eigenvectors drift slowly
(progressive sharpening) this saves most products, at the edge of stability, where the
top eigenvector swings from step to step, less (see ``benchmarks/bench_sharpness.md``).

Example:
    >>> import torch
    >>> A = torch.diag(torch.tensor([5.0, 2.0, -3.0, 1.0], dtype=torch.float64))
    >>> res = top_eigen(A, k=2, tol=1e-10)
    >>> [round(v, 6) for v in res.values.tolist()]
    [5.0, 2.0]
    >>> round(float(bottom_eigen(A).values[0]), 6)
    -3.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "EigenResult",
    "MatrixOperator",
    "as_operator",
    "bottom_eigen",
    "lanczos_eigsh",
    "top_eigen",
]


@dataclass
class EigenResult:
    """Ritz pairs from :func:`lanczos_eigsh`.

    Attributes:
        values: ``(k,)`` eigenvalues, largest first (``"LA"``) or most negative first (``"SA"``).
        vectors: ``(n, k)`` orthonormal eigenvectors (columns), on the operator's device.
        residuals: ``(k,)`` norms :math:`\\lVert H u - \\theta u \\rVert`.
        hvps: operator products used.
        iterations: Krylov dimension reached.
        converged: whether every residual met the tolerance.
    """

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    hvps: int
    iterations: int
    converged: bool


class MatrixOperator:
    """A dense symmetric matrix seen as an operator (tests, small problems)."""

    def __init__(self, matrix: torch.Tensor):
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"need a square matrix, got shape {tuple(matrix.shape)}")
        self.matrix, self.shape = matrix, tuple(matrix.shape)
        self.dtype, self.device, self.hvps = matrix.dtype, matrix.device, 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.hvps += 1
        return self.matrix @ v

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        self.hvps += V.shape[1]
        return self.matrix @ V

    def __matmul__(self, v):
        return self.matvec(v) if v.dim() == 1 else self.matmat(v)


def as_operator(op):
    """Operators pass through; a square tensor becomes a :class:`MatrixOperator`."""
    return MatrixOperator(op) if isinstance(op, torch.Tensor) else op


def _check_k(k, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k={k!r} is not allowed; the operator has {n} dimensions, so use an "
                         f"integer in [1, {n}]")
    return int(k)


def _start_vector(init, n, dtype, device, gen, mix: float) -> torch.Tensor:
    noise = torch.randn(n, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    if init is None:
        return noise / noise.norm()
    init = torch.as_tensor(init).to(device=device, dtype=dtype)
    if init.shape[0] != n or init.dim() > 2 or not bool(torch.isfinite(init).all()):
        raise ValueError(f"init must hold finite vectors of length {n}, got shape "
                         f"{tuple(init.shape)}")
    init = init.reshape(n, -1)
    cols = init / init.norm(dim=0).clamp_min(torch.finfo(dtype).tiny)
    v = cols.sum(dim=1)
    v = v / v.norm().clamp_min(torch.finfo(dtype).tiny)
    v = v + mix * noise / noise.norm()
    return v / v.norm()


def _orthogonalise(w: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """Remove from ``w`` its components along the rows of ``Q`` (orthonormal)."""
    for _ in range(2):  # "twice is enough" (Kahan-Parlett)
        w = w - Q.T @ (Q @ w)
    return w


def lanczos_eigsh(op, k: int = 1, *, which: str = "LA", tol: float = 1e-6,
                  max_iter: int | None = None, init: torch.Tensor | None = None,
                  seed: int = 0, mix: float = 0.0) -> EigenResult:
    """The ``k`` largest (``"LA"``) or smallest (``"SA"``) eigenpairs of a symmetric operator.

    Args:
        op: anything with ``shape``, ``dtype``, ``device`` and ``matvec`` (e.g. a
            :class:`~eoslab.curvature.hessian.HessianOperator`) or a dense symmetric tensor.
        k: number of eigenpairs.
        which: ``"LA"`` largest algebraic (sharpness) or ``"SA"`` most negative.
        tol: relative residual :math:`\\lVert Hu-\\theta u\\rVert /\\max|\\theta|`, a bound on
            the relative eigenvalue error.
        max_iter: Krylov dimension cap (default ``min(n, max(100, 10 k))``).
        init: warm start, ``(n,)`` or ``(n, j)`` previous eigenvectors.
        seed: seed of the random start (a CPU generator, same result on every device).
        mix: weight of the random part added to a warm start.

    Raises:
        ValueError: ``k`` outside ``[1, n]``, an unknown ``which``, a bad ``tol``/``init``.
    """
    op = as_operator(op)
    n = int(op.shape[0])
    k = _check_k(k, n)
    if which not in ("LA", "SA"):
        raise ValueError(f"which={which!r} is not allowed; use 'LA' (largest) or 'SA' (smallest)")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol={tol!r} is not allowed; use a number > 0")
    m_max = min(n, max(100, 10 * k)) if max_iter is None else max(k, min(int(max_iter), n))
    gen = torch.Generator().manual_seed(seed)
    dtype, device = op.dtype, op.device
    Q = torch.zeros(m_max, n, dtype=dtype, device=device)  # basis as rows: contiguous
    q = _start_vector(init, n, dtype, device, gen, mix)
    alphas, betas = [], []
    hvps0 = getattr(op, "hvps", 0)
    eps = float(torch.finfo(dtype).eps)
    converged, theta, S, sel, res = False, None, None, None, None
    for j in range(m_max):
        Q[j] = q
        w = op.matvec(q)
        alpha = float(q @ w)
        w = _orthogonalise(w, Q[:j + 1])
        beta = float(w.norm())
        alphas.append(alpha)
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        theta, S = np.linalg.eigh(T)
        scale = max(float(np.abs(theta).max()), eps)
        sel = np.arange(j, j - min(k, j + 1), -1) if which == "LA" else np.arange(min(k, j + 1))
        res = beta * np.abs(S[-1, sel])
        breakdown = beta <= 100 * eps * scale
        if j + 1 >= k and np.all(res <= tol * scale) and (not breakdown or j + 1 == n):
            converged = True
            break
        if j + 1 == m_max:
            break
        if breakdown:  # invariant subspace (e.g. a repeated eigenvalue): restart outside it
            w = _orthogonalise(torch.randn(n, generator=gen, dtype=torch.float64)
                               .to(device=device, dtype=dtype), Q[:j + 1])
            beta_next, w = 0.0, w / w.norm()
        else:
            beta_next, w = beta, w / beta
        betas.append(beta_next)
        q = w
    m = len(alphas)
    vecs = Q[:m].T @ torch.as_tensor(S[:, sel], dtype=dtype, device=device)
    if not converged and m == n:
        converged = True  # full basis: the Ritz pairs are exact
    return EigenResult(values=torch.as_tensor(theta[sel], dtype=torch.float64),
                       vectors=vecs, residuals=torch.as_tensor(res, dtype=torch.float64),
                       hvps=getattr(op, "hvps", 0) - hvps0, iterations=m, converged=converged)


def top_eigen(op, k: int = 1, **options) -> EigenResult:
    """The ``k`` largest eigenpairs (sharpness first); see :func:`lanczos_eigsh`."""
    return lanczos_eigsh(op, k, which="LA", **options)


def bottom_eigen(op, k: int = 1, **options) -> EigenResult:
    """The ``k`` most negative eigenpairs; see :func:`lanczos_eigsh`."""
    return lanczos_eigsh(op, k, which="SA", **options)
