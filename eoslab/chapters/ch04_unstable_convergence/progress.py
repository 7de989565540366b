"""Unstable convergence: the relative progress ratio and the gradient's alignment with u_1.

Ahn, Zhang, Sra, "Understanding the Unstable Convergence of Gradient Descent", ICML 2022
(arXiv 2204.01050), point out that GD on neural nets keeps decreasing the loss although
:math:`\\eta\\,\\lambda_{\\max} > 2` (the classical descent lemma needs
:math:`\\eta\\lambda_{\\max} < 2`).  They measure each step's progress against the
first-order prediction with the *relative progress ratio*

.. math::

    \\mathrm{RP}(\\theta_t) = \\frac{L(\\theta_{t+1}) - L(\\theta_t)}{\\eta\\,
    \\lVert \\nabla L(\\theta_t)\\rVert^2}, \\qquad \\theta_{t+1} = \\theta_t - \\eta\\nabla
    L(\\theta_t),

which is :math:`-1` for an infinitesimal step and, on a quadratic, equals
:math:`-1 + \\tfrac{\\eta}{2}\\, g^\\top H g / g^\\top g`; it is negative (the step made
progress) iff the curvature along the gradient is below :math:`2/\\eta`.  In the unstable
regime they observe RP hovering near 0 with :math:`\\eta\\lambda_{\\max} > 2`, and the
gradient strongly aligned with the top eigenvector :math:`u_1` (``cos`` near 1 at the
spikes): GD then moves mostly along :math:`u_1` across the valley.

:class:`UnstableConvergenceProbe` records, at :math:`\\theta_t`: ``sharpness`` (through
:class:`~eoslab.curvature.sharpness.SharpnessProbe`), ``eta_sharpness`` :math:`=\\eta S`, ``rp``,
``alignment`` (:func:`~eoslab.curvature.sharpness_notions.gradient_alignment`) and
``grad_curvature`` :math:`\\eta\\, g^\\top H g / g^\\top g`
(:func:`~eoslab.curvature.sharpness_notions.directional_sharpness`, times :math:`\\eta`).
"""

from __future__ import annotations

import math

import torch

from eoslab.curvature.hessian import HessianOperator, flatten, unflatten
from eoslab.curvature.objective import Objective
from eoslab.curvature.sharpness import SharpnessProbe
from eoslab.curvature.sharpness_notions import directional_sharpness, gradient_alignment

__all__ = ["UnstableConvergenceProbe", "relative_progress"]

Params = dict[str, torch.Tensor]


@torch.no_grad()
def relative_progress(objective: Objective, params: Params, lr: float,
                      gradient: torch.Tensor | None = None) -> float:
    """:math:`(L(\\theta - \\eta g) - L(\\theta)) / (\\eta \\lVert g\\rVert^2)` for a GD step.

    ``gradient`` is the flat :math:`g` if already known.  Returns ``nan`` at a zero gradient.

    Raises:
        ValueError: ``lr`` not a finite positive number.
    """
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr)
                                    and lr > 0):
        raise ValueError(f"lr={lr!r} is not allowed; use a finite number > 0")
    params = {n: params[n].detach() for n in objective.param_names}
    if gradient is None:
        with torch.enable_grad():
            gradient = HessianOperator(objective, params).gradient()
    g2 = float(gradient @ gradient)
    if g2 == 0.0:
        return float("nan")
    after = unflatten(flatten(params) - lr * gradient, params)
    return (float(objective(after)) - float(objective(params))) / (lr * g2)


class UnstableConvergenceProbe:
    """Sharpness, :math:`\\eta S`, relative progress and alignment at every ``every`` steps.

    Args:
        every: run at steps divisible by this.
        tol: relative residual of the Lanczos solver (see :class:`SharpnessProbe`).
    """

    def __init__(self, every: int, tol: float = 1e-3):
        self.sharpness = SharpnessProbe(every, tol=tol)
        self.every = every

    def __call__(self, ctx) -> dict:
        row = self.sharpness(ctx)
        op = HessianOperator(self.sharpness.objective(ctx.objective))
        g = op.gradient()
        u = self.sharpness._warm["top"][:, 0]
        row["eta_sharpness"] = ctx.lr * row["sharpness"]
        row["rp"] = relative_progress(op.objective, op.params, ctx.lr, g)
        row["alignment"] = gradient_alignment(op, u)
        row["grad_curvature"] = (ctx.lr * directional_sharpness(op)
                                 if float(g @ g) > 0 else float("nan"))
        return row
