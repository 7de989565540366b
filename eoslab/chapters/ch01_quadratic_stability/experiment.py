"""Chapter 01's experiment: GD or heavy ball on the 2-D quadratic, exactly, and its verdict.

With :math:`A = R(\\theta)\\,\\mathrm{diag}(\\lambda_1, \\lambda_2)\\,R(\\theta)^\\top`, GD
moves the error along eigenvector :math:`i` by :math:`1 - \\eta\\lambda_i` per step, so it
converges iff :math:`\\eta < 2/\\lambda_{\\max}`; heavy ball :math:`\\beta` moves the edge
to :math:`(2 + 2\\beta)/\\lambda_{\\max}` (Polyak 1964; Cohen et al., ICLR 2021, arXiv
2103.00065). :func:`experiment` runs :func:`~.quadratic.simulate` on the preset with the
reader's settings and returns the chart's datasets and the verdict in words.

Example:
    >>> from eoslab.chapters.presets import get_preset
    >>> result = experiment(get_preset("01", "quick"), {"lr": 1.3})
    >>> result["status"], result["diverged"]["stage"], result["threshold"]
    ('diverged', 'GD', 1.0)
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from eoslab.chapters.ch01_quadratic_stability import charts
from eoslab.chapters.ch01_quadratic_stability.quadratic import (
    Quadratic,
    convergence_rate,
    simulate,
    stability_threshold,
)

__all__ = ["LR_MAX", "experiment", "quadratic_verdict"]

LR_MAX = 3.0  # the step-size axis of the stability diagram (and the slider's top)


def quadratic_verdict(quadratic: Quadratic, lr: float, momentum: float = 0.0,
                      diverged_at: int | None = None, loss: float | None = None) -> str:
    """The status sentence: which side of the threshold ``lr`` is on, and what happens.

    >>> quadratic_verdict(Quadratic((2.0, 0.5)), 0.8)
    'converges: eta = 0.8 < 2/lambda_max = 1; the error shrinks by 0.6 per step'
    """
    rate = convergence_rate(lr, quadratic.eigenvalues, momentum)
    name = "(2+2beta)/lambda_max" if momentum else "2/lambda_max"
    if quadratic.lambda_max <= 0:
        return "flat: lambda_max = 0, nothing moves"
    edge = stability_threshold(quadratic.lambda_max, momentum)
    if rate < 1:
        return (f"converges: eta = {lr:.3g} < {name} = {edge:.3g}; the error shrinks by "
                f"{rate:.3g} per step")
    if rate == 1 or diverged_at is None:
        return (f"does not converge: eta = {lr:.3g} >= {name} = {edge:.3g}; the error grows "
                f"by {rate:.3g} per step")
    return (f"diverged at step {diverged_at}: loss {loss:.2g} — eta = {lr:.3g} > {name} = "
            f"{edge:.3g} is too large for this curvature (the error grows by {rate:.3g} "
            "per step)")


def experiment(preset, settings: dict, *, emit: Callable | None = None,
               stop: threading.Event | None = None) -> dict:
    """GD (``momentum = 0``) or heavy ball on the preset's quadratic with ``settings``.

    Args:
        preset: a :class:`~eoslab.chapters.ch01_quadratic_stability.meta.QuadraticPreset`.
        settings: any of its fields (``lr``, ``momentum``, ``angle``, ``lambda1``,
            ``lambda2``) overriding the preset's values.
        emit: unused (the run is exact and instant).
        stop: unused.

    Returns:
        ``status`` (``"diverged"`` when the loss blew up, else ``"finished"``),
        ``datasets`` (:func:`~eoslab.chapters.ch01_quadratic_stability.charts.quadratic_data`),
        ``verdict`` (the sentence
        of :func:`quadratic_verdict`), ``lambda_max``, ``threshold`` (``None`` when flat),
        ``rate`` (the per-step error factor), ``state`` (:mod:`eoslab.ui.status`) and, on
        divergence,
        ``diverged = {"step", "loss", "lr", "stage"}``.
    """
    p = preset.replace(**settings)
    quadratic = Quadratic(p.eigenvalues, angle=p.angle)
    trajectory = simulate(quadratic, p.start, p.lr, p.steps, momentum=p.momentum)
    last = float(trajectory.losses[-1])
    diverged_at = trajectory.diverged_at
    result = {
        "status": "finished" if diverged_at is None else "diverged",
        "datasets": charts.quadratic_data(quadratic, trajectory, LR_MAX),
        "verdict": quadratic_verdict(quadratic, p.lr, p.momentum, diverged_at,
                                     last if diverged_at is not None else None),
        "lambda_max": quadratic.lambda_max,
        "threshold": (stability_threshold(quadratic.lambda_max, p.momentum)
                      if quadratic.lambda_max > 0 else None),
        "rate": convergence_rate(p.lr, quadratic.eigenvalues, p.momentum),
    }
    # the status state (eoslab.ui.status): rate < 1 converges, rate = 1 keeps oscillating
    rate = result["rate"]
    result["state"] = ("converged" if rate < 1 else "oscillating" if rate == 1 else "finished")
    if diverged_at is not None:
        result["diverged"] = {"step": diverged_at, "loss": last, "lr": p.lr,
                              "stage": "heavy ball" if p.momentum else "GD"}
        if p.momentum:  # heavy ball's edge is (2+2β)/η (eoslab.ui.base.divergence_text)
            result["diverged"]["momentum"] = p.momentum
    return result
