"""Label-noise SGD and the flat minimiser it drifts to.

Damian, Ma, Lee, "Label Noise SGD Provably Prefers Flat Global Minimizers", NeurIPS 2021
(arXiv 2106.06530).  Each step draws fresh noise :math:`\\xi_i \\sim \\mathcal N(0,\\sigma^2)`
for the targets of its batch and takes an SGD step on

.. math::

    \\hat L_t(\\theta) = \\frac1B \\sum_{i \\in B_t} \\tfrac12
        \\lVert f_\\theta(x_i) - y_i - \\xi_{t,i} \\rVert^2 .

Near the zero-loss manifold :math:`\\mathcal M = \\{L = 0\\}` the noise kicks the iterate
off :math:`\\mathcal M` along the gradients of the outputs; the kicks average to zero to
first order, but through the third derivative of the loss they leave a drift *along*
:math:`\\mathcal M` that is gradient descent on an implicit regulariser, to leading order
:math:`\\lambda R` with :math:`R \\propto \\operatorname{tr}\\nabla^2 L` and
:math:`\\lambda \\propto \\eta\\sigma^2/B`.  So label-noise SGD ends at the minimiser of
:math:`\\operatorname{tr}\\nabla^2 L` on :math:`\\mathcal M` (the paper's regulariser for a
finite step size is a :math:`\\operatorname{tr}\\log`-type function of the Hessian that
penalises its large eigenvalues more than linearly; its first-order term is this trace).

The exact test bed is the product :math:`f(\\theta) = \\prod_{j=1}^k \\theta_j` fitted to one
target :math:`y`, with :math:`L = \\tfrac12 (f - y)^2` (``k = 2``: :math:`f = uv`).  Each
:math:`\\theta_j` enters :math:`f` linearly, so :math:`\\partial_j^2 f = 0` and

.. math::

    \\operatorname{tr} \\nabla^2 L(\\theta) = \\lVert \\nabla f(\\theta) \\rVert^2
        = \\sum_j \\prod_{i \\ne j} \\theta_i^2 \\quad \\text{exactly},

which on :math:`\\mathcal M` is minimised (AM-GM) where all :math:`|\\theta_j|` equal
:math:`|y|^{1/k}`, with value :math:`k |y|^{2 - 2/k}`.  For ``k = 2`` the imbalance
:math:`D = u^2 - v^2` obeys :math:`D_{t+1} = (1 - \\eta^2 r_t^2) D_t` with :math:`r_t` the
step's (noisy) residual: GD without noise keeps :math:`D` almost fixed near
:math:`\\mathcal M`, label noise drives it to 0, i.e. to :math:`|u| = |v|`.

:class:`LabelNoiseSGD` runs in :func:`eoslab.core.train.fit` (it wraps any ``torch.optim``
optimiser); :func:`product_label_noise` runs many replicas of the product model at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from eoslab.optimizers.label_noise import LabelNoiseSGD, _check_sigma

__all__ = ["LabelNoiseSGD", "ProductTrajectory", "TraceProbe", "flat_minimiser", "min_trace",
           "product_grad", "product_label_noise", "product_trace"]


# ------------------------------------------------------------------ the product model
def product_grad(theta: torch.Tensor) -> torch.Tensor:
    """:math:`\\partial_j f = \\prod_{i\\ne j}\\theta_i` along the last axis (exact with zeros).

    >>> product_grad(torch.tensor([2.0, 3.0, 0.0])).tolist()
    [0.0, 0.0, 6.0]
    """
    ones = torch.ones_like(theta[..., :1])
    before = torch.cumprod(torch.cat([ones, theta[..., :-1]], -1), -1)
    after = torch.flip(torch.cumprod(torch.cat([ones, torch.flip(theta[..., 1:], [-1])], -1),
                                     -1), [-1])
    return before * after


def _np_product_grad(th: np.ndarray) -> np.ndarray:
    ones = np.ones_like(th[:, :1])
    before = np.cumprod(np.concatenate([ones, th[:, :-1]], 1), 1)
    after = np.cumprod(np.concatenate([ones, th[:, :0:-1]], 1), 1)[:, ::-1]
    return before * after


def product_trace(theta: torch.Tensor) -> torch.Tensor:
    """:math:`\\operatorname{tr}\\nabla^2 L = \\lVert\\nabla f\\rVert^2` for the product model.

    Exact at every :math:`\\theta` (not only on the manifold): the residual term
    :math:`(f - y)\\operatorname{tr}\\nabla^2 f` vanishes because :math:`\\nabla^2 f` has a zero
    diagonal.

    >>> float(product_trace(torch.tensor([2.0, 0.5])))   # u^2 + v^2
    4.25
    """
    return product_grad(theta).pow(2).sum(-1)


def _check_target_depth(target, depth) -> tuple[float, int]:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth={depth!r} is not allowed; use an integer >= 1")
    if not (isinstance(target, (int, float)) and math.isfinite(target)):
        raise ValueError(f"target={target!r} is not allowed; use a finite number")
    return float(target), depth


def flat_minimiser(target: float, depth: int) -> float:
    """:math:`|y|^{1/k}`: every factor's magnitude at the flattest zero-loss point.

    >>> flat_minimiser(4.0, 2)
    2.0
    """
    target, depth = _check_target_depth(target, depth)
    return abs(target) ** (1.0 / depth)


def min_trace(target: float, depth: int) -> float:
    """:math:`\\min_{\\mathcal M}\\operatorname{tr}\\nabla^2 L = k|y|^{2-2/k}`.

    >>> min_trace(1.0, 2), round(min_trace(8.0, 3), 9)   # 3 * 8**(4/3)
    (2.0, 48.0)
    """
    target, depth = _check_target_depth(target, depth)
    return depth * abs(target) ** (2.0 - 2.0 / depth)


@dataclass
class ProductTrajectory:
    """Recorded label-noise SGD on the product model, replicas stacked.

    Attributes:
        steps: ``(T,)`` recorded steps.
        theta: ``(T, R, k)`` parameters of the ``R`` replicas.
        loss: ``(T, R)`` clean loss :math:`\\tfrac12(f - y)^2`.
        trace: ``(T, R)`` :math:`\\operatorname{tr}\\nabla^2 L`.
        diverged_at: ``(R,)`` first step a replica blew up, ``-1`` if never.
        residuals: ``(steps, R)`` the noisy residuals :math:`r_t` used by each step (only
            with ``keep_residuals=True``).
    """

    steps: torch.Tensor
    theta: torch.Tensor
    loss: torch.Tensor
    trace: torch.Tensor
    diverged_at: torch.Tensor
    residuals: torch.Tensor | None = None


def product_label_noise(theta0, target: float, lr: float, sigma: float, steps: int, *,
                        seed: int = 0, record_every: int = 1, blowup: float = 1e6,
                        keep_residuals: bool = False) -> ProductTrajectory:
    """Label-noise GD on :math:`L = \\tfrac12(\\prod_j\\theta_j - y)^2` for stacked replicas.

    Step: :math:`\\theta \\leftarrow \\theta
    - \\eta\\,(f(\\theta) - y - \\sigma z_t)\\nabla f(\\theta)`
    with :math:`z_t \\sim \\mathcal N(0,1)` fresh per replica and step.  A replica whose
    parameters leave :math:`|\\theta_j| <` ``blowup`` or turn non-finite is frozen at NaN
    and its step is kept in ``diverged_at``.

    Args:
        theta0: ``(R, k)`` or ``(k,)`` starting points (computed in float64, returned
            in their dtype).
        target: the target :math:`y`.
        lr: step size :math:`\\eta > 0`.
        sigma: noise std :math:`\\sigma \\ge 0`.
        steps: number of steps.
        seed: seed of the noise.
        record_every: recording cadence (step 0 and the last step are always recorded).
        blowup: the magnitude past which a replica counts as diverged.
        keep_residuals: also return the noisy residual of every step.
    """
    from eoslab.core.optim import check_lr

    lr, sigma = check_lr(lr), _check_sigma(sigma)
    target, _ = _check_target_depth(target, 1)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is not allowed; use an integer >= 1")
    if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
        raise ValueError(f"record_every={record_every!r} is not allowed; use an integer >= 1")
    theta = torch.as_tensor(theta0).clone()
    if not theta.is_floating_point():
        theta = theta.double()
    if theta.dim() == 1:
        theta = theta.unsqueeze(0)
    if theta.dim() != 2 or theta.shape[1] < 1:
        raise ValueError(f"theta0 has shape {tuple(theta.shape)}; use (k,) or (R, k)")
    # tiny arrays: a numpy loop costs a few microseconds a step where torch ops cost tens
    dtype = theta.dtype
    gen = torch.Generator().manual_seed(int(seed))
    R = theta.shape[0]
    noise = (sigma * torch.randn(steps, R, generator=gen, dtype=torch.float64)).numpy()
    th = theta.double().numpy().copy()
    diverged = np.full(R, -1, dtype=np.int64)
    rec_steps, thetas = [0], [th.copy()]
    kept = np.empty((steps, R)) if keep_residuals else None
    with np.errstate(all="ignore"):
        for t in range(steps):
            grad_f = _np_product_grad(th)
            r = th.prod(-1) - target - noise[t]
            if kept is not None:
                kept[t] = r
            th = th - lr * r[:, None] * grad_f
            bad = (~np.isfinite(th).all(-1) | (np.abs(th) > blowup).any(-1)) & (diverged < 0)
            if bad.any():
                diverged[bad] = t + 1
                th[diverged >= 0] = np.nan
            if (t + 1) % record_every == 0 or t + 1 == steps:
                rec_steps.append(t + 1)
                thetas.append(th.copy())
    theta_all = torch.from_numpy(np.stack(thetas)).to(dtype)
    diverged = torch.from_numpy(diverged)
    kept = torch.from_numpy(kept).to(dtype) if kept is not None else None
    return ProductTrajectory(torch.tensor(rec_steps), theta_all,
                             0.5 * (theta_all.prod(-1) - target).pow(2),
                             product_trace(theta_all), diverged, kept)


# ------------------------------------------------------------------ the trace along the run
class TraceProbe:
    """:math:`\\operatorname{tr}\\nabla^2 L` of the full training loss during ``fit``.

    Hutch++ (or Hutchinson) on the objective of :func:`eoslab.core.train.fit`
    (:mod:`eoslab.curvature.trace`), with the *same* probe vectors at every call (fixed
    ``seed``), so the estimates along one run share their sampling error and the trend over
    steps is much cleaner than each value.

    Args:
        every: run at steps divisible by this.
        m: Hessian-vector products per estimate.
        method: ``"hutchpp"`` (default) or ``"hutchinson"``.
        seed: seed of the probe vectors.

    The row gets ``trace`` and ``trace_err`` (the estimate's standard error).
    """

    def __init__(self, every: int, m: int = 30, *, method: str = "hutchpp", seed: int = 0):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} is not allowed; use an integer >= 1")
        if method not in ("hutchpp", "hutchinson"):
            raise ValueError(f"method={method!r} is not allowed; use 'hutchpp' or 'hutchinson'")
        self.every, self.m, self.method, self.seed = every, m, method, seed

    def __call__(self, ctx) -> dict:
        from eoslab.curvature.hessian import HessianOperator
        from eoslab.curvature.trace import hutchinson, hutchpp

        op = HessianOperator(ctx.objective)
        est = (hutchpp if self.method == "hutchpp" else hutchinson)(op, self.m, seed=self.seed)
        return {"trace": est.estimate, "trace_err": est.std_error}
