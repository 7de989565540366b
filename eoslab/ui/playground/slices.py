"""Parameters kept at recorded steps, and the loss slices through them.

:class:`Snapshots` is a probe for :func:`eoslab.core.train.fit`: at every step it runs
(the sharpness cadence) it keeps a copy of the parameters :math:`\\theta_t`, and once a
copy of the model's structure and the loss's data, so that slices can be computed later
from another thread while training goes on.

:func:`compute_slices` evaluates, at a kept :math:`\\theta_t`, the training loss on

* the 1-D lines :math:`\\theta_t + \\alpha u` and :math:`\\theta_t + \\alpha \\hat g`, with
  :math:`u` the unit top Hessian eigenvector and :math:`\\hat g = \\nabla L/\\lVert\\nabla
  L\\rVert`, for ``alpha`` in ``[-span, span]``;
* the plane :math:`\\theta_t + x u + y \\hat g'`, with :math:`\\hat g'` the gradient made
  orthogonal to :math:`u` (Gram--Schmidt), on an ``n x n`` grid of the same span,

through :mod:`eoslab.geometry` (:func:`~eoslab.geometry.landscape.slice_1d`,
:func:`~eoslab.geometry.landscape.slice_2d`). Along :math:`u` the slice's curvature at 0 is
the sharpness; GD's next step moves :math:`\\eta\\lVert g\\rVert` along :math:`-\\hat g`.

    >>> import torch
    >>> from eoslab.curvature.objective import Objective
    >>> model = torch.nn.Linear(2, 1, bias=False).double()
    >>> x = torch.eye(2, dtype=torch.float64); y = torch.zeros(2, 1, dtype=torch.float64)
    >>> base = {"weight": torch.tensor([[1.0, 0.5]], dtype=torch.float64)}
    >>> out = compute_slices(Objective(model, "mse", x, y), base, span=1.0, n=5)
    >>> len(out["slice1d"]), len(out["slice2d"])
    (10, 25)
"""

from __future__ import annotations

import copy
import threading

import torch

from eoslab.curvature.objective import Objective
from eoslab.geometry.directions import gradient_direction, hessian_directions, orthonormalize
from eoslab.geometry.landscape import slice_1d, slice_2d

__all__ = ["Snapshots", "compute_slices"]

MAX_SNAPSHOTS = 400
"""Most parameter copies one run keeps (later steps replace every other one)."""


class Snapshots:
    """A probe keeping :math:`\\theta_t` at the steps it runs (module docs).

    Attributes:
        every: the cadence (steps divisible by it).
        params: step -> ``{name: tensor}`` (detached copies).
        objective: an :class:`~eoslab.curvature.objective.Objective` on a private copy of
            the model (``None`` before the first step).
    """

    def __init__(self, every: int):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} is not allowed; use an integer >= 1")
        self.every = every
        self.params: dict[int, dict[str, torch.Tensor]] = {}
        self.objective: Objective | None = None
        self._lock = threading.Lock()

    def __call__(self, ctx) -> dict:
        if self.objective is None:
            obj = ctx.objective
            self.objective = Objective(copy.deepcopy(ctx.model), obj.loss, obj.x, obj.y,
                                       obj.chunk_size)
        kept = {n: p.detach().clone() for n, p in ctx.model.named_parameters()
                if p.requires_grad}
        with self._lock:
            if len(self.params) >= MAX_SNAPSHOTS:
                for step in sorted(self.params)[1::2]:
                    del self.params[step]
            self.params[ctx.step] = kept
        return {}

    def steps(self) -> list[int]:
        with self._lock:
            return sorted(self.params)

    def at(self, step: int) -> dict[str, torch.Tensor]:
        with self._lock:
            if step not in self.params:
                raise ValueError(f"step={step!r} is not allowed; parameters are kept at "
                                 f"steps {sorted(self.params)[:5]}...")
            return self.params[step]


def compute_slices(objective: Objective, base: dict, *, span: float = 1.0, n: int = 21,
                   tol: float = 1e-3) -> dict:
    """Datasets ``slice1d`` and ``slice2d`` of :func:`eoslab.ui.playground.charts.slice_layout`.

    Also returns ``grad_norm``, :math:`\\lVert\\nabla L\\rVert` at ``base``.
    """
    if not (isinstance(span, (int, float)) and 0 < span < 1e6):
        raise ValueError(f"span={span!r} is not allowed; use a number in (0, 1e6)")
    if isinstance(n, bool) or not isinstance(n, int) or not 3 <= n <= 101:
        raise ValueError(f"n={n!r} is not allowed; use an integer in [3, 101]")
    base = {k: base[k] for k in objective.param_names}
    grad = gradient_direction(objective, base, unit=False)
    grad_norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grad.values())))
    top = hessian_directions(objective, base, k=1, tol=tol)[0]
    alphas = torch.linspace(-span, span, n, dtype=torch.float64)
    rows = []
    directions = [("top eigenvector", top)]
    if grad_norm > 0:
        directions.append(("gradient", {k: g / grad_norm for k, g in grad.items()}))
    for name, d in directions:
        out = slice_1d(objective, base, d, alphas)
        rows.extend({"direction": name, "alpha": round(a, 9), "loss": v}
                    for a, v in zip(out["alpha"], out["loss"]))
    try:
        second = orthonormalize([top, grad])[1] if grad_norm > 0 else None
    except ValueError:  # the gradient lies along the eigenvector
        second = None
    if second is None:
        second = {k: torch.zeros_like(v) for k, v in top.items()}
    plane = slice_2d(objective, base, top, second, alphas, alphas)
    grid = [{"x": round(x, 9), "y": round(y, 9), "loss": plane["loss"][i][j]}
            for i, x in enumerate(plane["x"]) for j, y in enumerate(plane["y"])]
    return {"slice1d": rows, "slice2d": grid, "grad_norm": grad_norm}
