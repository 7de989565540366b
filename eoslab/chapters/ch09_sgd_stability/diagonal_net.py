"""The second half of Wu and Su: SGD's stable minima have a small parameter norm.

Wu and Su, "The Implicit Regularization of Dynamical Stability in Stochastic Gradient
Descent", ICML 2023 (arXiv 2305.17490), show that for some models the sharpness that
stability bounds is *equivalent to a norm of the model*.  This module works on their
diagonal linear network

.. math::

    f(x) = \\langle \\beta, x\\rangle, \\qquad \\beta = u\\odot u - v\\odot v,
    \\qquad L = \\frac1{2n}\\sum_i (f(x_i) - y_i)^2 ,

started at :math:`u = v = \\alpha\\mathbf 1` (so :math:`\\beta = 0`).  At an interpolating
minimum the Hessian is the Gauss-Newton :math:`H = J^\\top J/n` with the rows
:math:`J_i = (2u\\odot x_i, -2v\\odot x_i)`, so

.. math::

    \\mathrm{Tr}\\,H = 4\\sum_j m_j\\,(u_j^2 + v_j^2) \\;\\ge\\; 4\\,(\\min_j m_j)\\,
    \\lVert\\beta\\rVert_1, \\qquad m_j = \\frac1n\\sum_i x_{ij}^2 ,

because :math:`u_j^2 + v_j^2 \\ge |u_j^2 - v_j^2|`.  A minimum where SGD with one example
per step is stable has :math:`\\mathrm{Tr}\\,H \\lesssim 2/\\eta` (the trace criterion of
:mod:`~eoslab.chapters.ch09_sgd_stability.sgd_noise`), hence
:math:`\\lVert\\beta\\rVert_1 \\le 1/(2\\eta \\min_j m_j)`: the larger the step, the smaller the
:math:`\\ell_1` norm of the predictor, and a sparse teacher is recovered from fewer samples
than dimensions.  GD's stability only bounds :math:`\\lambda_{\\max}(H)`, which leaves the
norm free.  :func:`norm_experiment` finds GD's (dense) minimum from a large initialisation,
then runs SGD with batch ``batch`` at each step size from it, as in the chapter's first
half, and reports :math:`\\mathrm{Tr}\\,H`, :math:`\\lambda_{\\max}`, :math:`\\lVert\\beta\\rVert_1`
and the test error where each run ends.

Example:
    >>> prob = DiagonalProblem(n=8, d=12, k=2, n_test=50)
    >>> X, y, _Xt, _yt = prob.data()
    >>> u = v = np.full(12, 0.3)
    >>> rep = minimum_report(prob, u, v)
    >>> bool(abs(rep["trace"] - 4 * float((X ** 2).mean(0) @ (u * u + v * v))) < 1e-9)
    True
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

__all__ = ["DiagonalProblem", "minimum_report", "norm_experiment", "train"]


@dataclass(frozen=True, kw_only=True)
class DiagonalProblem:
    """A sparse regression problem and the diagonal net that fits it.

    ``n`` training and ``n_test`` test inputs :math:`x \\sim N(0, I_d)`, labels
    :math:`y = \\langle\\beta^*, x\\rangle` with :math:`\\beta^*` one on its first ``k``
    coordinates (seed ``seed``); the net starts at :math:`u = v = \\alpha` (``alpha``); GD
    (``gd_lr``, ``gd_steps``) finds its minimum; SGD with ``batch`` examples per step runs
    ``sgd_steps`` steps at each of ``lrs`` from there (batches drawn with seed ``seed + 1``).
    """

    n: int = 40
    d: int = 60
    k: int = 3
    alpha: float = 0.3
    n_test: int = 500
    gd_lr: float = 0.01
    gd_steps: int = 5000
    sgd_steps: int = 8000
    batch: int = 1
    lrs: tuple[float, ...] = (0.02, 0.04, 0.06)
    seed: int = 0

    def data(self):
        """``(X, y, X_test, y_test)`` as float64 arrays."""
        rng = np.random.default_rng(self.seed)
        beta = np.zeros(self.d)
        beta[:self.k] = 1.0
        X = rng.standard_normal((self.n, self.d))
        Xt = rng.standard_normal((self.n_test, self.d))
        return X, X @ beta, Xt, Xt @ beta


def train(X, y, u, v, lr: float, batch: int, steps: int, seed: int = 1,
          stop: threading.Event | None = None) -> dict:
    """SGD (``batch < n``, without replacement within a step) or GD on the diagonal net.

    Returns ``u``, ``v``, ``status`` (``"finished"``, ``"diverged"`` or ``"stopped"``) and,
    when diverged, ``step`` (a weight above 1e6 or not finite).
    """
    n = X.shape[0]
    if not (isinstance(batch, int) and 1 <= batch <= n):
        raise ValueError(f"batch={batch!r} is not allowed; use an integer in [1, {n}]")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} is not allowed; use a step size > 0")
    rng = np.random.default_rng(seed)
    u, v = np.array(u, dtype=np.float64), np.array(v, dtype=np.float64)
    for t in range(steps):
        if stop is not None and t % 500 == 0 and stop.is_set():
            return {"u": u, "v": v, "status": "stopped"}
        idx = rng.choice(n, batch, replace=False) if batch < n else slice(None)
        Xb = X[idx]
        g = Xb.T @ (Xb @ (u * u - v * v) - y[idx]) / Xb.shape[0]
        u, v = u - 2 * lr * g * u, v + 2 * lr * g * v
        if not (np.isfinite(u).all() and np.isfinite(v).all()) or max(
                np.abs(u).max(), np.abs(v).max()) > 1e6:
            return {"u": u, "v": v, "status": "diverged", "step": t + 1}
    return {"u": u, "v": v, "status": "finished"}


def minimum_report(problem: DiagonalProblem, u, v) -> dict:
    """Loss, trace, sharpness, l1 norm, test error and l1 bound of the net at ``(u, v)``.

    Keys ``loss``, ``trace`` (:math:`\\mathrm{Tr}H`), ``sharpness``
    (:math:`\\lambda_{\\max}(H)`), ``l1`` (:math:`\\lVert\\beta\\rVert_1`), ``test`` (mean
    squared test error) and ``l1_bound`` (:math:`\\mathrm{Tr}H/(4\\min_j m_j)`).

    :math:`H = J^\\top J/n` is the Gauss-Newton Hessian (exact at an interpolating minimum).
    """
    X, y, Xt, yt = problem.data()
    beta = u * u - v * v
    J = np.concatenate([2 * X * u, -2 * X * v], axis=1)
    H = J.T @ J / X.shape[0]
    trace = float(np.trace(H))
    return {"loss": float(0.5 * np.mean((X @ beta - y) ** 2)), "trace": trace,
            "sharpness": float(np.linalg.eigvalsh(H)[-1]),
            "l1": float(np.abs(beta).sum()),
            "test": float(np.mean((Xt @ beta - yt) ** 2)),
            "l1_bound": trace / (4 * float((X ** 2).mean(0).min()))}


def norm_experiment(problem: DiagonalProblem, *, stop=None, on_run=None) -> dict:
    """GD's minimum, then SGD (``problem.batch``) at each of ``problem.lrs`` from it.

    Returns ``gd`` (:func:`minimum_report` of GD's minimum), ``runs`` (one row per step
    size: ``lr``, ``status``, ``step`` when diverged, and the report where SGD ends) and
    ``status`` (``"stopped"`` if stopped, else ``"finished"``; a diverged step size is a
    row of its own and the others still run).  ``on_run(out)`` sees the partial result
    after each step size.
    """
    X, y, _, _ = problem.data()
    start = np.full(problem.d, float(problem.alpha))
    gd = train(X, y, start, start, problem.gd_lr, problem.n, problem.gd_steps, stop=stop)
    if gd["status"] != "finished":
        return {"status": gd["status"], "gd": None, "runs": []}
    out = {"status": "finished", "gd": minimum_report(problem, gd["u"], gd["v"]), "runs": []}
    for lr in problem.lrs:
        run = train(X, y, gd["u"], gd["v"], lr, problem.batch, problem.sgd_steps,
                    seed=problem.seed + 1, stop=stop)
        if run["status"] == "stopped":
            out["status"] = "stopped"
            break
        row = {"lr": lr, "status": run["status"]}
        if run["status"] == "diverged":
            row["step"] = run["step"]
        else:
            row.update(minimum_report(problem, run["u"], run["v"]))
        out["runs"].append(row)
        if on_run is not None:
            on_run(out)
    return out
