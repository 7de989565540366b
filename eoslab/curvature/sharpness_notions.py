"""Other notions of sharpness: per-batch, along the gradient or the update, worst case in a ball.

All take an :class:`~eoslab.curvature.objective.Objective` (or a
:class:`~eoslab.curvature.hessian.HessianOperator` built on one) and never touch the model.

* **Batch sharpness**: the mean top eigenvalue of the minibatch Hessians
  :math:`\\mathbb E_B\\, \\lambda_{\\max}(\\nabla^2 L_B)`, the curvature a minibatch step sees.
* **Gradient alignment** :math:`|\\langle g, u_1\\rangle| / \\lVert g\\rVert` with the top
  eigenvector :math:`u_1`: at the edge of stability the gradient oscillates along
  :math:`u_1` (Cohen et al. 2021).
* **Directional sharpness** :math:`d^\\top H d / \\lVert d\\rVert^2` along a direction, e.g.
  the update (Pan and Li 2022, arXiv 2306.00204, for Adam vs SGD); along the gradient by
  default.
* **Worst-case** :math:`\\rho`-sharpness :math:`\\max_{\\lVert \\epsilon\\rVert \\le \\rho}
  L(w + \\epsilon) - L(w)` (Keskar et al. 2017; the SAM objective of Foret et al. 2021),
  by projected gradient ascent on :math:`\\epsilon`; near a minimum it is
  :math:`\\approx \\tfrac12 \\rho^2 \\lambda_{\\max}`.

Example:
    >>> import torch
    >>> from eoslab import build_model, load_dataset, Objective
    >>> data = load_dataset("quadratic", spectrum=[4.0, 1.0], dtype="float64", device="cpu")
    >>> model = build_model("linear", (2,), 1, dtype="float64", device="cpu")
    >>> obj = Objective(model, "mse", data.x_train, data.y_train)
    >>> w_star = {"1.weight": torch.as_tensor(data.meta["w_star"]).reshape(1, 2)}
    >>> round(rho_sharpness(obj, w_star, rho=0.1).value, 6)   # 0.5 * 0.1**2 * 4
    0.02
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch.func import grad

from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator, check_finite, flatten, unflatten

__all__ = [
    "RhoSharpness",
    "batch_sharpness",
    "directional_sharpness",
    "gradient_alignment",
    "rho_sharpness",
]


def batch_sharpness(objective, params=None, *, batch_size: int, n_batches: int = 8,
                    seed: int = 0, tol: float = 1e-3) -> dict:
    """Mean :math:`\\lambda_{\\max}` of the Hessians of ``n_batches`` random minibatches.

    Returns ``{"mean": ..., "values": [...], "hvps": ...}``.

    Raises:
        ValueError: ``batch_size`` outside ``[1, n]`` or ``n_batches < 1``.
    """
    n = objective.x.shape[0]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size={batch_size!r} is not allowed; use an integer in [1, {n}]")
    if isinstance(n_batches, bool) or not isinstance(n_batches, int) or n_batches < 1:
        raise ValueError(f"n_batches={n_batches!r} is not allowed; use an integer >= 1")
    gen = torch.Generator().manual_seed(seed)
    values, hvps, warm = [], 0, None
    for _ in range(n_batches):
        idx = torch.randperm(n, generator=gen)[:batch_size].to(objective.x.device)
        sub = dataclasses.replace(objective, x=objective.x[idx], y=objective.y[idx])
        res = top_eigen(HessianOperator(sub, params), 1, tol=tol, init=warm)
        warm = res.vectors
        values.append(float(res.values[0]))
        hvps += res.hvps
    return {"mean": sum(values) / len(values), "values": values, "hvps": hvps}


def _as_flat(direction, op: HessianOperator) -> torch.Tensor:
    flat = flatten({n: direction[n] for n in op.params}) if isinstance(direction, dict) else (
        torch.as_tensor(direction).reshape(-1))
    if flat.shape != (op.numel,) or not bool(torch.isfinite(flat).all()):
        raise ValueError(f"the direction must hold {op.numel} finite numbers, got shape "
                         f"{tuple(flat.shape)}")
    return flat.to(device=op.device, dtype=op.dtype)


def gradient_alignment(op: HessianOperator, top_vector: torch.Tensor | None = None,
                       tol: float = 1e-3) -> float:
    """:math:`|\\langle g, u_1\\rangle| / \\lVert g\\rVert` (``nan`` at a zero gradient)."""
    g = op.gradient()
    u = top_eigen(op, 1, tol=tol).vectors[:, 0] if top_vector is None else _as_flat(top_vector, op)
    norm = float(g.norm())
    if norm == 0.0:
        return float("nan")
    return abs(float(g @ u)) / (norm * float(u.norm()))


def directional_sharpness(op: HessianOperator, direction=None) -> float:
    """:math:`d^\\top H d / \\lVert d\\rVert^2` along ``direction`` (default: the gradient).

    ``direction`` is a flat vector or a dict like the parameters, e.g. the last update
    :math:`\\theta_{t+1} - \\theta_t`.
    """
    d = op.gradient() if direction is None else _as_flat(direction, op)
    norm2 = float(d @ d)
    if norm2 == 0.0:
        raise ValueError("the direction is zero; directional sharpness needs a nonzero direction")
    return float(d @ op.matvec(d)) / norm2


@dataclass
class RhoSharpness:
    """Result of :func:`rho_sharpness`: the gain, the perturbation and the ascent trace."""

    value: float
    perturbation: dict
    trace: list


def rho_sharpness(objective, params=None, *, rho: float, steps: int = 20,
                  step_size: float | None = None, seed: int = 0) -> RhoSharpness:
    """:math:`\\max_{\\lVert\\epsilon\\rVert \\le \\rho} L(w+\\epsilon) - L(w)` by projected ascent.

    Starts at :math:`\\rho\\, g/\\lVert g\\rVert` (SAM's first-order maximiser; a random
    direction at a stationary point), then repeats :math:`\\epsilon \\leftarrow
    \\Pi_\\rho(\\epsilon + \\alpha\\, \\nabla L(w+\\epsilon)
    /\\lVert\\nabla L(w+\\epsilon)\\rVert)` with
    :math:`\\alpha` = ``step_size`` (default :math:`\\rho`), keeping the best point.  A lower
    bound of the true maximum; on a quadratic at its minimum it converges like power
    iteration to :math:`\\tfrac12\\rho^2\\lambda_{\\max}`.
    """
    if not (isinstance(rho, (int, float)) and rho > 0 and rho < float("inf")):
        raise ValueError(f"rho={rho!r} is not allowed; use a finite number > 0")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps={steps!r} is not allowed; use an integer >= 0")
    params = objective.params() if params is None else {
        n: params[n].detach() for n in objective.param_names}
    check_finite(params)
    alpha = rho if step_size is None else float(step_size)
    flat0 = flatten(params)

    def loss(flat):
        return objective(unflatten(flat, params))

    gradient = grad(loss)
    with torch.no_grad():
        base = float(loss(flat0))
    g = gradient(flat0)
    if float(g.norm()) <= torch.finfo(g.dtype).eps ** 0.5 * max(1.0, abs(base)):  # stationary
        g = torch.randn(flat0.shape, generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float64).to(flat0)
    eps = rho * g / g.norm()
    best_gain, best_eps, trace = -float("inf"), eps, []
    for i in range(steps + 1):
        with torch.no_grad():
            gain = float(loss(flat0 + eps)) - base
        trace.append(gain)
        if gain > best_gain:
            best_gain, best_eps = gain, eps
        if i == steps:
            break
        g = gradient(flat0 + eps)
        eps = eps + alpha * g / g.norm().clamp_min(torch.finfo(g.dtype).tiny)
        eps = eps * min(1.0, rho / float(eps.norm()))
    return RhoSharpness(best_gain, unflatten(best_eps, params), trace)
