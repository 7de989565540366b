"""Curves between two solutions and their training (mode connectivity).

Garipov, Izmailov, Podoprikhin, Vetrov, Wilson, "Loss Surfaces, Mode Connectivity, and
Fast Ensembling of DNNs", NeurIPS 2018 (arXiv 1802.10026); Draxler et al., ICML 2018.
A curve :math:`\\phi_\\theta(t),\\ t \\in [0, 1]` joins the fixed endpoints
:math:`w_1 = \\phi(0)` and :math:`w_2 = \\phi(1)` through trainable *bends*
:math:`\\theta = (b_1, \\dots, b_{n})`.  With control points
:math:`p_0 = w_1, p_1..p_n = b_1..b_n, p_{n+1} = w_2`:

* Bézier: :math:`\\phi(t) = \\sum_{k=0}^{n+1} \\binom{n+1}{k} t^k (1-t)^{n+1-k}\\, p_k`
  (for one bend, :math:`(1-t)^2 w_1 + 2t(1-t)\\,b + t^2 w_2`);
* polygonal chain: linear between consecutive control points placed at
  :math:`t = k/(n+1)`.

Both are :math:`\\sum_k c_k(t)\\, p_k` with coefficients summing to one.  Training
minimises :math:`\\mathbb E_{t \\sim U[0,1]} L(\\phi_\\theta(t))` by drawing one :math:`t`
(and one minibatch) per step.  Bends start on the straight segment, which both families
then reproduce exactly.  Nets with BatchNorm are trained with batch statistics and
evaluated after recalibrating the running statistics at each point, as in the paper.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Sequence

import torch
from torch import nn

from eoslab.core.models import has_batchnorm
from eoslab.curvature.objective import Objective
from eoslab.geometry.directions import Params, check_compatible
from eoslab.geometry.landscape import evaluate_points

__all__ = [
    "CURVE_KINDS",
    "Curve",
    "barrier",
    "bezier_coefficients",
    "evaluate_curve",
    "polychain_coefficients",
    "train_curve",
]

CURVE_KINDS = ("bezier", "polychain")


def _times(t) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    if t.numel() == 0:
        raise ValueError("t is empty; give at least one value in [0, 1]")
    if not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(f"t must lie in [0, 1]; got values from {float(t.min())} to "
                         f"{float(t.max())}")
    return t


def bezier_coefficients(t, n_points: int) -> torch.Tensor:
    """Bernstein weights ``(len(t), n_points)`` of a Bézier curve with ``n_points`` controls.

    >>> bezier_coefficients([0.5], 3).tolist()
    [[0.25, 0.5, 0.25]]
    """
    t = _times(t)[:, None]
    n = n_points - 1
    k = torch.arange(n_points, dtype=torch.float64)[None, :]
    binom = torch.tensor([math.comb(n, int(i)) for i in range(n_points)], dtype=torch.float64)
    return binom * t.pow(k) * (1 - t).pow(n - k)


def polychain_coefficients(t, n_points: int) -> torch.Tensor:
    """Piecewise-linear weights ``(len(t), n_points)``, control ``k`` at ``t = k/(n_points-1)``.

    >>> polychain_coefficients([0.25], 3).tolist()
    [[0.5, 0.5, 0.0]]
    """
    t = _times(t)
    pos = t * (n_points - 1)
    left = pos.floor().clamp(max=n_points - 2).long()
    frac = pos - left
    out = torch.zeros(t.numel(), n_points, dtype=torch.float64)
    rows = torch.arange(t.numel())
    out[rows, left] = 1 - frac
    out[rows, left + 1] += frac
    return out


class Curve(nn.Module):
    """A Bézier or polygonal curve from ``start`` to ``end`` with ``n_bends`` trainable bends.

    Attributes:
        bends: ``(n_bends, N)`` trainable flat control points.
        kind: ``"bezier"`` or ``"polychain"``.
    """

    def __init__(self, start: Params, end: Params, n_bends: int = 1, kind: str = "bezier"):
        super().__init__()
        check_compatible(start, end, ("start", "end"))
        if kind not in CURVE_KINDS:
            raise ValueError(f"kind={kind!r} is not allowed; allowed: {', '.join(CURVE_KINDS)}")
        if isinstance(n_bends, bool) or not isinstance(n_bends, int) or n_bends < 1:
            raise ValueError(f"n_bends={n_bends!r} is not allowed; use an integer >= 1")
        self.kind = kind
        self._like = {k: v.detach() for k, v in start.items()}
        flat_a = torch.cat([v.detach().reshape(-1) for v in start.values()])
        flat_b = torch.cat([end[k].detach().reshape(-1) for k in start])
        self.register_buffer("start", flat_a.clone())
        self.register_buffer("end", flat_b.clone())
        frac = torch.arange(1, n_bends + 1, dtype=flat_a.dtype, device=flat_a.device)
        frac = frac[:, None] / (n_bends + 1)
        self.bends = nn.Parameter(flat_a[None] + frac * (flat_b - flat_a)[None])

    @property
    def n_points(self) -> int:
        return self.bends.shape[0] + 2

    def coefficients(self, t) -> torch.Tensor:
        """``(len(t), n_points)`` weights of the control points (rows sum to 1)."""
        fn = bezier_coefficients if self.kind == "bezier" else polychain_coefficients
        return fn(t, self.n_points)

    def control_points(self) -> torch.Tensor:
        """``(n_points, N)``: start, bends, end."""
        return torch.cat([self.start[None], self.bends, self.end[None]])

    def unflatten(self, flat: torch.Tensor) -> Params:
        out, i = {}, 0
        for k, v in self._like.items():
            out[k] = flat[i:i + v.numel()].reshape(v.shape)
            i += v.numel()
        return out

    def point(self, t: float) -> Params:
        """:math:`\\phi(t)` as a parameter dict (differentiable in the bends)."""
        c = self.coefficients([t])[0].to(self.bends)
        return self.unflatten(c @ self.control_points())

    def forward(self, t: float) -> Params:
        return self.point(t)


def train_curve(curve: Curve, objective: Objective, *, steps: int, lr: float = 0.05,
                batch_size: int | None = None, momentum: float = 0.9, seed: int = 0,
                record_every: int = 10, callback: Callable[[dict], None] | None = None,
                stop: threading.Event | None = None) -> list[dict]:
    """Minimise :math:`\\mathbb E_{t\\sim U[0,1]} L(\\phi(t))` over the bends with SGD.

    Each step draws one ``t`` and (with ``batch_size``) one minibatch of the objective's
    data from a generator seeded by ``seed``.  BatchNorm nets should use an objective with
    ``train_mode=True`` (batch statistics), as in Garipov et al.  Returns the recorded rows
    ``{"step", "t", "loss"}`` (also passed to ``callback``); ``stop`` ends the loop early.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is not allowed; use an integer >= 1")
    n = objective.x.shape[0]
    if batch_size is not None and not 1 <= batch_size <= n:
        raise ValueError(f"batch_size={batch_size!r} is not allowed; use 1..{n} or None")
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.SGD(curve.parameters(), lr=lr, momentum=momentum)
    rows = []
    for step in range(steps):
        if stop is not None and stop.is_set():
            break
        t = float(torch.rand((), generator=gen, dtype=torch.float64))
        if batch_size is None:
            value = objective(curve.point(t))
        else:
            idx = torch.randint(0, n, (batch_size,), generator=gen).to(objective.x.device)
            xb, yb = objective.x[idx], objective.y[idx]
            value = objective.loss.finish(objective.chunk_loss(curve.point(t), xb, yb))
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        if step % record_every == 0 or step == steps - 1:
            row = {"step": step, "t": t, "loss": float(value.detach())}
            rows.append(row)
            if callback is not None:
                callback(row)
    return rows


