"""The sparse-coding task and the shared-bias ReLU network of Ahn et al., trained by GD.

Ahn, Bubeck, Chewi, Lee, Suarez & Zhang (*Learning threshold neurons via the "edge of
stability"*, NeurIPS 2023, arXiv 2212.07469) study a binary task whose inputs are one
signed spike in an unknown coordinate buried in Gaussian noise,

.. math:: x = \\lambda\\, y\\, e_j + \\xi,\\qquad y \\sim \\mathrm{Unif}\\{\\pm 1\\},\\
          j \\sim \\mathrm{Unif}[d],\\ \\xi \\sim N(0, I_d),

learnt by a two-layer ReLU network whose first-layer units share one bias :math:`b`,

.. math:: f(x) = \\sum_{i=1}^d a^+_i\\,\\mathrm{ReLU}(x_i + b) - a^-_i\\,\\mathrm{ReLU}(-x_i + b),

with the logistic loss :math:`L = \\frac1n\\sum_k \\log(1 + e^{-y_k f(x_k)})` (the mean here;
the paper's step-size scale differs by its normalisation).  With :math:`b < 0` each unit is
a *threshold neuron*, :math:`\\mathrm{sign}(x_i)\\max(|x_i| + b, 0)`, which removes small
noise.  The paper shows a sharp phase transition: run for a fixed time :math:`\\eta T`,
GD leaves :math:`b \\approx 0` when :math:`\\eta` is below the initial edge of stability
:math:`2/\\lambda_{\\max}(\\nabla^2 L(\\theta_0))`, and drives :math:`b` clearly negative above
it.  The mechanism: the direction :math:`a^+ = -a^- \\propto \\mathbf 1` (output
:math:`\\propto \\sum_i \\mathrm{ReLU}(x_i+b)+\\mathrm{ReLU}(-x_i+b)`, a constant that carries no
label information) has curvature about :math:`d/(4\\pi)` at :math:`b = 0`; above its edge
GD oscillates along it, and each oscillation pushes :math:`b` down, which lowers that
curvature, until the oscillation stabilises.

:func:`train` runs many step sizes and initialisations as one batched computation; copy
:math:`c` takes :math:`T_c = \\max(\\lceil \\text{time}/\\eta_c\\rceil, \\text{min\\_steps})`
steps and is frozen afterwards.

Example:
    >>> x, y = sparse_coding(4, 3, signal=3.0, seed=0)
    >>> tuple(x.shape), sorted(set(y.tolist()))
    ((4, 3), [-1.0, 1.0])
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from eoslab.curvature.eigen import top_eigen

__all__ = [
    "dead_bias",
    "init_params",
    "initial_sharpness",
    "logistic_loss",
    "network_output",
    "sparse_coding",
    "train",
]


def _count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed; it must be an integer >= {minimum}")
    return value


def sparse_coding(n: int, d: int, signal: float = 3.0, seed: int = 0,
                  dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples of the task: inputs (n, d) and labels (n,) in {-1, +1}."""
    _count("n", n)
    _count("d", d)
    if not (isinstance(signal, (int, float)) and math.isfinite(signal) and signal >= 0):
        raise ValueError(f"signal={signal!r} is not allowed; it must be a finite number >= 0")
    g = torch.Generator().manual_seed(int(seed))
    y = torch.randint(0, 2, (n,), generator=g).to(torch.float64) * 2 - 1
    j = torch.randint(0, d, (n,), generator=g)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    x[torch.arange(n), j] += signal * y
    return x.to(dtype), y.to(dtype)


def init_params(d: int, seeds: Sequence[int], dtype=torch.float64, device=None) -> dict:
    """:math:`a^\\pm \\sim N(0, 1/(2d))` per seed, :math:`b = 0`; leading dimension = seeds.

    Drawn on the CPU in float64 (the same numbers on every device), then cast.
    """
    _count("d", d)
    ap, am = [], []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s))
        ap.append(torch.randn(d, generator=g, dtype=torch.float64) / math.sqrt(2 * d))
        am.append(torch.randn(d, generator=g, dtype=torch.float64) / math.sqrt(2 * d))
    return {"a_plus": torch.stack(ap).to(dtype=dtype, device=device),
            "a_minus": torch.stack(am).to(dtype=dtype, device=device),
            "bias": torch.zeros(len(ap), dtype=dtype, device=device)}


def network_output(params: dict, x: torch.Tensor) -> torch.Tensor:
    """:math:`f(x)` for every copy: params with leading shape ``C``, x (n, d) -> (C, n)."""
    b = params["bias"][..., None, None]
    pos = (params["a_plus"][..., None, :] * torch.relu(x + b)).sum(-1)
    neg = (params["a_minus"][..., None, :] * torch.relu(-x + b)).sum(-1)
    return pos - neg


