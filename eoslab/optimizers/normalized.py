"""Normalised gradient descent, and the effective step size of GD on a transformed loss.

Arora, Li, Panigrahi, "Understanding Gradient Descent on Edge of Stability in Deep
Learning", ICML 2022 (arXiv 2205.09745), study two updates that *must* reach the edge of
stability near a manifold of minimisers, because their effective step size grows as the
gradient shrinks:

* normalised GD (NGD), with the gradient norm taken over *all* parameters together,

  .. math::

      \\theta_{t+1} = \\theta_t
      - \\eta\\, \\frac{\\nabla L(\\theta_t)}{\\lVert \\nabla L(\\theta_t)\\rVert},

  which is GD with the effective step size
  :math:`\\eta_{\\mathrm{eff}} = \\eta/\\lVert\\nabla L\\rVert`;
* plain GD on :math:`\\sqrt L` (the loss ``sqrt-mse``), since
  :math:`\\nabla\\sqrt L = \\nabla L / (2\\sqrt L)`: GD on :math:`L` with
  :math:`\\eta_{\\mathrm{eff}} = \\eta / (2\\sqrt{L})`.

Near the manifold along the top eigenvector :math:`u` of :math:`\\nabla^2 L` with
eigenvalue :math:`S`, NGD moves by :math:`\\pm\\eta` whatever :math:`S` is, so it settles
into a two-cycle with :math:`\\eta_{\\mathrm{eff}} S = 2`: the edge of stability *measured
in the effective step size* (:func:`effective_sharpness` returns
:math:`\\eta_{\\mathrm{eff}} S / 2`, which is 1 at the edge).  The paper proves that in this
regime both updates drift along the manifold in the direction that *reduces* :math:`S`
(a sharpness-reduction flow), on a slower time scale.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    >>> opt = NormalizedGD([w], lr=0.5)
    >>> w.grad = torch.tensor([3.0, 4.0])
    >>> _ = opt.step()
    >>> w.detach().tolist()  # moved by 0.5 along -g/|g| = -(0.6, 0.8)
    [2.700000047683716, 3.5999999046325684]
"""

from __future__ import annotations

import math

import torch

from eoslab.core.optim import check_lr

__all__ = ["EffectiveSharpnessProbe", "NormalizedGD", "effective_lr", "effective_sharpness"]


class NormalizedGD(torch.optim.Optimizer):
    """:math:`\\theta \\leftarrow \\theta - \\eta\\, g / \\lVert g \\rVert` with one global norm.

    A plain ``torch.optim.Optimizer`` (no closure needed), so it runs in
    :func:`eoslab.core.train.fit` like SGD.  The norm is over every parameter of every group
    that has a gradient; each group uses its own ``lr``.

    Args:
        params: parameters or parameter groups.
        lr: :math:`\\eta`, the length of every step.
        eps: added to the norm, so a zero gradient gives a zero step.

    Attributes:
        last_grad_norm: :math:`\\lVert g\\rVert` of the last step (``None`` before one).
    """

    def __init__(self, params, lr: float = 0.1, eps: float = 1e-12):
        lr = check_lr(lr)
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps={eps!r} is not allowed; use a finite number >= 0")
        super().__init__(params, {"lr": lr, "eps": float(eps)})
        self.last_grad_norm: float | None = None

    @torch.no_grad()
    def step(self, closure=None):
        """One normalised step; returns ``closure()`` if one is given (evaluated first)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        if not grads:
            return loss
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        self.last_grad_norm = float(norm)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                scale = -group["lr"] / (norm + group["eps"])
                torch._foreach_add_(params, [p.grad * scale for p in params])
        return loss


def effective_lr(lr: float, *, grad_norm: float | None = None, loss: float | None = None,
                 method: str = "ngd") -> float:
    """The step size of plain GD on :math:`L` that makes the same move.

    ``method="ngd"``: :math:`\\eta/\\lVert\\nabla L\\rVert` (needs ``grad_norm``);
    ``"sqrt"``: GD on :math:`\\sqrt L`, :math:`\\eta/(2\\sqrt L)` (needs ``loss``, the value
    of :math:`L`, not of :math:`\\sqrt L`); ``"gd"``: :math:`\\eta`.

    >>> effective_lr(0.1, grad_norm=0.5), effective_lr(0.1, loss=0.25, method="sqrt")
    (0.2, 0.1)
    """
    lr = check_lr(lr)
    if method == "gd":
        return lr
    if method == "ngd":
        if grad_norm is None or not grad_norm > 0:
            raise ValueError(f"grad_norm={grad_norm!r} is not allowed for method 'ngd'; "
                             "give the gradient norm, a number > 0")
        return lr / grad_norm
    if method == "sqrt":
        if loss is None or not loss > 0:
            raise ValueError(f"loss={loss!r} is not allowed for method 'sqrt'; give L, a "
                             "number > 0")
        return lr / (2.0 * math.sqrt(loss))
    raise ValueError(f"method={method!r} is not allowed; use 'ngd', 'sqrt' or 'gd'")


def effective_sharpness(sharpness: float, lr: float, **options) -> float:
    """:math:`\\eta_{\\mathrm{eff}} S / 2`: 1 is the edge of stability of the effective GD.

    >>> effective_sharpness(40.0, 0.1, grad_norm=2.0)
    1.0
    """
    return effective_lr(lr, **options) * sharpness / 2.0


class EffectiveSharpnessProbe:
    """Sharpness of the *base* loss :math:`L` and the effective edge ratio, during ``fit``.

    Works for NGD on :math:`L` (``method="ngd"``) and GD on :math:`\\sqrt L`
    (``method="sqrt"``, the run's loss ``sqrt-mse``): the Hessian is always that of
    :math:`L` (``base_loss``), computed by :class:`~eoslab.curvature.sharpness.SharpnessProbe`.
    Keys: ``sharpness``, ``base_loss`` (:math:`L`), ``base_grad_norm``
    (:math:`\\lVert\\nabla L\\rVert`), ``effective_lr`` and ``edge_ratio``
    (:math:`\\eta_{\\mathrm{eff}} S / 2`).
    """

    def __init__(self, every: int, method: str = "ngd", base_loss: str = "mse",
                 tol: float = 1e-3):
        from eoslab.curvature.sharpness import SharpnessProbe

        if method not in ("ngd", "sqrt", "gd"):
            raise ValueError(f"method={method!r} is not allowed; use 'ngd', 'sqrt' or 'gd'")
        self.every, self.method, self.base_loss = every, method, base_loss
        self.sharpness = SharpnessProbe(every, tol=tol)

    def __call__(self, ctx) -> dict:
        import dataclasses

        from eoslab.curvature.hessian import HessianOperator

        objective = dataclasses.replace(ctx.objective, loss=self.base_loss)
        row = self.sharpness(dataclasses.replace(ctx, objective=objective))
        op = HessianOperator(objective)
        loss = float(objective(op.params))
        norm = float(op.gradient().norm())
        row.update(base_loss=loss, base_grad_norm=norm)
        try:
            eff = effective_lr(ctx.lr, grad_norm=norm, loss=loss, method=self.method)
        except ValueError:  # exactly at a minimum: no effective step size
            eff = float("nan")
        row.update(effective_lr=eff, edge_ratio=eff * row["sharpness"] / 2.0)
        return row
