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

__all__ = ["QUIET_LOSS", "destabilisations", "period_summary", "training_state"]

#: A loss below this is a quiet phase (the net fits the training set).
QUIET_LOSS = 1e-2


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


def training_state(history: Sequence[dict], summary: dict, chance_loss: float) -> dict:
    """What the run is doing over its second half, from the quantities the panels show.

    ``state`` is one of

    * ``"periodic"``: two or more destabilisations, and a quiet phase (loss below
      :data:`QUIET_LOSS`) before one of them;
    * ``"chaotic"``: no quiet phase in the second half (its smallest loss is above
      :data:`QUIET_LOSS`) while the loss swings by 3x or more, or the median edge ratio
      :math:`\\eta\\lambda_{\\max}/2` is above 2: the step is unstable throughout;
    * ``"not training"``: none of those, and the median loss is at least 90% of
      ``chance_loss`` (the loss of a uniform guess);
    * ``"quiet"``: the loss sits below :data:`QUIET_LOSS` with at most one destabilisation
      (weight decay is still shrinking the norm towards the next one);
    * ``"training"``: none of these (the loss is still coming down).

    Also returns ``loss_min``, ``loss_median``, ``loss_max`` and ``edge_median`` (``None``
    without sharpness probes) of the second half.

    >>> rows = [{"step": s, "loss": l, "edge_ratio": 15.0} for s, l in
    ...         enumerate([2.0, 9.0, 3.0, 10.0, 2.5, 8.0])]
    >>> training_state(rows, {"count": 0, "events": []}, chance_loss=2.3)["state"]
    'chaotic'
    """
    rows = [r for r in history if _finite(r.get("loss"))]
    late = rows[len(rows) // 2:]
    losses = [r["loss"] for r in late]
    edges = [r["edge_ratio"] for r in late if _finite(r.get("edge_ratio"))]
    out = {"loss_min": min(losses, default=None), "loss_max": max(losses, default=None),
           "loss_median": statistics.median(losses) if losses else None,
           "edge_median": statistics.median(edges) if edges else None}
    quiet_before = any(e.get("loss_before") is not None and e["loss_before"] < QUIET_LOSS
                       for e in summary.get("events", []))
    unstable = bool(losses) and out["loss_min"] > QUIET_LOSS and (
        out["loss_max"] >= 3 * out["loss_min"]
        or (out["edge_median"] is not None and out["edge_median"] > 2))
    if not losses:
        state = "training"
    elif summary.get("count", 0) >= 2 and quiet_before:
        state = "periodic"
    elif unstable:
        state = "chaotic"
    elif out["loss_median"] >= 0.9 * chance_loss:
        state = "not training"
    elif out["loss_median"] < QUIET_LOSS:
        state = "quiet"
    else:
        state = "training"
    out["state"] = state
    return out
