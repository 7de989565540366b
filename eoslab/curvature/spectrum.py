"""The Hessian's spectral density by stochastic Lanczos quadrature (SLQ).

For a unit start vector :math:`v`, ``m`` Lanczos steps give a tridiagonal :math:`T_m`
with eigenpairs :math:`(\\theta_j, s_j)`; the Gauss quadrature nodes :math:`\\theta_j` and
weights :math:`w_j = (e_1^\\top s_j)^2` (which sum to 1) satisfy

.. math::

    v^\\top f(H)\\, v = \\sum_{j=1}^m w_j f(\\theta_j) \\quad \\text{for every polynomial }
    f \\text{ of degree} \\le 2m - 1,

so averaging over random :math:`v` estimates :math:`\\frac1n \\operatorname{tr} f(H) = \\int f\\,
d\\mu`, the spectral measure :math:`\\mu = \\frac1n \\sum_i \\delta_{\\lambda_i}`
(Golub & Meurant 2009; Ghorbani, Krishnan, Xiao, ICML 2019, arXiv 1901.10159).  The
density shown is the Gaussian-broadened average

.. math::

    \\phi_\\sigma(x) = \\frac{1}{R} \\sum_{r=1}^{R} \\sum_j w^{(r)}_j\\,
    \\mathcal N\\big(x;\\, \\theta^{(r)}_j, \\sigma^2\\big),

which integrates to 1.  The ``R`` runs advance in lockstep: each Lanczos step is one
batched (``vmap``) product over the runs.

Example:
    >>> import torch
    >>> H = torch.diag(torch.tensor([4.0, 1.0, 1.0, -2.0], dtype=torch.float64))
    >>> res = slq(H, n_iter=4, n_runs=2)
    >>> [round(w, 12) for w in res.weights.sum(dim=1).tolist()]
    [1.0, 1.0]
    >>> sorted(set(round(x, 6) for x in res.nodes[0].tolist()))
    [-2.0, 1.0, 4.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from eoslab.curvature.eigen import as_operator

__all__ = ["SLQResult", "gaussian_density", "slq"]


@dataclass
class SLQResult:
    """Gauss quadrature of each run.

    Attributes:
        nodes: ``(R, m)`` Ritz values per run (float64, CPU).
        weights: ``(R, m)`` their weights; each row sums to 1 (runs that hit an invariant
            subspace early pad with zero weights).
        hvps: operator products used.
    """

    nodes: torch.Tensor
    weights: torch.Tensor
    hvps: int

    def density(self, grid: torch.Tensor | None = None, sigma: float | None = None,
                n_points: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """``(grid, phi)``: the broadened density; see :func:`gaussian_density`."""
        return gaussian_density(self.nodes, self.weights, grid, sigma, n_points)

    def integrate(self, f) -> float:
        """Stochastic Lanczos quadrature estimate of :math:`\\frac1n \\operatorname{tr} f(H)`.

        The mean over runs of the quadrature sums,
        :math:`\\frac1R \\sum_r \\sum_j w^{(r)}_j f(\\theta^{(r)}_j)`.
        """
        return float((self.weights * f(self.nodes)).sum(dim=1).mean())


def gaussian_density(nodes: torch.Tensor, weights: torch.Tensor, grid=None,
                     sigma: float | None = None, n_points: int = 512):
    """The run-averaged Gaussian-broadened density of quadrature ``(nodes, weights)``.

    ``sigma`` defaults to 1/100 of the nodes' span (at least 1e-3); the default grid spans
    the nodes plus 5 ``sigma`` on each side, so the density integrates to 1 on it.
    """
    nodes, weights = nodes.double(), weights.double()
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        sigma = max((hi - lo) / 100, 1e-3)
    if not sigma > 0:
        raise ValueError(f"sigma={sigma!r} is not allowed; use a number > 0")
    if grid is None:
        grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, n_points, dtype=torch.float64)
    grid = torch.as_tensor(grid, dtype=torch.float64)
    z = (grid[:, None, None] - nodes[None]) / sigma
    kernel = torch.exp(-0.5 * z * z) / (sigma * np.sqrt(2 * np.pi))
    phi = (kernel * weights[None]).sum(dim=2).mean(dim=1)
    return grid, phi


def _check_count(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not allowed; use an integer >= 1")
    return value


def slq(op, n_iter: int = 30, n_runs: int = 4, *, seed: int = 0,
        vectors: torch.Tensor | None = None) -> SLQResult:
    """Stochastic Lanczos quadrature of the Hessian's spectrum.

    Args:
        op: a :class:`~eoslab.curvature.hessian.HessianOperator` (or any operator with ``matmat``),
            or a dense symmetric tensor.
        n_iter: Lanczos steps per run (capped at the dimension).
        n_runs: independent Gaussian start vectors.
        seed: seed of the CPU generator drawing them.
        vectors: explicit ``(n, R)`` start vectors instead (normalised here).
    """
    op = as_operator(op)
    n = op.shape[0]
    m = min(_check_count("n_iter", n_iter), n)
    if vectors is None:
        R = _check_count("n_runs", n_runs)
        gen = torch.Generator().manual_seed(seed)
        vectors = torch.randn(n, R, generator=gen, dtype=torch.float64)
    vectors = torch.as_tensor(vectors).to(device=op.device, dtype=op.dtype).reshape(n, -1)
    R = vectors.shape[1]
    hvps0 = getattr(op, "hvps", 0)
    Q = torch.zeros(R, m, n, dtype=op.dtype, device=op.device)
    q = (vectors / vectors.norm(dim=0)).T
    alphas = torch.zeros(R, m, dtype=torch.float64)
    betas = torch.zeros(R, m, dtype=torch.float64)
    length = torch.full((R,), m)
    eps = torch.finfo(op.dtype).eps
    for j in range(m):
        Q[:, j] = q
        w = op.matmat(q.T).T
        alphas[:, j] = (q * w).sum(1).double().cpu()
        for _ in range(2):  # full reorthogonalisation, per run
            w = w - torch.einsum("rjn,rj->rn", Q[:, :j + 1],
                                 torch.einsum("rjn,rn->rj", Q[:, :j + 1], w))
        beta = w.norm(dim=1)
        betas[:, j] = beta.double().cpu()
        scale = alphas[:, :j + 1].abs().max(dim=1).values.clamp_min(1.0)
        done = (betas[:, j] <= 100 * eps * scale) & (length == m)
        length[done] = j + 1
        active = (length == m).to(device=op.device, dtype=op.dtype)
        q = w / beta.clamp_min(torch.finfo(op.dtype).tiny)[:, None] * active[:, None]
    nodes = torch.zeros(R, m, dtype=torch.float64)
    weights = torch.zeros(R, m, dtype=torch.float64)
    for r in range(R):
        L = int(length[r])
        T = torch.diag(alphas[r, :L]) + torch.diag(betas[r, :L - 1], 1) + torch.diag(
            betas[r, :L - 1], -1)
        theta, S = torch.linalg.eigh(T)
        nodes[r, :L], weights[r, :L] = theta, S[0] ** 2
        nodes[r, L:] = theta[-1]
    return SLQResult(nodes, weights, getattr(op, "hvps", 0) - hvps0)
