"""SGD noise and the linear stability of SGD at a global minimum.

Per-sample gradients :math:`g_i = \\nabla \\ell_i(\\theta)` come from ``torch.func``
(``vmap`` of ``grad``), the minibatch noise covariance of a batch of size :math:`B` drawn
without replacement from :math:`n` examples is

.. math::

    \\Sigma_B = c_B\\, \\Sigma_1, \\quad
    \\Sigma_1 = \\frac1n \\sum_i g_i g_i^\\top - \\bar g\\bar g^\\top,
    \\quad c_B = \\frac{n - B}{B(n-1)} \\;(\\text{with replacement: } c_B = 1/B),

and its *alignment* with the Hessian is :math:`\\mu = \\mathrm{Tr}(\\Sigma_1 H) /
(2 L\\, \\lVert H\\rVert_F^2)` (Wu, Wang, Su, "The alignment property of SGD noise",
NeurIPS 2022): near an interpolating minimum of the square loss the noise lives where
the curvature is.

**Linear stability** (Wu, Ma, E, "How SGD Selects the Global Minima in
Over-parameterized Learning", NeurIPS 2018).  At a global minimum :math:`\\theta^*` of
:math:`L = \\frac1n\\sum_i \\tfrac12 \\lVert f_i(\\theta) - y_i\\rVert^2` every per-sample
Hessian is :math:`H_i = J_i^\\top J_i` (:math:`J_i` the output Jacobian of example
:math:`i`), and linearised SGD is :math:`\\delta_{t+1} = (I - \\eta H_\\xi)\\delta_t`,
:math:`H_\\xi = \\frac1B \\sum_{i\\in\\xi} H_i`.  The residuals :math:`e = J\\delta` follow
:math:`e_{t+1} = (I - \\tfrac{\\eta}{B} K D_\\xi) e_t` with the Gram matrix :math:`K = JJ^\\top`
and :math:`D_\\xi` selecting the batch, so their second moment :math:`N_t = E[e_te_t^\\top]`
(and the expected loss :math:`\\mathrm{Tr}(N_t)/2n`) evolves *exactly* by

.. math::

    N_{t+1} = \\mathcal T(N_t) = N_t - \\frac{\\eta}{n}(KN_t + N_tK)
              + \\frac{\\eta^2}{B^2} K\\,(P \\circ N_t)\\,K,

:math:`P_{ab}` the probability that the examples of rows :math:`a, b` are both in the batch.
SGD can stay at :math:`\\theta^*` (mean-square stability) iff the spectral radius
:math:`\\rho(\\mathcal T) \\le 1`; :func:`stability_report` computes it and the classical
necessary conditions next to it, each as a ratio that must be :math:`\\le 1`:

* GD: :math:`\\eta\\lambda_{\\max}(H)/2` (the only condition when :math:`B = n`);
* non-uniformity (Wu, Ma, E 2018): :math:`\\eta\\, s\\sqrt{c_B}` with
  :math:`s^2 = \\lambda_{\\max}(\\frac1n\\sum_i H_i^2 - H^2)`; necessary in one dimension,
  where :math:`\\rho(\\mathcal T) = (1-\\eta a)^2 + \\eta^2 c_B s^2`; in several dimensions
  a guide only (it can exceed 1 at a stable minimum);
* trace (Wu, Su, "The Implicit Regularization of Dynamical Stability in SGD", ICML 2023,
  arXiv 2305.17490): :math:`\\eta\\, c_B\\, \\mathrm{Tr}(H)/2`.  For scalar outputs with equal
  per-sample curvatures :math:`\\lVert J_i\\rVert^2` it is necessary: then
  :math:`\\mathcal T^*(I) \\succeq I + \\eta H(\\eta c_B \\mathrm{Tr} H - 2)`, so the
  second moment cannot shrink once it exceeds 1; for :math:`B = 1` it reads
  :math:`\\mathrm{Tr}(H) \\le 2/\\eta`, and it tightens as the batch shrinks, whereas GD
  only constrains :math:`\\lambda_{\\max}`.

The analysis assumes batches drawn independently at each step (``eoslab.core.train.fit``
reshuffles once per epoch instead, which differs only at second order).

Example (each step zeroes the sampled coordinate, so the mean square halves):
    >>> import torch
    >>> J = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], dtype=torch.float64)  # n=2, k=1, p=2
    >>> r = stability_report(J, lr=1.0, batch_size=1)
    >>> round(r["sharpness"], 6), round(r["trace"], 6), round(r["ms_rate"], 6)  # each step
    (0.5, 1.0, 0.5)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigs
from torch.func import functional_call, grad, jacrev, vmap

from eoslab.curvature.objective import Objective, Params

__all__ = ["batch_factor", "mean_square_operator", "noise_alignment", "noise_covariance",
           "pair_probabilities", "per_sample_gradients", "per_sample_jacobian",
           "stability_report"]


def _params(objective: Objective, params: Params | None) -> Params:
    return objective.params() if params is None else {
        n: params[n].detach() for n in objective.param_names}


def _one(objective: Objective, params: Params, x: torch.Tensor) -> torch.Tensor:
    was = objective.model.training
    objective.model.train(False)
    try:
        merged = {**objective._frozen, **params}
        return functional_call(objective.model, (merged, dict(objective.model.named_buffers())),
                               (x.unsqueeze(0),)).squeeze(0)
    finally:
        objective.model.train(was)


def per_sample_gradients(objective: Objective, params: Params | None = None) -> torch.Tensor:
    """``(n, p)``: row ``i`` is :math:`\\nabla_\\theta \\ell(f_\\theta(x_i), y_i)`.

    Flat, in ``objective.param_names`` order, by ``vmap`` of ``grad`` (no BatchNorm: one
    example per call).
    """
    params = _params(objective, params)
    loss = objective.loss

    def single(p, x, y):
        return loss.per_example_mean(_one(objective, p, x).unsqueeze(0), y.unsqueeze(0))

    grads = vmap(grad(single), in_dims=(None, 0, 0))(params, objective.x, objective.y)
    return torch.cat([grads[n].reshape(objective.x.shape[0], -1) for n in params], dim=1)


def per_sample_jacobian(objective: Objective, params: Params | None = None) -> torch.Tensor:
    """``(n, k, p)``: output Jacobians :math:`J_i = \\partial f_\\theta(x_i)/\\partial\\theta`."""
    params = _params(objective, params)

    def single(p, x):
        return _one(objective, p, x).reshape(-1)

    jac = vmap(jacrev(single), in_dims=(None, 0))(params, objective.x)
    n = objective.x.shape[0]
    return torch.cat([jac[name].reshape(n, jac[name].shape[1], -1) for name in params], dim=2)


def _check_batch(batch_size, n: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size={batch_size!r} is not allowed; use an integer in [1, {n}]")
    return batch_size


def batch_factor(n: int, batch_size: int, replace: bool = False) -> float:
    """:math:`c_B`, the variance of a batch mean relative to one sample's.

    >>> batch_factor(10, 1), batch_factor(10, 10), round(batch_factor(10, 5, replace=True), 3)
    (1.0, 0.0, 0.2)
    """
    b = _check_batch(batch_size, n)
    if replace:
        return 1.0 / b
    return (n - b) / (b * (n - 1)) if n > 1 else 0.0


def noise_covariance(grads: torch.Tensor, batch_size: int = 1, replace: bool = False
                     ) -> torch.Tensor:
    """The covariance of the minibatch gradient, from per-sample gradients ``(n, p)``.

    :math:`\\Sigma_B = c_B(\\frac1n\\sum_i g_ig_i^\\top - \\bar g\\bar g^\\top)`.
    """
    n = grads.shape[0]
    centred = grads - grads.mean(dim=0, keepdim=True)
    return batch_factor(n, batch_size, replace) * (centred.T @ centred) / n


def noise_alignment(grads: torch.Tensor, hessian: torch.Tensor, loss: float) -> float:
    """:math:`\\mu = \\mathrm{Tr}(\\Sigma_1 H)/(2L\\lVert H\\rVert_F^2)` (Wu, Wang, Su 2022)."""
    if not (math.isfinite(loss) and loss > 0):
        raise ValueError(f"loss={loss!r} is not allowed; the alignment needs a loss > 0")
    sigma = noise_covariance(grads, 1)
    return float(torch.trace(sigma @ hessian) / (2 * loss * torch.linalg.matrix_norm(hessian) ** 2))


def pair_probabilities(sample: np.ndarray, n: int, batch_size: int,
                       replace: bool = False) -> np.ndarray:
    """:math:`P_{ab} = E[m_{i(a)} m_{i(b)}]/1`, the batch multiplicities' second moment.

    Rows ``a, b`` belong to examples ``sample[a], sample[b]`` (0/1 without replacement).
    """
    b = _check_batch(batch_size, n)
    same = sample[:, None] == sample[None, :]
    if replace:
        off = b * (b - 1) / n ** 2
        return np.where(same, b / n + off, off)
    off = b * (b - 1) / (n * (n - 1)) if n > 1 else 0.0
    return np.where(same, b / n, off)


def mean_square_operator(jac: torch.Tensor, lr: float, batch_size: int, replace: bool = False):
    """``(apply, m)``: :math:`N \\mapsto \\mathcal T(N)` on ``m x m`` arrays, ``m = n k``."""
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} is not allowed; use a step size > 0")
    n, k, _ = jac.shape
    rows = jac.reshape(n * k, -1).detach().double().cpu().numpy()
    gram = rows @ rows.T
    prob = pair_probabilities(np.repeat(np.arange(n), k), n, batch_size, replace)
    b = float(batch_size)

    def apply(N: np.ndarray) -> np.ndarray:
        return (N - (lr / n) * (gram @ N + N @ gram)
                + (lr / b) ** 2 * gram @ (prob * N) @ gram)

    return apply, n * k


def _spectral_radius(apply, m: int) -> float:
    if m * m <= 64:  # tiny: dense (ARPACK needs k < dimension - 1)
        basis = np.eye(m * m)
        dense = np.stack([apply(basis[j].reshape(m, m)).ravel() for j in range(m * m)], axis=1)
        return float(np.abs(np.linalg.eigvals(dense)).max())
    op = LinearOperator((m * m, m * m), matvec=lambda v: apply(v.reshape(m, m)).ravel(),
                        dtype=np.float64)
    start = np.eye(m).ravel()
    return float(np.abs(eigs(op, k=1, which="LM", v0=start, tol=1e-8,
                             return_eigenvectors=False)).max())


def stability_report(jac: torch.Tensor, lr: float, batch_size: int,
                     replace: bool = False) -> dict:
    """Curvature of a minimum and SGD's stability there, from the Jacobians ``(n, k, p)``.

    Returns ``sharpness`` :math:`\\lambda_{\\max}(H)`, ``trace`` :math:`\\mathrm{Tr} H`,
    ``frobenius`` :math:`\\lVert H\\rVert_F`, ``nonuniformity`` :math:`s`, ``c_B``, the
    exact mean-square growth factor per step ``ms_rate`` :math:`\\rho(\\mathcal T)` and the
    ratios ``gd_ratio``, ``wme_ratio``, ``trace_ratio`` (each :math:`\\le 1` is necessary
    for SGD to stay; see the module docs).
    """
    n, k, _ = jac.shape
    c = batch_factor(n, batch_size, replace)
    rows = jac.reshape(n * k, -1).detach().double().cpu()
    gram = rows @ rows.T
    evals, evecs = torch.linalg.eigh(gram)
    sharpness = float(evals[-1]) / n
    # non-uniformity: Sigma_s = J^T A J with A = blockdiag(K_ii)/n - K/n^2
    block = torch.block_diag(*[gram[i * k:(i + 1) * k, i * k:(i + 1) * k] for i in range(n)])
    a = block / n - gram / n ** 2
    root = evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T
    s2 = float(torch.linalg.eigvalsh(root @ a @ root)[-1])
    apply, m = mean_square_operator(jac, lr, batch_size, replace)
    trace = float(torch.trace(gram)) / n
    s = math.sqrt(max(s2, 0.0))
    return {"lr": float(lr), "batch_size": batch_size, "n": n, "c_B": c,
            "sharpness": sharpness, "trace": trace,
            "frobenius": float(torch.linalg.matrix_norm(gram)) / n, "nonuniformity": s,
            "ms_rate": _spectral_radius(apply, m), "gd_ratio": lr * sharpness / 2,
            "wme_ratio": lr * s * math.sqrt(c), "trace_ratio": lr * c * trace / 2}
