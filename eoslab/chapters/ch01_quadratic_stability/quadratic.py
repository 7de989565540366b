"""Exact gradient descent and heavy ball on a 2-D quadratic, and their stability thresholds.

The quadratic is

.. math::

    L(w) = \\tfrac12 (w - w^*)^\\top A (w - w^*), \\qquad
    A = R(\\theta)\\,\\mathrm{diag}(\\lambda_1, \\lambda_2)\\,R(\\theta)^\\top,

with :math:`R(\\theta)` the rotation by ``angle`` degrees.  GD,
:math:`w_{t+1} = w_t - \\eta \\nabla L(w_t)`, moves the error :math:`e_t = w_t - w^*` by
:math:`e_{t+1} = (I - \\eta A) e_t`, so along eigenvector :math:`i` it is multiplied by
:math:`1 - \\eta\\lambda_i` each step: it converges iff :math:`|1 - \\eta\\lambda_i| < 1` for
every :math:`i`, i.e. :math:`0 < \\eta < 2/\\lambda_{\\max}` (for :math:`\\lambda_i > 0`).

Heavy ball in PyTorch's convention (:mod:`eoslab.core.optim`),
:math:`b_{t+1} = \\beta b_t + \\nabla L(w_t)`, :math:`w_{t+1} = w_t - \\eta b_{t+1}`, is
:math:`w_{t+1} = w_t - \\eta\\nabla L(w_t) + \\beta (w_t - w_{t-1})`.  Along eigenvector
:math:`i` the pair :math:`(e_{t+1}, e_t)` is multiplied by the companion matrix

.. math::

    M = \\begin{pmatrix} 1 + \\beta - \\eta\\lambda & -\\beta \\\\ 1 & 0 \\end{pmatrix},

whose spectral radius is below one iff :math:`0 < \\eta\\lambda < 2 + 2\\beta`
(for :math:`0 \\le \\beta < 1`): the classical threshold :math:`(2 + 2\\beta)/\\lambda_{\\max}`
used by Cohen et al., ICLR 2021 (arXiv 2103.00065) for momentum.

Example:
    >>> q = Quadratic((2.0, 0.5), angle=30.0)
    >>> stability_threshold(q.lambda_max), stability_threshold(q.lambda_max, momentum=0.5)
    (1.0, 1.5)
    >>> simulate(q, (1.0, 1.0), lr=0.9, steps=200).diverged_at is None
    True
    >>> simulate(q, (1.0, 1.0), lr=1.1, steps=200).diverged_at is not None
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Quadratic", "Trajectory", "stability_threshold", "iteration_matrix",
           "spectral_radius", "convergence_rate", "convergence_rates", "converges", "simulate",
           "level_sets", "default_levels"]


def _finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} is not allowed; use a finite number")
    return float(value)


def _momentum(beta) -> float:
    beta = _finite("momentum", beta)
    if not 0 <= beta < 1:
        raise ValueError(f"momentum={beta!r} is not allowed; use a number in [0, 1)")
    return beta


def _lr(lr) -> float:
    lr = _finite("lr", lr)
    if lr <= 0:
        raise ValueError(f"lr={lr!r} is not allowed; the learning rate must be > 0")
    return lr


@dataclass(frozen=True)
class Quadratic:
    """:math:`L(w) = \\frac12 (w-w^*)^\\top R\\,\\mathrm{diag}(\\lambda)R^\\top (w-w^*)` in 2-D.

    Attributes:
        eigenvalues: :math:`(\\lambda_1, \\lambda_2)`, finite, >= 0.
        angle: rotation of the first eigenvector from the x axis, in degrees.
        center: the minimiser :math:`w^*`.
    """

    eigenvalues: tuple = (2.0, 0.5)
    angle: float = 0.0
    center: tuple = (0.0, 0.0)

    def __post_init__(self):
        lam = tuple(_finite("eigenvalue", v) for v in self.eigenvalues)
        if len(lam) != 2 or min(lam) < 0:
            raise ValueError(f"eigenvalues={self.eigenvalues!r} is not allowed; use two finite "
                             "numbers >= 0")
        center = tuple(_finite("center", v) for v in self.center)
        if len(center) != 2:
            raise ValueError(f"center={self.center!r} is not allowed; use two numbers")
        object.__setattr__(self, "eigenvalues", lam)
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "angle", _finite("angle", self.angle))

    @property
    def rotation(self) -> np.ndarray:
        """:math:`R(\\theta)`, whose columns are the eigenvectors."""
        t = math.radians(self.angle)
        return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])

    @property
    def hessian(self) -> np.ndarray:
        """:math:`A = R\\,\\mathrm{diag}(\\lambda)\\,R^\\top`."""
        r = self.rotation
        return r @ np.diag(self.eigenvalues) @ r.T

    @property
    def lambda_max(self) -> float:
        return max(self.eigenvalues)

    def loss(self, w) -> np.ndarray:
        """:math:`L(w)` for points ``w`` of shape ``(..., 2)``."""
        e = np.asarray(w, dtype=np.float64) - np.asarray(self.center)
        return 0.5 * np.einsum("...i,ij,...j->...", e, self.hessian, e)

    def grad(self, w) -> np.ndarray:
        """:math:`\\nabla L(w) = A (w - w^*)` for points of shape ``(..., 2)``."""
        e = np.asarray(w, dtype=np.float64) - np.asarray(self.center)
        return e @ self.hessian.T


def stability_threshold(lambda_max: float, momentum: float = 0.0) -> float:
    """The largest stable step size :math:`(2 + 2\\beta)/\\lambda_{\\max}` (GD: :math:`\\beta=0`).

    >>> stability_threshold(4.0)
    0.5
    """
    lam = _finite("lambda_max", lambda_max)
    if lam <= 0:
        raise ValueError(f"lambda_max={lambda_max!r} is not allowed; a threshold needs a "
                         "positive curvature (any step size is stable along lambda <= 0 "
                         "directions only if lambda = 0)")
    return (2.0 + 2.0 * _momentum(momentum)) / lam


def iteration_matrix(lr: float, lam: float, momentum: float = 0.0) -> np.ndarray:
    """The companion matrix :math:`M` mapping :math:`(e_t, e_{t-1})` to :math:`(e_{t+1}, e_t)`.

    >>> iteration_matrix(0.5, 2.0, 0.25).tolist()
    [[0.25, -0.25], [1.0, 0.0]]
    """
    beta = _momentum(momentum)
    a = 1.0 + beta - _lr(lr) * _finite("lam", lam)
    return np.array([[a, -beta], [1.0, 0.0]])


def spectral_radius(lr: float, lam: float, momentum: float = 0.0) -> float:
    """:math:`\\rho(M)`: the asymptotic factor by which the error along :math:`\\lambda` shrinks.

    For GD (:math:`\\beta = 0`) this is :math:`|1 - \\eta\\lambda|`.
    """
    return float(max(abs(np.linalg.eigvals(iteration_matrix(lr, lam, momentum)))))


def convergence_rate(lr: float, eigenvalues: Sequence[float], momentum: float = 0.0) -> float:
    """The slowest factor :math:`\\max_i \\rho(M_i)` over the eigen-directions."""
    return max(spectral_radius(lr, lam, momentum) for lam in eigenvalues)


def convergence_rates(lrs: Sequence[float], eigenvalues: Sequence[float],
                      momentum: float = 0.0) -> np.ndarray:
    """:func:`convergence_rate` for many step sizes at once, in closed form.

    The eigenvalues of :math:`M` solve :math:`z^2 - a z + \\beta = 0` with
    :math:`a = 1 + \\beta - \\eta\\lambda`: for :math:`a^2 \\ge 4\\beta` the larger modulus is
    :math:`(|a| + \\sqrt{a^2 - 4\\beta})/2`, otherwise both have modulus :math:`\\sqrt\\beta`.

    >>> convergence_rates([0.1, 0.9], (2.0, 0.5)).round(6).tolist()
    [0.95, 0.8]
    """
    beta = _momentum(momentum)
    lrs = np.asarray(lrs, dtype=np.float64)[:, None]
    a = 1.0 + beta - lrs * np.asarray(eigenvalues, dtype=np.float64)[None, :]
    disc = a * a - 4.0 * beta
    real = (np.abs(a) + np.sqrt(np.maximum(disc, 0.0))) / 2.0
    return np.where(disc >= 0, real, math.sqrt(beta)).max(axis=1)


def converges(lr: float, eigenvalues: Sequence[float], momentum: float = 0.0) -> bool:
    """Whether GD / heavy ball converges from every start: the rate is below one."""
    return convergence_rate(lr, eigenvalues, momentum) < 1.0


@dataclass
class Trajectory:
    """Iterates of GD / heavy ball on a :class:`Quadratic`.

    Attributes:
        points: ``(T+1, 2)`` iterates :math:`w_0, \\dots, w_T` (cut at divergence).
        losses: ``(T+1,)`` values :math:`L(w_t)`.
        diverged_at: first step whose loss passed ``blowup`` times the initial loss, or None.
        lr, momentum: the step size and :math:`\\beta` used.
    """

    points: np.ndarray
    losses: np.ndarray
    diverged_at: int | None
    lr: float
    momentum: float

    @property
    def steps(self) -> np.ndarray:
        return np.arange(len(self.losses))


def simulate(quadratic: Quadratic, start: Sequence[float], lr: float, steps: int,
             momentum: float = 0.0, blowup: float = 1e6) -> Trajectory:
    """Run GD (``momentum=0``) or heavy ball for ``steps`` steps from ``start``, exactly.

    The run is cut at the first step whose loss exceeds ``blowup`` times the initial one
    (so a chart never receives numbers that overflow); ``diverged_at`` reports it.
    """
    lr, beta = _lr(lr), _momentum(momentum)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps={steps!r} is not allowed; use an integer >= 0")
    w = np.array([_finite("start", v) for v in start], dtype=np.float64)
    if w.shape != (2,):
        raise ValueError(f"start={start!r} is not allowed; use a point (x, y)")
    a, center = quadratic.hessian, np.asarray(quadratic.center)
    points = np.empty((steps + 1, 2))
    points[0] = w
    buffer = np.zeros(2)
    limit = blowup * max(float(quadratic.loss(w)), 1e-300)
    diverged_at, last = None, steps
    for t in range(steps):
        buffer = beta * buffer + a @ (w - center)
        w = w - lr * buffer
        points[t + 1] = w
        value = float(quadratic.loss(w))
        if not math.isfinite(value) or value > limit:
            diverged_at, last = t + 1, t + 1
            break
    points = points[:last + 1]
    return Trajectory(points, quadratic.loss(points), diverged_at, lr, beta)


def level_sets(quadratic: Quadratic, levels: Sequence[float], n: int = 96) -> list[np.ndarray]:
    """Closed curves :math:`\\{w : L(w) = c\\}` for each level ``c``, each ``(n+1, 2)``.

    With :math:`A = R\\,\\mathrm{diag}(\\lambda)R^\\top` the level set is the ellipse
    :math:`w^* + R\\,(\\sqrt{2c/\\lambda_1}\\cos\\phi, \\sqrt{2c/\\lambda_2}\\sin\\phi)`.
    A zero eigenvalue gives two parallel lines, drawn as a long thin ellipse.

    >>> q = Quadratic((2.0, 0.5), angle=45.0)
    >>> bool(np.allclose(q.loss(level_sets(q, [0.3])[0]), 0.3))
    True
    """
    phi = np.linspace(0.0, 2 * math.pi, n + 1)
    lam = np.maximum(np.asarray(quadratic.eigenvalues), 1e-6)
    curves = []
    for c in levels:
        c = _finite("level", c)
        if c < 0:
            raise ValueError(f"level={c!r} is not allowed; a quadratic with lambda >= 0 only "
                             "takes values >= 0")
        radii = np.sqrt(2 * c / lam)
        local = np.stack([radii[0] * np.cos(phi), radii[1] * np.sin(phi)], axis=1)
        curves.append(local @ quadratic.rotation.T + np.asarray(quadratic.center))
    return curves


def default_levels(quadratic: Quadratic, start: Sequence[float], count: int = 6) -> list[float]:
    """``count`` geometrically spaced levels from :math:`L(w_0)` down by factors of 4."""
    top = float(quadratic.loss(np.asarray(start, dtype=np.float64)))
    top = top if top > 0 else 1.0
    return [top * 4.0 ** (-k) for k in range(count)]
