"""Chapter 19's experiment: Lookahead around SGD on a 2-D quadratic, and its noise floor.

Lookahead (Zhang, Lucas, Hinton, Ba, NeurIPS 2019, arXiv 1907.08610) takes ``k`` fast SGD
steps and then moves the slow weights a fraction ``alpha`` towards the fast ones. Along
an eigenvector with :math:`r = 1 - \\eta\\lambda` one cycle multiplies the error by
:math:`\\rho = 1 - \\alpha + \\alpha r^k`, so Lookahead converges iff :math:`|\\rho| < 1`:
past GD's edge :math:`2/\\lambda` when ``k`` is odd, up to
:math:`\\eta^* = (1 + ((2-\\alpha)/\\alpha)^{1/k})/\\lambda`
(:func:`eoslab.optimizers.lookahead.lookahead_threshold`). Under gradient noise the slow
weights settle at a lower mean loss than SGD alone (the paper's Prop. 2), measured over
many seeds (:func:`eoslab.optimizers.lookahead.noise_floors`) and computed exactly
(:func:`eoslab.optimizers.lookahead.exact_noise_floors`).

:func:`experiment` draws both paths for the reader's settings and measures the noise
floors for the preset's ``variance`` setting. The floors depend only on the quadratic,
``variance``, ``alpha`` and ``k``, so they are remembered: moving eta or sigma reuses
them.

Example:
    >>> from eoslab.chapters.presets import get_preset
    >>> result = experiment(get_preset("19", "quick"), {"lr": 2.1})
    >>> result["status"], result["floors"]["ratio"] < 1
    ('finished', True)
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import numpy as np

from eoslab.chapters.ch01_quadratic_stability.quadratic import (
    Quadratic,
    default_levels,
    level_sets,
)
from eoslab.optimizers.lookahead import (
    exact_noise_floors,
    lookahead_factor,
    lookahead_paths,
    lookahead_threshold,
    noise_floors,
)
from eoslab.ui.plots import rows

__all__ = ["LR_MAX", "experiment", "floor_text", "lookahead_data", "lookahead_verdict",
           "noise_floor"]

LR_MAX = 3.0  # the step-size axis of the stability diagram (and the slider's top)


def lookahead_verdict(quadratic: Quadratic, lr: float, alpha: float, k: int, paths=None) -> str:
    """The status sentence: GD alone vs Lookahead at this step size, with both thresholds.

    "diverged" is said of the app's optimiser, Lookahead, only; GD alone past its edge
    "blows up".

    >>> lookahead_verdict(Quadratic((1.0, 0.1)), 2.1, 0.5, 5)
    'Lookahead(alpha=0.5, k=5): converges (eta = 2.1 < eta* = 2.25). GD alone: unstable (eta = 2.1 > 2/lambda_max = 2).'
    """  # noqa: E501
    lam = quadratic.lambda_max
    gd_edge, la_edge = 2.0 / lam, lookahead_threshold(lam, alpha, k)
    rho = max(abs(lookahead_factor(lr, v, alpha, k)) for v in quadratic.eigenvalues if v > 0)
    gd = (f"converges (eta = {lr:.3g} < 2/lambda_max = {gd_edge:.3g})" if lr < gd_edge else
          f"unstable (eta = {lr:.3g} > 2/lambda_max = {gd_edge:.3g})")
    la = (f"converges (eta = {lr:.3g} < eta* = {la_edge:.3g})" if rho < 1 else
          f"does not converge (eta = {lr:.3g} > eta* = {la_edge:.3g})")
    if paths is not None and paths.inner_diverged is not None:
        gd = f"blows up at step {paths.inner_diverged} " + gd.replace("unstable ", "")
    if paths is not None and paths.lookahead_diverged is not None:
        la = (f"diverged at step {paths.lookahead_diverged} "
              + la.replace("does not converge ", ""))
    return f"Lookahead(alpha={alpha:.3g}, k={k}): {la}. GD alone: {gd}."


def lookahead_data(quadratic: Quadratic, paths, lr: float, alpha: float, k: int,
                   max_lr: float = LR_MAX, n_rates: int = 150) -> dict:
    """The chart's datasets: levels, paths (path, step, x, y, loss), rates, thresholds, current.

    ``clipped`` holds one note when a rate is above the panel's top, 1.5, or none.

    The rates are GD alone's :math:`\\max_i|1-\\eta\\lambda_i|` and Lookahead's
    :math:`\\max_i|\\rho_i|^{1/k}` per step, on ``n_rates`` step sizes up to ``max_lr``.
    """
    start = paths.inner[0]
    levels = default_levels(quadratic, start)
    level_rows = []
    for level, curve in zip(levels, level_sets(quadratic, levels, n=64)):
        level_rows += rows({"x": curve[:, 0], "y": curve[:, 1],
                                  "order": range(len(curve))}, level=f"{level:.3g}")
    path_rows = []
    for name, pts, losses, stride in (("GD alone", paths.inner, paths.inner_loss, 1),
                                      ("fast weights", paths.fast, paths.fast_loss, 1),
                                      ("slow weights", paths.slow, paths.slow_loss, k)):
        path_rows += rows({"step": np.arange(len(pts)) * stride, "x": pts[:, 0],
                                 "y": pts[:, 1], "loss": losses}, path=name)
    grid = np.linspace(max_lr / n_rates, max_lr, n_rates)
    lams = [v for v in quadratic.eigenvalues if v > 0]
    gd = [max(abs(1 - g * v) for v in lams) for g in grid]
    la = [max(abs(lookahead_factor(g, v, alpha, k)) for v in lams) ** (1 / k) for g in grid]
    name = f"Lookahead α = {alpha:.2g}, k = {k}"
    rate_rows = (rows({"lr": grid, "rate": gd}, method="GD alone")
                 + rows({"lr": grid, "rate": la}, method=name))
    lam = quadratic.lambda_max
    return {"levels": level_rows, "paths": path_rows, "rates": rate_rows,
            "thresholds": [{"method": "GD alone", "threshold": 2 / lam},
                           {"method": name, "threshold": lookahead_threshold(lam, alpha, k)}],
            "current": [{"lr": lr}],
            "clipped": ([{"note": f"factors above 1.5 drawn at 1.5 (up to {max(gd + la):.3g})"}]
                        if max(gd + la) > 1.5 else [])}


@functools.lru_cache(maxsize=32)
def _floors(quadratic: Quadratic, variance, alpha: float, k: int, momentum: float) -> tuple:
    got = noise_floors(quadratic, variance.lr, variance.noise, variance.steps, variance.seeds,
                       alpha=alpha, k=k, momentum=momentum)
    exact = exact_noise_floors(quadratic.eigenvalues, variance.lr, variance.noise,
                               alpha=alpha, k=k)
    return tuple(got.items()), tuple(exact.items())


def noise_floor(quadratic: Quadratic, variance, alpha: float, k: int,
                momentum: float = 0.0) -> dict:
    """Measured and exact stationary mean losses of SGD alone and the slow weights.

    Returns ``{"lr", "noise", "seeds", "inner", "slow", "fast", "ratio", "exact"}`` with
    ``exact = {"inner", "slow", "ratio"}``; ``variance`` is the preset's
    :class:`~eoslab.chapters.ch19_lookahead.meta.VarianceSpec`.
    """
    got, exact = _floors(quadratic, variance, float(alpha), int(k), float(momentum))
    return {"lr": variance.lr, "noise": variance.noise, "seeds": variance.seeds, **dict(got),
            "exact": dict(exact)}


def floor_text(floors: dict) -> str:
    """The noise-floor sentence of a result's ``floors``.

    >>> floor_text({"lr": 1.0, "noise": 0.1, "seeds": 4, "inner": 0.0079, "slow": 0.0027,
    ...             "ratio": 0.35, "exact": {"ratio": 0.37}})[:41]
    'Noise floor at eta = 1, sigma = 0.1 (4 se'
    """
    return (f"Noise floor at eta = {floors['lr']:.3g}, sigma = {floors['noise']:.3g} "
            f"({floors['seeds']} seeds): mean loss of SGD alone {floors['inner']:.3g}, of "
            f"Lookahead's slow weights {floors['slow']:.3g} (ratio {floors['ratio']:.2f}; "
            f"exact {floors['exact']['ratio']:.2f}).")


def experiment(preset, settings: dict, *, emit: Callable | None = None,
               stop: threading.Event | None = None) -> dict:
    """SGD alone and Lookahead(SGD) from the preset's start, then the noise floors.

    Args:
        preset: a :class:`~eoslab.chapters.ch19_lookahead.meta.LookaheadPreset`.
        settings: any of its fields (``lr``, ``alpha``, ``k``, ``noise``) overriding the
            preset's values.
        emit: receives the paths' datasets before the noise floors are measured.
        stop: when set by then, the floors are skipped and the result is ``"stopped"``.

    Returns:
        ``status`` (``"diverged"`` when Lookahead blew up, else ``"finished"``),
        ``datasets`` (:func:`lookahead_data`), ``verdict`` (:func:`lookahead_verdict`),
        ``threshold`` (:math:`\\eta^*`), ``inner_diverged`` and ``lookahead_diverged``
        (steps or ``None``), ``floors`` (:func:`noise_floor`), ``state`` (``converged``
        when Lookahead's factor is below 1, :mod:`eoslab.ui.status`) and, on divergence,
        ``diverged = {"step", "loss", "lr", "stage"}``.
    """
    p = preset.replace(**settings)
    quadratic = Quadratic(p.eigenvalues, angle=p.angle)
    paths = lookahead_paths(quadratic, p.start, p.lr, p.steps, alpha=p.alpha, k=p.k,
                            momentum=p.momentum, noise=p.noise)
    datasets = lookahead_data(quadratic, paths, p.lr, p.alpha, p.k)
    if emit is not None:
        emit(datasets, 1)
    if stop is not None and stop.is_set():
        return {"status": "stopped", "datasets": datasets}
    result = {
        "status": "finished" if paths.lookahead_diverged is None else "diverged",
        "datasets": datasets,
        "verdict": lookahead_verdict(quadratic, p.lr, p.alpha, p.k, paths),
        "threshold": lookahead_threshold(quadratic.lambda_max, p.alpha, p.k),
        "inner_diverged": paths.inner_diverged,
        "lookahead_diverged": paths.lookahead_diverged,
        "floors": noise_floor(quadratic, p.variance, p.alpha, p.k, p.momentum),
    }
    rho = max(abs(lookahead_factor(p.lr, v, p.alpha, p.k)) for v in quadratic.eigenvalues
              if v > 0)
    result["state"] = "converged" if rho < 1 else "finished"  # eoslab.ui.status
    if paths.lookahead_diverged is not None:
        result["diverged"] = {"step": paths.lookahead_diverged,
                              "loss": float(paths.fast_loss[-1]), "lr": p.lr,
                              "stage": "Lookahead"}
    return result
