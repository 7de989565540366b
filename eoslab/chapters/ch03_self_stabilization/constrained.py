"""The constrained trajectory of self-stabilisation: GD projected onto :math:`S \\le 2/\\eta`.

Damian, Nichani, Lee, "Self-Stabilization: The Implicit Bias of Gradient Descent at the
Edge of Stability", ICLR 2023 (arXiv 2209.15594), explain the edge of stability by a
cubic term of the Taylor expansion.  Write :math:`S(\\theta)=\\lambda_{\\max}(\\nabla^2L(\\theta))`
with top eigenvector :math:`u`.  When :math:`S > 2/\\eta`, GD blows up along :math:`u`; a
displacement :math:`x` along :math:`u` makes the third derivative push GD along
:math:`-\\nabla S` by about :math:`\\tfrac12\\eta x^2\\nabla S` per step, which lowers
:math:`S` below :math:`2/\\eta` until the oscillation dies out again.  Over many such
cycles GD tracks the *constrained trajectory*

.. math::

    \\theta^\\dagger_{t+1} = \\mathrm{proj}_{\\{S \\le 2/\\eta\\}}\\big(\\theta^\\dagger_t -
    \\eta \\nabla L(\\theta^\\dagger_t)\\big), \\qquad \\theta^\\dagger_0 = \\theta_0,

i.e. projected gradient descent on the stable set.  (The paper's stable set also asks
:math:`\\nabla L \\cdot u = 0`; we keep the sharpness constraint only, which is what sets
the edge, and measure the displacement along :math:`u` explicitly.)

The projection takes a few Newton steps on the constraint :math:`S(\\theta) = 2/\\eta`,
each the minimum-norm step that zeroes its linearisation,

.. math::

    \\theta \\leftarrow \\theta - \\frac{S(\\theta) - 2/\\eta}{\\lVert\\nabla S(\\theta)\\rVert^2}
    \\nabla S(\\theta), \\qquad \\nabla S(\\theta) = \\nabla_\\theta\\big(u^\\top
    \\nabla^2 L(\\theta)\\, u\\big)\\big|_{u \\text{ fixed}},

the gradient of a simple eigenvalue (Hellmann-Feynman), i.e. the third-derivative
contraction :math:`\\nabla^3 L(\\theta)[u, u]`, computed reverse-over-forward-over-reverse
with ``torch.func``.  :class:`SelfStabilizationProbe` runs the constrained trajectory
alongside :func:`eoslab.core.train.fit` and records the paper's coordinates

.. math::

    x_t = u^\\dagger_t \\cdot (\\theta_t - \\theta^\\dagger_t), \\qquad
    y_t = S(\\theta_t) - 2/\\eta,

together with :math:`\\lVert\\theta_t - \\theta^\\dagger_t\\rVert`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.func import grad, jvp

from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator, flatten, unflatten
from eoslab.curvature.objective import Objective, iter_chunks

__all__ = [
    "ConstrainedTrajectory",
    "Projection",
    "SelfStabilizationProbe",
    "blowup_start",
    "predicted_xy",
    "project_sharpness",
    "sharpness_gradient",
]

Params = dict[str, torch.Tensor]


def sharpness_gradient(objective: Objective, params: Params, u: torch.Tensor) -> torch.Tensor:
    """Flat :math:`\\nabla_\\theta (u^\\top \\nabla^2 L(\\theta) u)` at ``params`` for a flat ``u``.

    For the unit top eigenvector ``u`` of a simple top eigenvalue this is :math:`\\nabla S`.
    Losses without an outer transform are accumulated over data chunks.
    """
    names = objective.param_names
    params = {n: params[n].detach() for n in names}
    tangent = unflatten(u.to(next(iter(params.values())).dtype), params)

    def quadratic_form(loss_fn):
        def form(p):
            hu = jvp(grad(loss_fn), (p,), (tangent,))[1]
            return sum((hu[n] * tangent[n]).sum() for n in names)
        return form

    if objective.loss.outer is not None:
        return flatten(grad(quadratic_form(objective))(params))
    total = None
    for xc, yc, w in iter_chunks(objective.x, objective.y, objective.chunk_size):
        term = w * flatten(grad(quadratic_form(
            lambda p, xc=xc, yc=yc: objective.chunk_loss(p, xc, yc)))(params))
        total = term if total is None else total + term
    return total


@dataclass
class Projection:
    """The result of :func:`project_sharpness`.

    Attributes:
        params: the projected point.
        sharpness: :math:`S` there (within the eigen-solver's tolerance).
        vector: the flat top eigenvector there.
        newton_steps: Newton steps taken (0 when the point was already stable).
        moved: :math:`\\lVert\\theta_{\\mathrm{out}} - \\theta_{\\mathrm{in}}\\rVert`.
    """

    params: Params
    sharpness: float
    vector: torch.Tensor
    newton_steps: int
    moved: float


def _top(objective: Objective, params: Params, init, tol: float, max_iter: int | None = None):
    res = top_eigen(HessianOperator(objective, params), k=1, tol=tol, init=init,
                    max_iter=max_iter)
    u = res.vectors[:, 0]
    if init is not None and float(u @ init.reshape(-1)) < 0:
        u = -u  # keep the sign of the previous eigenvector, so x keeps its meaning
    return float(res.values[0]), u


def project_sharpness(objective: Objective, params: Params, threshold: float, *,
                      max_steps: int = 8, rtol: float = 1e-3, eig_tol: float = 1e-4,
                      eig_max_iter: int | None = None, init: torch.Tensor | None = None
                      ) -> Projection:
    """Move ``params`` onto :math:`\\{S \\le \\text{threshold}\\}` by Newton steps.

    The steps go along :math:`\\nabla S`; they stop when
    :math:`S \\le \\text{threshold}\\,(1 + \\text{rtol})` or after ``max_steps``.

    Raises:
        ValueError: a threshold that is not a finite positive number, or ``max_steps < 1``.
    """
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold={threshold!r} is not allowed; use a finite number > 0 "
                         "(2/eta)")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps={max_steps!r} is not allowed; use an integer >= 1")
    start = {n: params[n].detach() for n in objective.param_names}
    point = dict(start)
    sharp, u = _top(objective, point, init, eig_tol, eig_max_iter)
    steps = 0
    while sharp > threshold * (1 + rtol) and steps < max_steps:
        g = sharpness_gradient(objective, point, u)
        size = float(g @ g)
        if not size > 0:
            break
        flat = flatten(point) - ((sharp - threshold) / size) * g
        point = unflatten(flat, point)
        sharp, u = _top(objective, point, u, eig_tol, eig_max_iter)
        steps += 1
    moved = float((flatten(point) - flatten(start)).norm())
    return Projection(point, sharp, u, steps, moved)


class ConstrainedTrajectory:
    """:math:`\\theta^\\dagger`: GD on ``objective`` projected onto :math:`S \\le 2/\\eta`.

    Args:
        objective: the training loss (its data and chunking).
        params: :math:`\\theta^\\dagger_0` (usually the initial weights of the GD run).
        lr: :math:`\\eta`; the constraint is :math:`S \\le 2/\\eta`.
        **options: passed to :func:`project_sharpness`.

    Attributes:
        params, step, sharpness, vector: the current point, its step count, :math:`S` and
        :math:`u` there; ``projections`` counts the steps that needed a projection.
    """

    def __init__(self, objective: Objective, params: Params, lr: float, **options):
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr={lr!r} is not allowed; use a finite number > 0")
        self.objective, self.lr, self.options = objective, float(lr), options
        self.params = {n: params[n].detach().clone() for n in objective.param_names}
        self.step, self.projections = 0, 0
        self.sharpness, self.vector = _top(objective, self.params, None,
                                           options.get("eig_tol", 1e-4),
                                           options.get("eig_max_iter"))

    def advance(self) -> None:
        """One projected GD step."""
        g = HessianOperator(self.objective, self.params).gradient()
        moved = unflatten(flatten(self.params) - self.lr * g, self.params)
        out = project_sharpness(self.objective, moved, 2.0 / self.lr, init=self.vector,
                                **self.options)
        self.params, self.sharpness, self.vector = out.params, out.sharpness, out.vector
        self.projections += out.newton_steps > 0
        self.step += 1

    def advance_to(self, step: int) -> None:
        """Advance until :attr:`step` equals ``step`` (no-op if already there)."""
        if step < self.step:
            raise ValueError(f"step={step} is behind the constrained trajectory (at "
                             f"{self.step}); it only moves forward")
        while self.step < step:
            self.advance()


class SelfStabilizationProbe:
    """Runs :class:`ConstrainedTrajectory` beside a GD run and measures the distance to it.

    The constrained trajectory starts from the weights at the first call (call it at step
    0) and takes one projected step per GD step, whatever ``every`` is.  Keys: ``x``
    (displacement along :math:`u^\\dagger`), ``y`` (:math:`S(\\theta_t) - 2/\\eta`),
    ``sharpness``, ``dagger_sharpness``, ``distance`` (:math:`\\lVert\\theta_t -
    \\theta^\\dagger_t\\rVert`), ``travel`` (:math:`\\lVert\\theta_t - \\theta_0\\rVert`),
    ``dagger_loss``, ``projections`` so far, and the coefficients of the paper's reduced
    model at :math:`\\theta^\\dagger_t`: ``alpha`` :math:`= -\\nabla L \\cdot \\nabla S` (the
    rate of progressive sharpening) and ``beta`` :math:`= \\lVert\\nabla S\\rVert^2` (the
    strength of self-stabilisation), see :func:`predicted_xy`.
    """

    def __init__(self, every: int = 1, eig_tol: float = 1e-4, eig_max_iter: int | None = None,
                 **options):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} is not allowed; use an integer >= 1")
        self.every, self.eig_tol, self.options = every, eig_tol, options
        self.eig_max_iter = eig_max_iter
        self.trajectory: ConstrainedTrajectory | None = None
        self._u: torch.Tensor | None = None
        self._start: torch.Tensor | None = None

    def __call__(self, ctx) -> dict:
        objective = ctx.objective
        if self.trajectory is None:
            self.trajectory = ConstrainedTrajectory(objective, objective.params(), ctx.lr,
                                                    eig_tol=self.eig_tol,
                                                    eig_max_iter=self.eig_max_iter,
                                                    **self.options)
            self.trajectory.step = ctx.step
            self._start = flatten(self.trajectory.params)
        dagger = self.trajectory
        dagger.advance_to(ctx.step)
        here = objective.params()
        sharp, self._u = _top(objective, here, self._u if self._u is not None else dagger.vector,
                              self.eig_tol, self.eig_max_iter)
        diff = flatten(here) - flatten(dagger.params)
        grad_s = sharpness_gradient(objective, dagger.params, dagger.vector)
        grad_l = HessianOperator(objective, dagger.params).gradient().to(grad_s.dtype)
        return {"x": float(dagger.vector @ diff), "y": sharp - 2.0 / dagger.lr,
                "alpha": -float(grad_l @ grad_s), "beta": float(grad_s @ grad_s),
                "sharpness": sharp, "dagger_sharpness": dagger.sharpness,
                "distance": float(diff.norm()),
                "travel": float((flatten(here) - self._start).norm()),
                "dagger_loss": float(objective(dagger.params)),
                "projections": dagger.projections}


def blowup_start(history: list[dict]) -> int | None:
    """The recorded step where the measured blow-up of :math:`|x|` begins, or ``None``.

    The earliest step with :math:`y > 0` from which :math:`|x|` grows at every record up
    to its maximum: before it, :math:`x` is at the level of rounding and Lanczos noise and
    says nothing about the cubic dynamics.

    >>> rows = [{"step": s, "x": x, "y": 0.5} for s, x in
    ...         enumerate([1e-8, 1e-4, 1e-5, 1e-3, 1e-2, 1e-1, 1e-3])]
    >>> blowup_start(rows)
    2
    """
    rows = [r for r in history if r.get("y") is not None and r.get("x") is not None]
    peak = max(range(len(rows)), key=lambda i: abs(rows[i]["x"]), default=None)
    if peak is None or rows[peak]["y"] is None:
        return None
    start = peak
    while start > 0 and rows[start - 1]["y"] > 0 and \
            abs(rows[start - 1]["x"]) < abs(rows[start]["x"]):
        start -= 1
    return rows[start]["step"] if start < peak else None


def predicted_xy(history: list[dict], lr: float, start: int | None = None) -> list[dict]:
    """The paper's reduced cubic model of :math:`(x, y)` iterated from a measured row.

    Damian et al. (section 4) keep, near the constrained trajectory, only the displacement
    :math:`x` along :math:`u` and the change of sharpness :math:`y`; a cubic Taylor
    expansion of the loss gives, per GD step,

    .. math::

        x_{t+1} = -(1 + \\eta y_t)\\, x_t, \\qquad
        y_{t+1} = y_t + \\eta\\big(\\alpha_t - \\tfrac12 \\beta_t x_t^2\\big),

    with :math:`\\alpha = -\\nabla L\\cdot\\nabla S` (progressive sharpening) and
    :math:`\\beta = \\lVert\\nabla S\\rVert^2` (self-stabilisation) read at
    :math:`\\theta^\\dagger_t` (the latest recorded row).  Starting from the measured
    ``x, y`` of the row at step ``start`` (default :func:`blowup_start`), returns
    ``[{"step", "x", "y"}, ...]`` for the blow-up and the self-stabilisation (phases 2
    and 3): up to the first step after the predicted peak where :math:`y \\le 0`, or the
    last recorded step.  ``[]`` when there is no such row.

    >>> rows = [{"step": 0, "x": 1e-3, "y": 0.5, "alpha": 0.0, "beta": 4.0},
    ...         {"step": 2, "x": 0.0, "y": 0.0, "alpha": 0.0, "beta": 4.0}]
    >>> [round(r["x"], 6) for r in predicted_xy(rows, 0.5, start=0)]
    [0.001, -0.00125, 0.001562]
    """
    rows = [r for r in history if r.get("y") is not None and r.get("alpha") is not None]
    if start is None:
        start = blowup_start(rows)
    first = next((r for r in rows if r["step"] == start), None)
    if first is None:
        return []
    x, y, coef = float(first["x"]), float(first["y"]), first
    later = iter([r for r in rows if r["step"] > start])
    upcoming = next(later, None)
    out = [{"step": start, "x": x, "y": y}]
    for step in range(start + 1, rows[-1]["step"] + 1):
        x, y = -(1 + lr * y) * x, y + lr * (coef["alpha"] - 0.5 * coef["beta"] * x * x)
        if not (math.isfinite(x) and math.isfinite(y)):
            break
        out.append({"step": step, "x": x, "y": y})
        if y <= 0 < max(r["y"] for r in out):
            break
        if upcoming is not None and upcoming["step"] <= step:
            coef, upcoming = upcoming, next(later, None)
    return out
