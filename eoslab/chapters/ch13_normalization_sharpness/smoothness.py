"""How smooth the loss is along the step GD is about to take (Santurkar et al. 2018).

Santurkar, Tsipras, Ilyas, Madry, "How Does Batch Normalization Help Optimization?",
NeurIPS 2018 (arXiv 1805.11604), measure three things at points of a training path,
each along the gradient step :math:`d(s) = -s\\,\\eta\\,\\nabla L(w)` for a range of step
multiples :math:`s`:

* *loss landscape variation*: the spread of :math:`L(w + d(s))` over :math:`s`;
* *gradient predictiveness*: how far the gradient moves,
  :math:`\\lVert \\nabla L(w) - \\nabla L(w + d(s))\\rVert` (small: the current gradient
  predicts the next ones well);
* *effective* :math:`\\beta` *-smoothness*: the largest ratio
  :math:`\\lVert \\nabla L(w) - \\nabla L(w + d(s))\\rVert / \\lVert d(s)\\rVert`, a local
  Lipschitz constant of the gradient along the path (on a quadratic with Hessian
  :math:`H` it is :math:`\\lVert H g\\rVert / \\lVert g\\rVert \\le \\lambda_{\\max}(H)`).

Their finding: with BatchNorm all three are smaller, so larger steps stay predictable.
:func:`smoothness_along_gradient` evaluates them for an
:class:`~eoslab.curvature.objective.Objective`; :class:`SmoothnessProbe` does it during
:func:`eoslab.core.train.fit`.

Example:
    >>> import torch
    >>> from eoslab.curvature.objective import Objective
    >>> net = torch.nn.Linear(2, 1, bias=False).double()
    >>> x = torch.eye(2, dtype=torch.float64); y = torch.zeros(2, 1, dtype=torch.float64)
    >>> obj = Objective(net, "mse", x, y)
    >>> out = smoothness_along_gradient(obj, lr=0.5, multiples=(1.0, 2.0))
    >>> out["loss"][0] > out["loss"][1] > out["loss"][2]   # descending along -grad
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch.func import grad_and_value

from eoslab.curvature.hessian import flatten, unflatten
from eoslab.curvature.objective import Objective

__all__ = ["SmoothnessProbe", "StepCurvatureProbe", "smoothness_along_gradient"]

DEFAULT_MULTIPLES = (0.25, 0.5, 1.0, 2.0, 4.0)


def _check(lr, multiples) -> tuple[float, tuple[float, ...]]:
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} is not allowed; use a finite number > 0")
    multiples = tuple(float(s) for s in multiples)
    if not multiples or any(not (math.isfinite(s) and s > 0) for s in multiples):
        raise ValueError(f"multiples={multiples!r} is not allowed; use one or more finite "
                         "numbers > 0")
    return float(lr), multiples


def smoothness_along_gradient(objective: Objective, params: dict | None = None, *,
                              lr: float, multiples: Sequence[float] = DEFAULT_MULTIPLES
                              ) -> dict:
    """The loss and gradient along :math:`w - s\\eta\\nabla L(w)` for each ``s`` in ``multiples``.

    Args:
        objective: the loss (its BatchNorm mode decides batch or running statistics).
        params: the point (default: the model's current values).
        lr: :math:`\\eta`.
        multiples: the step multiples :math:`s > 0`.

    Returns:
        ``loss`` (:math:`L` at :math:`s = 0` and at each multiple), ``grad_change``
        (:math:`\\lVert\\nabla L(w) - \\nabla L(w + d(s))\\rVert` per multiple),
        ``loss_variation`` (max minus min of ``loss``), ``grad_predictiveness`` (the largest
        ``grad_change``), ``beta_smoothness`` (the largest ``grad_change`` over
        :math:`\\lVert d(s)\\rVert`) and ``grad_norm``.
    """
    lr, multiples = _check(lr, multiples)
    params = objective.params() if params is None else {
        n: params[n].detach() for n in objective.param_names}
    grad_fn = grad_and_value(objective)
    g, value = grad_fn(params)
    g_flat, w_flat = flatten(g), flatten(params)
    g_norm = float(g_flat.norm())
    losses, changes, betas = [float(value)], [], []
    for s in multiples:
        step = -s * lr * g_flat
        g_s, value_s = grad_fn(unflatten(w_flat + step, params))
        change = float((flatten(g_s) - g_flat).norm())
        losses.append(float(value_s))
        changes.append(change)
        length = float(step.norm())
        betas.append(change / length if length > 0 else 0.0)
    finite = [v for v in losses if math.isfinite(v)]
    return {"loss": losses, "grad_change": changes, "grad_norm": g_norm,
            "loss_variation": (max(finite) - min(finite)) if finite else float("nan"),
            "grad_predictiveness": max(changes), "beta_smoothness": max(betas)}


class SmoothnessProbe:
    """Santurkar et al.'s three measures at the current point of :func:`eoslab.core.train.fit`.

    Row keys: ``loss_variation``, ``grad_predictiveness``, ``beta_smoothness`` (see
    :func:`smoothness_along_gradient`), along the step of the run's current ``lr``.

    Args:
        every: run at steps divisible by this.
        multiples: step multiples.
        train_mode: BatchNorm with batch statistics (``True``, the loss GD is training)
            or the loop's objective's mode (``False``: running statistics).
    """

    def __init__(self, every: int, multiples: Sequence[float] = DEFAULT_MULTIPLES,
                 train_mode: bool = True):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} is not allowed; use an integer >= 1")
        _check(1.0, multiples)
        self.every, self.multiples, self.train_mode = every, tuple(multiples), train_mode

    def __call__(self, ctx) -> dict:
        import dataclasses

        objective = dataclasses.replace(ctx.objective, train_mode=self.train_mode) \
            if self.train_mode else ctx.objective
        out = smoothness_along_gradient(objective, lr=ctx.lr, multiples=self.multiples)
        return {k: out[k] for k in ("loss_variation", "grad_predictiveness", "beta_smoothness")}


class StepCurvatureProbe(SmoothnessProbe):
    """The curvature GD sees along its own step: the secant :math:`\\beta` at multiple 1.

    Row key ``step_curvature``:
    :math:`\\lVert\\nabla L(w) - \\nabla L(w - \\eta\\nabla L(w))\\rVert /
    \\lVert\\eta\\nabla L(w)\\rVert`.  On a quadratic it is
    :math:`\\lVert Hg\\rVert/\\lVert g\\rVert \\le \\lambda_{\\max}`.  On a period-2
    orbit :math:`w_\\pm`, where each step lands on the other point, the two gradients are
    :math:`\\pm(w_+ - w_-)/\\eta`, so the secant is exactly :math:`2/\\eta` whatever
    :math:`\\lambda_{\\max}` is at the two points: at the edge of stability this is the
    quantity pinned at :math:`2/\\eta`, while the top Hessian eigenvalue at the iterates may
    sit above it.  (Weight decay's part :math:`\\eta\\lambda w` of the step is left out.)

    Args:
        every: run at steps divisible by this.
    """

    def __init__(self, every: int):
        super().__init__(every, (1.0,))

    def __call__(self, ctx) -> dict:
        return {"step_curvature": super().__call__(ctx)["beta_smoothness"]}