def logistic_loss(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss of every copy, shape ``C``."""
    return F.softplus(-y * network_output(params, x)).mean(-1)


def dead_bias(x: torch.Tensor) -> float:
    """Below this bias every unit is off on ``x`` (:math:`-\\max_{k,i}|x_{ki}|`): f = 0."""
    return -float(x.abs().max())


class _HessianOfCopy:
    """The loss Hessian of one copy as an operator (forward-over-reverse products)."""

    def __init__(self, flat: torch.Tensor, d: int, x: torch.Tensor, y: torch.Tensor):
        def loss(p):
            return logistic_loss({"a_plus": p[:d], "a_minus": p[d:2 * d], "bias": p[2 * d]},
                                 x, y)

        self._grad, self._at = torch.func.grad(loss), flat
        self.shape, self.dtype, self.device = (flat.numel(),) * 2, flat.dtype, flat.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(self._grad, (self._at,), (v,))[1]


def initial_sharpness(params: dict, x: torch.Tensor, y: torch.Tensor,
                      tol: float = 1e-8) -> list[float]:
    """:math:`\\lambda_{\\max}(\\nabla^2 L)` of each copy (Lanczos on Hessian-vector products)."""
    d = params["a_plus"].shape[-1]
    out = []
    for c in range(params["bias"].shape[0]):
        flat = torch.cat([params["a_plus"][c], params["a_minus"][c],
                          params["bias"][c].reshape(1)]).detach()
        out.append(float(top_eigen(_HessianOfCopy(flat, d, x, y), tol=tol).values[0]))
    return out


def train(params: dict, x: torch.Tensor, y: torch.Tensor, lrs: Sequence[float], time: float,
          min_steps: int = 20, record_every: int = 1, stop: threading.Event | None = None,
          callback: Callable[[int, dict], None] | None = None, callback_every: int = 0) -> dict:
    """Full-batch GD on every copy, each for time ``time`` (at least ``min_steps`` steps).

    Args:
        params: initial parameters with leading dimension ``C`` (one per copy).
        x: the training inputs.
        y: the training labels.
        lrs: the ``C`` step sizes.
        time: :math:`\\eta_c T_c`; each copy stops after its :math:`T_c` steps.
        min_steps: the fewest steps of any copy.
        record_every: keep bias and loss of every copy every that many steps.
        stop: ends the loop early.
        callback: ``callback(t, state)`` every ``callback_every`` steps.
        callback_every: how often ``callback`` is called (0: never).

    Returns:
        dict with ``params`` (final), ``steps`` (list of :math:`T_c`), ``bias`` / ``loss``
        histories of shape (records, C) at ``history_steps``, and ``dead`` (C bools: every
        unit switched off at the end, so the network outputs 0 forever).
    """
    lr_t = torch.as_tensor(list(lrs), dtype=x.dtype, device=x.device)
    C = params["bias"].shape[0]
    if lr_t.shape != (C,) or not bool((lr_t > 0).all()) or not bool(torch.isfinite(lr_t).all()):
        raise ValueError(f"lrs={list(lrs)!r} is not allowed; give {C} finite step sizes > 0")
    if not (isinstance(time, (int, float)) and math.isfinite(time) and time > 0):
        raise ValueError(f"time={time!r} is not allowed; it must be a finite number > 0")
    _count("min_steps", min_steps, 0)
    _count("record_every", record_every)
    steps = [max(math.ceil(time / float(e) - 1e-9), min_steps) for e in lr_t]
    limit = torch.tensor(steps, device=x.device)
    p = {k: v.detach().clone() for k, v in params.items()}
    hist_steps, biases, losses = [], [], []
    for t in range(max(steps) + 1):
        for v in p.values():
            v.requires_grad_(True)
        loss = logistic_loss(p, x, y)
        if t % record_every == 0 or t == max(steps):
            hist_steps.append(t)
            biases.append(p["bias"].detach().clone())
            losses.append(loss.detach().clone())
        if callback is not None and callback_every and t % callback_every == 0:
            callback(t, {"bias": p["bias"].detach(), "loss": loss.detach()})
        if t == max(steps) or (stop is not None and stop.is_set()):
            break
        grads = torch.autograd.grad(loss.sum(), list(p.values()))
        eta = lr_t * (t < limit).to(x.dtype)
        with torch.no_grad():
            p = {k: v - eta.view(-1, *([1] * (v.ndim - 1))) * g
                 for (k, v), g in zip(p.items(), grads)}
    p = {k: v.detach() for k, v in p.items()}
    return {"params": p, "steps": steps, "history_steps": hist_steps,
            "bias": torch.stack(biases), "loss": torch.stack(losses),
            "dead": (p["bias"] <= dead_bias(x)).tolist()}
