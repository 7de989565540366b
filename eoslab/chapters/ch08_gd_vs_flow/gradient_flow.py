"""Gradient flow as the continuous reference of gradient descent.

Gradient descent with step size :math:`\\eta` is the explicit Euler method for the
gradient-flow ODE

.. math::

    \\dot\\theta(t) = -\\nabla L(\\theta(t)), \\qquad \\theta(0) = \\theta_0,
    \\qquad \\theta_{k+1} = \\theta_k - \\eta\\, \\nabla L(\\theta_k) \\approx \\theta(k\\eta).

Elkabetz and Cohen, "Continuous vs. Discrete Optimization of Deep Neural Networks",
NeurIPS 2021 (arXiv 2107.06608), bound the gap :math:`\\lVert\\theta_k - \\theta(k\\eta)\\rVert`
by a quantity that stays of order :math:`\\eta` as long as the curvature *along the flow*
is favourable: the Hessian's largest eigenvalue stays below about :math:`1/\\eta` (for the
Euler step to be stable it must stay below :math:`2/\\eta`) and its negative eigenvalues
stay small.  Where the sharpness of the flow, :math:`S(t) = \\lambda_{\\max}(\\nabla^2
L(\\theta(t)))`, climbs past :math:`2/\\eta`, the Euler step is no longer stable along the
top eigenvector and GD leaves the flow (Cohen et al., ICLR 2021, arXiv 2103.00065).

The flow is integrated by ``scipy.integrate.solve_ivp`` (Dormand-Prince RK45 by default)
with ``dense_output=True``: the adaptive step keeps the local error within ``rtol``/``atol``
(so the reference is far more accurate than any GD run it is compared with) and the dense
output gives :math:`\\theta(t)` at every GD time :math:`t = k\\eta`, for any :math:`\\eta`,
from one integration.  The ODE's state is the flat float64 vector of the probed
parameters; gradients come from :class:`~eoslab.curvature.objective.Objective` (reverse mode
through ``functional_call``).

Example:
    >>> import torch
    >>> from eoslab import build_model, load_dataset, Objective
    >>> data = load_dataset("quadratic", spectrum=[2.0, 0.5], dtype="float64", device="cpu")
    >>> model = build_model("linear", data.input_shape, 1, dtype="float64", device="cpu")
    >>> flow = gradient_flow(Objective(model, "mse", data.x_train, data.y_train), t_end=3.0)
    >>> flow.loss(3.0) < flow.loss(0.0)
    True
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp

from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator, flatten, unflatten
from eoslab.curvature.objective import Objective, Params

__all__ = [
    "FlowDistanceProbe",
    "FlowStopped",
    "FlowTrajectory",
    "flow_sharpness",
    "gradient_flow",
    "matched_times",
]


class FlowStopped(RuntimeError):
    """Raised inside the integrator when the ``stop`` event was set."""


@dataclass
class FlowTrajectory:
    """A gradient-flow solution :math:`\\theta(t)` on :math:`[0, t_{end}]`.

    Attributes:
        objective: the loss it follows.
        like: a parameter dict giving names, shapes, dtype and device.
        solution: scipy's dense ``OdeSolution``.
        t_end: the horizon reached.
        nfev: gradient evaluations used.
    """

    objective: Objective
    like: Params
    solution: object
    t_end: float
    nfev: int

    def vector(self, t: float) -> torch.Tensor:
        """:math:`\\theta(t)` as a flat tensor (dtype and device of the parameters)."""
        if not 0.0 <= t <= self.t_end * (1 + 1e-12):
            raise ValueError(f"t={t!r} is outside the integrated interval [0, {self.t_end}]")
        first = next(iter(self.like.values()))
        return torch.as_tensor(self.solution(min(t, self.t_end)), dtype=first.dtype,
                               device=first.device)

    def params(self, t: float) -> Params:
        """:math:`\\theta(t)` as a parameter dict."""
        return unflatten(self.vector(t), self.like)

    def loss(self, t: float) -> float:
        with torch.no_grad():
            return float(self.objective(self.params(t)))


def _check_time(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} is not allowed; use a finite number > 0")
    return float(value)


def _gradient(objective: Objective, params: Params) -> Params:
    """:math:`\\nabla L` at ``params`` by reverse mode on a leaf copy.

    Plain ``torch.autograd.grad`` through ``functional_call`` rather than
    ``torch.func.grad``, whose per-call transform set-up dominates for one gradient of a
    small net.
    """
    leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
    with torch.enable_grad():
        value = objective(leaves)
        grads = torch.autograd.grad(value, list(leaves.values()))
    return dict(zip(leaves, grads))


def gradient_flow(objective: Objective, params: Params | None = None, *, t_end: float,
                  rtol: float = 1e-6, atol: float = 1e-9, method: str = "RK45",
                  stop: threading.Event | None = None) -> FlowTrajectory:
    """Integrate :math:`\\dot\\theta = -\\nabla L(\\theta)` from ``params`` up to ``t_end``.

    Args:
        objective: the loss (its probed parameters are the ODE's state).
        params: the start :math:`\\theta_0`; default the model's current values.
        t_end: the horizon (in units of "time" = sum of step sizes).
        rtol: the integrator's relative error tolerance (float64 state).
        atol: the integrator's absolute error tolerance.
        method: a ``solve_ivp`` explicit Runge-Kutta method: ``"RK45"``, ``"DOP853"``
            or ``"RK23"``.
        stop: an event; when set, the integration ends with :class:`FlowStopped`.

    Raises:
        ValueError: a bad horizon, tolerance or method.
        FlowStopped: ``stop`` was set.
    """
    t_end = _check_time("t_end", t_end)
    _check_time("rtol", rtol), _check_time("atol", atol)
    if method not in ("RK45", "DOP853", "RK23"):
        raise ValueError(f"method={method!r} is not allowed; use 'RK45', 'DOP853' or 'RK23'")
    like = objective.params() if params is None else {
        n: params[n].detach() for n in objective.param_names}
    first = next(iter(like.values()))
    count = [0]

    def rhs(_t, y):
        if stop is not None and stop.is_set():
            raise FlowStopped("gradient flow stopped")
        count[0] += 1
        theta = unflatten(torch.as_tensor(y, dtype=first.dtype, device=first.device), like)
        return -flatten(_gradient(objective, theta)).cpu().double().numpy()

    y0 = flatten(like).detach().cpu().double().numpy()
    sol = solve_ivp(rhs, (0.0, t_end), y0, method=method, rtol=rtol, atol=atol,
                    dense_output=True)
    if not sol.success:
        raise RuntimeError(f"gradient flow failed: {sol.message}")
    return FlowTrajectory(objective, {n: p.clone() for n, p in like.items()}, sol.sol,
                          float(sol.t[-1]), count[0])


def flow_sharpness(flow: FlowTrajectory, times: Sequence[float], *, tol: float = 1e-3,
                   max_iter: int | None = None, negative: bool = False) -> list[dict]:
    """Sharpness :math:`S(t) = \\lambda_{\\max}(\\nabla^2 L(\\theta(t)))` along the flow.

    Lanczos (:func:`~eoslab.curvature.eigen.top_eigen`) warm-started from the previous time's top
    eigenvector.  Returns rows ``{"t", "loss", "sharpness"}`` (plus ``"eig_min"``, the most
    negative eigenvalue, with ``negative=True``).
    """
    rows, warm = [], None
    for t in times:
        op = HessianOperator(flow.objective, flow.params(float(t)))
        res = top_eigen(op, 1, tol=tol, max_iter=max_iter, init=warm)
        warm = res.vectors
        row = {"t": float(t), "loss": flow.loss(float(t)), "sharpness": float(res.values[0])}
        if negative:
            from eoslab.curvature.eigen import bottom_eigen

            row["eig_min"] = float(bottom_eigen(op, 1, tol=tol, max_iter=max_iter).values[0])
        rows.append(row)
    return rows


class FlowDistanceProbe:
    """A :func:`eoslab.core.train.fit` probe: GD's distance to the flow at the matched time.

    Adds ``t`` (:math:`k\\eta`, the matched flow time), ``flow_distance``
    :math:`\\lVert\\theta_k - \\theta(k\\eta)\\rVert_2` and ``flow_loss``
    :math:`L(\\theta(k\\eta))`; past the flow's horizon it adds only ``t``.  The step size
    is read from the optimiser at each call (constant-step GD assumed: :math:`t = k\\eta`).
    """

    def __init__(self, flow: FlowTrajectory, every: int):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} is not allowed; use an integer >= 1")
        self.flow, self.every = flow, every

    def __call__(self, ctx) -> dict:
        t = ctx.step * ctx.lr
        row = {"t": t}
        if t > self.flow.t_end * (1 + 1e-9):
            return row
        theta = flatten(ctx.objective.params())
        ref = self.flow.vector(t).to(theta.dtype)
        row["flow_distance"] = float(torch.linalg.vector_norm(theta - ref))
        row["flow_loss"] = self.flow.loss(t)
        return row


def matched_times(t_end: float, lr: float, every: int) -> np.ndarray:
    """GD's recorded times :math:`k\\eta` for ``k`` multiple of ``every``, up to ``t_end``."""
    steps = math.floor(t_end / lr + 1e-9)
    return np.arange(0, steps + 1, every) * lr
