"""Periods of training with normalisation and weight decay: finding the destabilisations.

Lobacheva, Kodryan, Chirkova, Malinin, Vetrov, "On the Periodic Behavior of Neural Network
Training with Batch Normalization and Weight Decay", NeurIPS 2021 (arXiv 2106.15739): a
scale-invariant net trained with weight decay :math:`\\lambda` and step size :math:`\\eta`
alternates between long quiet phases and short destabilisations.  In a quiet phase the
loss is small, so are the gradients, and weight decay shrinks the weights geometrically,
:math:`\\lVert w_t\\rVert^2 \\approx (1-\\eta\\lambda)^{2t}\\lVert w_0\\rVert^2`; the effective
step :math:`\\eta/\\lVert w\\rVert^2` grows until the step is unstable on the sphere.  The
loss then spikes, the large gradients (orthogonal to :math:`w`) inflate the norm at once
(:math:`\\lVert w\\rVert^2 \\mathrel{+}= \\eta^2\\lVert g\\rVert^2`), the effective step collapses,
and a new period begins.  Since the shrinking is :math:`\\propto \\eta\\lambda` per step, a
period lasts about :math:`c/(\\eta\\lambda)` steps, with :math:`c` the log-ratio of the norms
at its ends.

A destabilisation shows in the history as a jump of the weight norm by a large factor
between two consecutive rows; :func:`destabilisations` finds them and :func:`period_summary`
measures the periods between them.

Example:
    >>> rows = [{"step": 10 * i, "si_norm": n, "loss": l} for i, (n, l) in enumerate(
    ...     [(4, .1), (2, .01), (1, .01), (40, 9.), (20, .5), (10, .01), (5, .01), (80, 7.),
    ...      (40, .2)])]
    >>> [e["step"] for e in destabilisations(rows, min_gap=20)]
    [30, 70]
    >>> summary = period_summary(rows, lr=0.5, wd=0.2, min_gap=20)
    >>> summary["median_period"], summary["scaled_period"]
    (40.0, 4.0)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from itertools import pairwise

__all__ = ["destabilisations", "period_summary"]


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def destabilisations(history: Sequence[dict], key: str = "si_norm", jump: float = 3.0,
                     min_gap: int | None = None) -> list[dict]:
    """The rows where ``key`` (the weight norm) grew by at least ``jump`` times since the last row.

    Jumps closer than ``min_gap`` steps to the previous one belong to the same
    destabilisation (default: 10 row spacings).  Each event has ``step`` (first row after
    the jump), ``norm_before``, ``norm_after`` (largest norm in the event),
    ``eff_lr_before`` (if rows carry ``eff_lr``), ``loss_before`` (the smallest loss since
    the previous event) and ``loss_peak`` (the largest loss within ``min_gap`` steps).

    Raises:
        ValueError: ``jump`` not above 1.
    """
    if not (_finite(jump) and jump > 1):
        raise ValueError(f"jump={jump!r} is not allowed; use a factor > 1")
    rows = [r for r in history if _finite(r.get(key)) and r[key] > 0]
    if len(rows) < 2:
        return []
    if min_gap is None:
        spacing = statistics.median(b["step"] - a["step"] for a, b in pairwise(rows))
        min_gap = 10 * max(int(spacing), 1)
    events: list[dict] = []
    since = 0  # index of the first row after the previous event
    for i in range(1, len(rows)):
        before, after = rows[i - 1], rows[i]
        if after[key] < jump * before[key]:
            continue
        if events and after["step"] - events[-1]["step"] <= min_gap:
            events[-1]["norm_after"] = max(events[-1]["norm_after"], after[key])
            continue
        window = [r for r in rows[i:] if r["step"] - after["step"] <= min_gap]
        quiet = [r["loss"] for r in rows[since:i] if _finite(r.get("loss"))]
        peak = [r["loss"] for r in window if _finite(r.get("loss"))]
        events.append({
            "step": after["step"], "norm_before": before[key], "norm_after": after[key],
            "eff_lr_before": before.get("eff_lr"),
            "loss_before": min(quiet) if quiet else None,
            "loss_peak": max(peak) if peak else None})
        since = i
    return events


def period_summary(history: Sequence[dict], lr: float, wd: float, **options) -> dict:
    """Destabilisations, the periods between them, and the period in units of 1/(eta lambda).

    Returns ``events`` (see :func:`destabilisations`), ``count``, ``periods`` (steps
    between consecutive events), ``median_period`` and ``scaled_period``
    (median period :math:`\\times\\,\\eta\\lambda`; roughly constant across
    :math:`\\eta,\\lambda` according to the paper), ``mean_period`` (first to last event
    over the number of periods: less noisy than the median for few events), ``shrink`` (per
    period, the norm after one event over the norm before the next: the effective step
    grows by its square) and ``median_shrink``; the medians are ``None`` with fewer than
    two events.
    """
    events = destabilisations(history, **options)
    steps = [e["step"] for e in events]
    periods = [b - a for a, b in pairwise(steps)]
    median = float(statistics.median(periods)) if periods else None
    mean = (steps[-1] - steps[0]) / (len(steps) - 1) if len(steps) > 1 else None
    shrink = [a["norm_after"] / b["norm_before"] for a, b in pairwise(events)]
    return {"events": events, "count": len(events), "periods": periods,
            "median_period": median, "mean_period": mean, "shrink": shrink,
            "median_shrink": float(statistics.median(shrink)) if shrink else None,
            "scaled_period": median * lr * wd if median is not None else None}