@torch.no_grad()
def evaluate_curve(curve: Curve, objective: Objective, ts=None, *,
                   test: tuple[torch.Tensor, torch.Tensor] | None = None,
                   bn_batch_size: int | None = None, **options) -> dict:
    """Loss (and accuracy) along the curve at ``ts`` (default 21 points in [0, 1]).

    Without BatchNorm the points are evaluated in batches (the curve is a linear
    combination of its control points).  With BatchNorm each point gets its running
    statistics recalibrated on the objective's data first (:func:`~eoslab.optimizers.averaging.
    recalibrate_bn`), then is evaluated in eval mode.  Returns ``{"t": [...], "loss": ...}``.
    """
    ts = _times(torch.linspace(0, 1, 21) if ts is None else ts)
    coef = curve.coefficients(ts)
    names = list(curve._like)
    if set(names) != set(objective.param_names):
        raise ValueError("the curve's parameters do not match the objective's model: "
                         f"{sorted(set(names) ^ set(objective.param_names))}")
    splits = [("", objective.x, objective.y)]
    if test is not None and test[0].shape[0] > 0:
        splits.append(("test_", *test))
    out: dict = {"t": ts.tolist()}
    if not has_batchnorm(objective.model):
        ctrl = curve.control_points().detach()
        base = curve.unflatten(ctrl[0])
        dirs = [curve.unflatten(ctrl[i] - ctrl[0]) for i in range(1, curve.n_points)]
        for prefix, x, y in splits:
            res = evaluate_points(objective, base, dirs, coef[:, 1:], x=x, y=y, **options)
            out.update({prefix + k: v.tolist() for k, v in res.items()})
        return out
    from eoslab.optimizers.averaging import recalibrate_bn

    net = copy.deepcopy(objective.model)
    for t in ts.tolist():
        params = {k: v.detach() for k, v in curve.point(t).items()}
        with torch.no_grad():
            for name, p in net.named_parameters():
                if name in params:
                    p.copy_(params[name])
        recalibrate_bn(net, objective.x, bn_batch_size or objective.chunk_size)
        here = Objective(net, objective.loss, objective.x, objective.y, objective.chunk_size)
        zero = {k: torch.zeros_like(v) for k, v in params.items()}
        for prefix, x, y in splits:
            res = evaluate_points(here, params, [zero], [[0.0]], x=x, y=y, **options)
            for k, v in res.items():
                out.setdefault(prefix + k, []).append(float(v[0]))
    return out


def barrier(losses: Sequence[float], ts: Sequence[float] | None = None) -> float:
    """Height of the path above the chord between its ends.

    It is :math:`\\max_t \\big[L(t) - ((1-t)L(0) + tL(1))\\big]` (``ts`` default: evenly
    spaced).

    >>> barrier([1.0, 3.0, 2.0])
    1.5
    """
    values = torch.as_tensor(losses, dtype=torch.float64).reshape(-1)
    if values.numel() == 0:
        raise ValueError("losses is empty; give the losses along a path")
    t = torch.linspace(0, 1, values.numel(), dtype=torch.float64) if ts is None else \
        _times(ts)
    if t.numel() != values.numel():
        raise ValueError(f"{t.numel()} values of t for {values.numel()} losses")
    chord = (1 - t) * values[0] + t * values[-1]
    return float((values - chord).max())
