"""Lookahead: k steps forward with any optimiser, then one step back towards the slow weights.

Zhang, Lucas, Hinton, Ba. *Lookahead Optimizer: k steps forward, 1 step back.* NeurIPS 2019
(arXiv 1907.08610).  An inner ("fast") optimiser takes ``k`` steps from the slow weights
:math:`\\phi`; then the slow weights move a fraction :math:`\\alpha` of the way towards the
fast ones and the fast weights restart there:

.. math::

    \\theta_{t,0} = \\phi_t, \\quad \\theta_{t,i} = \\theta_{t,i-1} + A(\\theta_{t,i-1}),
    \\quad \\phi_{t+1} = \\phi_t + \\alpha(\\theta_{t,k} - \\phi_t).

On a quadratic with curvature :math:`\\lambda`, GD multiplies the error by
:math:`r = 1 - \\eta\\lambda` per step, so one Lookahead cycle multiplies the slow error by

.. math::

    \\rho_{LA} = 1 - \\alpha + \\alpha r^k .

It converges iff :math:`|\\rho_{LA}| < 1`: :math:`r^k < 1` and :math:`r^k > 1 - 2/\\alpha`.
For even ``k`` that is :math:`|r| < 1`, GD's own condition :math:`\\eta < 2/\\lambda`; for
odd ``k`` the lower bound allows :math:`r < -((2-\\alpha)/\\alpha)^{1/k}`, i.e.

.. math::

    \\eta < \\eta^* = \\frac{1 + ((2-\\alpha)/\\alpha)^{1/k}}{\\lambda},

beyond GD's :math:`2/\\lambda` (for :math:`\\alpha = 0.5, k = 5`: :math:`2.2457/\\lambda`).
The inner optimiser's state (e.g. momentum) is kept across cycles ("maintain", the
paper's default).

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Lookahead(torch.optim.SGD([w], lr=0.5), alpha=0.5, k=2)
    >>> for _ in range(2):
    ...     opt.zero_grad(); (0.5 * w ** 2).sum().backward(); opt.step()
    >>> round(w.item(), 4)  # fast 1 -> 0.5 -> 0.25, slow 1 + 0.5 (0.25 - 1)
    0.625
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "Lookahead",
    "Paths",
    "exact_noise_floors",
    "lookahead_factor",
    "lookahead_paths",
    "lookahead_threshold",
    "noise_floors",
    "stationary_loss",
]


def _check(alpha, k) -> tuple[float, int]:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (
            math.isfinite(alpha) and 0 < alpha <= 1):
        raise ValueError(f"alpha={alpha!r} is not allowed; use a number in (0, 1]")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} is not allowed; use an integer >= 1")
    return float(alpha), k


def lookahead_factor(lr: float, lam: float, alpha: float = 0.5, k: int = 5) -> float:
    """:math:`1 - \\alpha + \\alpha (1 - \\eta\\lambda)^k`: one cycle's factor on the slow error.

    >>> lookahead_factor(2.2, 1.0, 0.5, 5)  # GD alone would grow by 1.2 per step
    -0.7441...
    """
    alpha, k = _check(alpha, k)
    return 1.0 - alpha + alpha * (1.0 - lr * lam) ** k


def lookahead_threshold(lam: float, alpha: float = 0.5, k: int = 5) -> float:
    """The largest step size for which Lookahead(GD) converges on curvature ``lam`` > 0.

    .. math::

        \\eta^* = (1 + ((2-\\alpha)/\\alpha)^{1/k})/\\lambda \\text{ for odd } k, \\qquad
        \\eta^* = 2/\\lambda \\text{ for even } k.

    >>> round(lookahead_threshold(1.0, 0.5, 5), 4), lookahead_threshold(1.0, 0.5, 4)
    (2.2457, 2.0)
    """
    alpha, k = _check(alpha, k)
    if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam > 0):
        raise ValueError(f"lam={lam!r} is not allowed; use a curvature > 0")
    if k % 2 == 0:
        return 2.0 / lam
    return (1.0 + ((2.0 - alpha) / alpha) ** (1.0 / k)) / lam


class Lookahead(torch.optim.Optimizer):
    """Lookahead around ``base``, which owns the parameters, the step size and its state.

    ``step()`` takes one inner step; every ``k``-th call also pulls the slow weights
    towards the fast ones and resets the fast weights to them.  ``param_groups`` are
    ``base``'s, so schedulers and ``eoslab.core.train.fit`` read and set the inner step size.

    Args:
        base: any optimiser, e.g. ``torch.optim.SGD(model.parameters(), lr=0.1)``.
        alpha: slow step size :math:`\\alpha \\in (0, 1]` (``alpha=1`` is ``base`` itself).
        k: inner steps per cycle, >= 1.

    Attributes:
        inner_steps: inner steps taken so far.
        slow: the slow weights :math:`\\phi`, one tensor per parameter.
    """

    def __init__(self, base: torch.optim.Optimizer, alpha: float = 0.5, k: int = 5):
        if not isinstance(base, torch.optim.Optimizer):
            raise ValueError(  # noqa: TRY004 - the project reports bad inputs as ValueError
                f"base={base!r} is not allowed; give a torch.optim.Optimizer")
        self.alpha, self.k = _check(alpha, k)
        self.base = base
        self.needs_closure = getattr(base, "needs_closure", False)
        super().__init__(base.param_groups, base.defaults)
        self.param_groups, self.defaults = base.param_groups, base.defaults
        self.inner_steps = 0
        self.slow = [p.detach().clone() for p in self._params()]

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    @property
    def synced(self) -> bool:
        """Whether the fast weights equal the slow ones (right after a cycle)."""
        return self.inner_steps % self.k == 0

    @torch.no_grad()
    def step(self, closure=None):
        """One inner step of the base optimiser, then a slow update after every ``k``-th.

        The slow update is :math:`\\phi \\leftarrow \\phi + \\alpha (\\theta - \\phi)` and
        :math:`\\theta \\leftarrow \\phi`.
        """
        loss = self.base.step(closure) if closure is not None else self.base.step()
        self.inner_steps += 1
        if self.inner_steps % self.k == 0:
            params = self._params()
            torch._foreach_lerp_(self.slow, [p.detach() for p in params], self.alpha)
            for p, s in zip(params, self.slow):
                p.copy_(s)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"base": self.base.state_dict(), "slow": [s.clone() for s in self.slow],
                "inner_steps": self.inner_steps, "alpha": self.alpha, "k": self.k}

    def load_state_dict(self, state_dict: dict) -> None:
        self.base.load_state_dict(state_dict["base"])
        self.param_groups = self.base.param_groups
        with torch.no_grad():
            for s, v in zip(self.slow, state_dict["slow"]):
                s.copy_(v)
        self.inner_steps = int(state_dict["inner_steps"])


@dataclass
class Paths:
    """Inner optimiser alone vs Lookahead around it, from the same start and noise.

    Attributes:
        inner: ``(T+1, 2)`` iterates of the inner optimiser alone.
        fast: ``(T+1, 2)`` Lookahead's fast weights after each inner step.
        slow: ``(T//k+1, 2)`` its slow weights, at the start and after each cycle.
        inner_loss, fast_loss, slow_loss: :math:`L` at those points.
        inner_diverged, lookahead_diverged: first step past ``blowup``, or None.
    """

    inner: np.ndarray
    fast: np.ndarray
    slow: np.ndarray
    inner_loss: np.ndarray
    fast_loss: np.ndarray
    slow_loss: np.ndarray
    inner_diverged: int | None
    lookahead_diverged: int | None
    k: int


def _run(hessian, center, start, make, steps, noise, seed, blowup, every=None):
    """Optimise a batch of ``S`` independent 2-D points (``start``: ``(S, 2)``) at once."""
    w = torch.nn.Parameter(torch.as_tensor(np.asarray(start, dtype=np.float64)).clone())
    opt = make([w])
    gen = torch.Generator().manual_seed(seed)
    a, c = torch.as_tensor(hessian), torch.as_tensor(center, dtype=torch.float64)
    kicks = noise * torch.randn(steps, *w.shape, generator=gen, dtype=torch.float64)

    def loss(v):
        e = v - c
        return 0.5 * ((e @ a) * e).sum(-1)

    limit = blowup * max(float(loss(w.detach()).max()), 1.0)
    points, slow, diverged = [w.detach().clone()], [w.detach().clone()], None
    for t in range(steps):
        w.grad = (w.detach() - c) @ a + kicks[t]
        opt.step()
        points.append(w.detach().clone())
        if every and (t + 1) % every == 0:
            slow.append(w.detach().clone())
        worst = float(loss(points[-1]).max())
        if not math.isfinite(worst) or worst > limit:
            diverged = t + 1
            break
    return torch.stack(points).numpy(), torch.stack(slow).numpy(), diverged


def lookahead_paths(quadratic, start: Sequence[float], lr: float, steps: int, *,
                    alpha: float = 0.5, k: int = 5, momentum: float = 0.0, noise: float = 0.0,
                    seed: int = 0, blowup: float = 1e6, batch: int | None = None) -> Paths:
    """SGD (heavy ball if ``momentum``) alone and inside :class:`Lookahead` on a 2-D quadratic.

    The gradient is :math:`A(w - w^*) + \\sigma\\xi_t` with :math:`\\xi_t \\sim N(0, I)`
    drawn from ``seed`` (the same draws for both runs); both are cut at the first step
    whose loss exceeds ``blowup`` times the first one (or ``blowup`` if that is below 1).
    ``quadratic`` is an :class:`eoslab.chapters.ch01_quadratic_stability.quadratic.Quadratic`.
    ``batch=S`` runs ``S`` independent noisy copies at once (arrays gain a copy axis after
    the step axis; a run is cut when any copy passes ``blowup``).
    """
    alpha, k = _check(alpha, k)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is not allowed; use an integer >= 1")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise={noise!r} is not allowed; use a number >= 0")
    start = [float(v) for v in start]

    def sgd(params):
        return torch.optim.SGD(params, lr=lr, momentum=momentum)

    args = (quadratic.hessian, quadratic.center, [start] if batch is None else [start] * batch)
    inner, _, inner_div = _run(*args, sgd, steps, noise, seed, blowup)
    fast, slow, la_div = _run(*args, lambda p: Lookahead(sgd(p), alpha, k), steps, noise,
                              seed, blowup, every=k)
    if batch is None:
        inner, fast, slow = inner[:, 0], fast[:, 0], slow[:, 0]
    return Paths(inner, fast, slow, quadratic.loss(inner), quadratic.loss(fast),
                 quadratic.loss(slow), inner_div, la_div, k)


def stationary_loss(losses: np.ndarray, last: float = 0.5) -> float:
    """Mean loss over the last fraction ``last`` of a path (its noise floor).

    >>> stationary_loss(np.array([9.0, 1.0, 2.0, 3.0]))
    2.5
    """
    if not 0 < last <= 1:
        raise ValueError(f"last={last!r} is not allowed; use a fraction in (0, 1]")
    losses = np.asarray(losses, dtype=np.float64)
    cut = int(len(losses) * (1 - last))  # along the step axis; copies (if any) are averaged
    return float(np.mean(losses[cut:]))


def noise_floors(quadratic, lr: float, noise: float, steps: int, seeds: int, *,
                 alpha: float = 0.5, k: int = 5, momentum: float = 0.0) -> dict:
    """Mean stationary loss of SGD alone and of Lookahead's slow weights over ``seeds`` runs.

    The ``seeds`` runs go as one batch from the minimiser, so only the noise moves them;
    the second half of the paths is averaged over steps and copies (:func:`stationary_loss`).
    Returns ``{"inner", "slow", "fast", "ratio"}`` with ``ratio = slow / inner`` (< 1:
    Lookahead has the lower variance, Zhang et al. 2019, Prop. 2).
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds={seeds!r} is not allowed; use an integer >= 1")
    p = lookahead_paths(quadratic, quadratic.center, lr, steps, alpha=alpha, k=k,
                        momentum=momentum, noise=noise, seed=0, batch=seeds)
    means = {"inner": stationary_loss(p.inner_loss), "slow": stationary_loss(p.slow_loss),
             "fast": stationary_loss(p.fast_loss)}
    means["ratio"] = means["slow"] / means["inner"] if means["inner"] > 0 else float("nan")
    return means


def exact_noise_floors(eigenvalues: Sequence[float], lr: float, noise: float, *,
                       alpha: float = 0.5, k: int = 5) -> dict:
    """Stationary :math:`E[L]` of SGD alone and of Lookahead's slow weights, exactly.

    Per eigen-direction (:math:`r = 1 - \\eta\\lambda`, gradient noise :math:`\\sigma`), SGD
    has :math:`\\mathrm{Var} = \\eta^2\\sigma^2/(1-r^2)`; one Lookahead cycle is
    :math:`\\phi' = \\rho\\phi + \\alpha\\sum_j r^{k-1-j}(-\\eta\\sigma\\xi_j)`, so

    .. math::

        \\mathrm{Var}_\\phi = \\frac{\\alpha^2\\eta^2\\sigma^2 (1-r^{2k})/(1-r^2)}{1-\\rho^2},
        \\qquad E[L] = \\tfrac12 \\textstyle\\sum_i \\lambda_i \\mathrm{Var}_i .

    Returns ``{"inner", "slow", "ratio"}`` (``nan`` where a method is unstable).

    With :math:`\\eta\\lambda = 1` (so :math:`r = 0`),
    :math:`\\mathrm{Var}_\\phi = \\alpha^2\\eta^2\\sigma^2/(1-(1-\\alpha)^2)`:

    >>> f = exact_noise_floors((1.0,), 1.0, 0.1)
    >>> round(f["inner"], 6), round(f["slow"], 6)
    (0.005, 0.001667)
    """
    alpha, k = _check(alpha, k)
    inner = slow = 0.0
    for lam in eigenvalues:
        r = 1.0 - lr * lam
        rho = lookahead_factor(lr, lam, alpha, k)
        sum_r = float(k) if abs(r) == 1 else (1 - r ** (2 * k)) / (1 - r * r)
        inner += 0.5 * lam * (lr * noise) ** 2 / (1 - r * r) if abs(r) < 1 else float("nan")
        slow += (0.5 * lam * (alpha * lr * noise) ** 2 * sum_r / (1 - rho * rho)
                 if abs(rho) < 1 else float("nan"))
    return {"inner": inner, "slow": slow,
            "ratio": slow / inner if inner > 0 else float("nan")}
