"""Stochastic estimates of the Hessian trace: Hutchinson and Hutch++.

Hutchinson (1989): for random probes :math:`z` with :math:`\\mathbb E[z z^\\top] = I`,

.. math::

    \\operatorname{tr} H = \\mathbb E[z^\\top H z], \\qquad
    \\widehat{\\operatorname{tr}} = \\frac1m \\sum_{i=1}^m z_i^\\top H z_i,

with per-probe variance :math:`2(\\lVert H\\rVert_F^2 - \\sum_i H_{ii}^2)` for Rademacher
probes and :math:`2\\lVert H\\rVert_F^2` for Gaussian ones (so the estimate's variance is that
over :math:`m`).

Hutch++ (Meyer, Musco, Musco, Woodruff, SOSA 2021, arXiv 2010.09649) spends a third of
the :math:`m` products on a sketch :math:`Q = \\mathrm{orth}(H S)` of the dominant range,
takes its trace exactly and runs Hutchinson only on the deflated rest:

.. math::

    \\widehat{\\operatorname{tr}} = \\operatorname{tr}(Q^\\top H Q) + \\frac{3}{m}
    \\operatorname{tr}\\big(G^\\top (I - QQ^\\top) H (I - QQ^\\top) G\\big),

which is exact for a Hessian of rank at most :math:`m/3` and needs :math:`O(1/\\varepsilon)`
instead of :math:`O(1/\\varepsilon^2)` products for a relative error :math:`\\varepsilon` on
positive semi-definite matrices.

Example:
    >>> import torch
    >>> H = torch.diag(torch.tensor([3.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    >>> round(hutchpp(H, m=6).estimate, 10)   # rank 2 <= m/3: exact
    4.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from eoslab.curvature.eigen import as_operator

__all__ = ["TraceEstimate", "hutchinson", "hutchpp", "probes"]


@dataclass
class TraceEstimate:
    """A trace estimate.

    Attributes:
        estimate: the estimated :math:`\\operatorname{tr} H`.
        samples: Hutchinson's per-probe values :math:`z_i^\\top H z_i` (Hutch++: the
            per-probe values of the deflated part, shifted by the exact part).
        std_error: the sample standard deviation of ``samples`` over :math:`\\sqrt m`.
        hvps: operator products used.
    """

    estimate: float
    samples: torch.Tensor
    std_error: float
    hvps: int


def probes(n: int, m: int, dist: str, generator: torch.Generator, dtype, device) -> torch.Tensor:
    """``(n, m)`` random probes with identity covariance (``"rademacher"`` or ``"gaussian"``)."""
    if dist == "rademacher":
        z = torch.randint(0, 2, (n, m), generator=generator).double() * 2 - 1
    elif dist == "gaussian":
        z = torch.randn(n, m, generator=generator, dtype=torch.float64)
    else:
        raise ValueError(f"dist={dist!r} is not allowed; use 'rademacher' or 'gaussian'")
    return z.to(device=device, dtype=dtype)


def _check_m(m, minimum: int = 1) -> int:
    if isinstance(m, bool) or not isinstance(m, int) or m < minimum:
        raise ValueError(f"m={m!r} is not allowed; use an integer >= {minimum}")
    return m


def _apply(op, Z: torch.Tensor, batch: int) -> torch.Tensor:
    """``H Z`` in column batches of ``batch`` (memory of the vmapped products)."""
    return torch.cat([op.matmat(Z[:, i:i + batch]) for i in range(0, Z.shape[1], batch)], 1)


def _stats(samples: torch.Tensor) -> tuple[float, float]:
    mean = float(samples.mean())
    m = samples.numel()
    err = float(samples.std()) / math.sqrt(m) if m > 1 else float("nan")
    return mean, err


def hutchinson(op, m: int = 100, *, dist: str = "rademacher", seed: int = 0,
               batch: int = 32) -> TraceEstimate:
    """Hutchinson's estimate of :math:`\\operatorname{tr} H` from ``m`` probes.

    Args:
        op: a :class:`~eoslab.curvature.hessian.HessianOperator` (or any operator with
            ``matmat``), or a dense symmetric tensor.
        m: number of probes (= products).
        dist: ``"rademacher"`` (lower variance) or ``"gaussian"``.
        seed: seed of the CPU generator drawing the probes.
        batch: products per ``vmap`` call.
    """
    op = as_operator(op)
    m = _check_m(m)
    gen = torch.Generator().manual_seed(seed)
    Z = probes(op.shape[0], m, dist, gen, op.dtype, op.device)
    samples = (Z * _apply(op, Z, batch)).sum(0).double().cpu()
    estimate, err = _stats(samples)
    return TraceEstimate(estimate, samples, err, m)


def hutchpp(op, m: int = 99, *, dist: str = "rademacher", seed: int = 0,
            batch: int = 32) -> TraceEstimate:
    """Hutch++ estimate of :math:`\\operatorname{tr} H` from ``m`` products (``m >= 3``).

    A third of the products sketches the range (:math:`k = \\lfloor m/3 \\rfloor` columns,
    capped at the dimension), a third takes the exact trace on it, the rest probes the
    deflated remainder.
    """
    op = as_operator(op)
    m = _check_m(m, minimum=3)
    n = op.shape[0]
    gen = torch.Generator().manual_seed(seed)
    k = min(m // 3, n)
    rest = m - 2 * k
    S = probes(n, k, dist, gen, op.dtype, op.device)
    G = probes(n, rest, dist, gen, op.dtype, op.device)
    Q, _ = torch.linalg.qr(_apply(op, S, batch))
    exact = float(torch.trace(Q.T @ _apply(op, Q, batch)))
    G = G - Q @ (Q.T @ G)
    samples = (G * _apply(op, G, batch)).sum(0).double().cpu() + exact
    estimate, err = _stats(samples)
    return TraceEstimate(estimate, samples, err, 2 * k + rest)
