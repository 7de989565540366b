"""The states a chapter's status line can report, and the sentences that name them.

A status line is computed from the quantities its panels show, and names one state:

==================  ==================================================================
``idle``            nothing run yet (e.g. "press Run")
``training``        a run is in progress
``converged``       the loss settled at a small value
``oscillating``     the loss keeps moving up and down but stays bounded (period-2, ...)
``chaotic``         bounded but aperiodic (no short period fits the tail)
``not-training``    the loss did not go down (stuck, dead units)
``diverged``        the loss left every bound at some step t
``stopped``         the reader stopped the run
``finished``        a finished run that the chapter does not classify further
``error``           the run raised (the status line names the error)
==================  ==================================================================

The status widget carries the state as the CSS class ``eoslab-state-<state>``
(:func:`state_class`), set by the lifecycle (:class:`~eoslab.ui.app.ChapterApp`) from the
result: ``"diverged"`` and ``"stopped"`` results give those states; a finished result gives
``result["state"]`` when the experiment set one (one of :data:`STATES`), else ``finished``.
So a browser test checks "diverged iff the run diverged" without reading prose.

:func:`classify_losses` picks the state of a loss series with stated tolerances, and
:func:`phrase` turns a state into the start of a status sentence:

>>> classify_losses([0.69, 0.6931, 0.6930, 0.6931])
'not-training'
>>> classify_losses([1.0, 0.5, 0.1, 1e-4, 1e-7])
'converged'
>>> classify_losses([1.0, 4.0, 1.0, 4.0, 1.0, 4.0, 1.0, 4.0])
'oscillating'
>>> classify_losses([1.0, float("inf")])
'diverged'
>>> phrase("not-training", "dead units: loss flat at 0.693")
'not training (dead units: loss flat at 0.693)'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["STATES", "classify_losses", "phrase", "result_state", "state_class",
           "format_value"]

STATES = ("idle", "training", "converged", "oscillating", "chaotic", "not-training",
          "diverged", "stopped", "finished", "error")

_WORDS = {"idle": "ready", "training": "training", "converged": "converged",
          "oscillating": "oscillating", "chaotic": "chaotic (bounded, no short period)",
          "not-training": "not training", "diverged": "diverged", "stopped": "stopped",
          "finished": "finished", "error": "error"}


# chapters' own words for the states (chapter 12's classification, for one)
_SYNONYMS = {"periodic": "oscillating", "quiet": "converged", "trained": "converged",
             "not training": "not-training", "dead": "not-training"}


def _check(state: str) -> str:
    if state not in STATES:
        raise ValueError(f"state={state!r} is not allowed; allowed: {', '.join(STATES)}")
    return state


def state_class(state: str) -> str:
    """The CSS class the status widget carries for ``state`` (``eoslab-state-diverged``)."""
    return f"eoslab-state-{_check(state)}"


def result_state(result: dict) -> str:
    """The state of an experiment's result (see the module docs).

    >>> result_state({"status": "diverged"}), result_state({"status": "finished"})
    ('diverged', 'finished')
    >>> result_state({"status": "finished", "state": "not-training"})
    'not-training'

    A chapter's own words map onto the states, and a word that is not a state (or a
    classification dict without one) reads ``finished``: a status line never raises.

    >>> result_state({"status": "finished", "state": {"state": "periodic", "count": 9}})
    'oscillating'
    >>> result_state({"status": "finished", "state": "at the edge"})
    'finished'
    """
    status = result.get("status")
    if status in ("diverged", "stopped"):
        return status
    state = result.get("state")
    if isinstance(state, dict):  # a chapter's classification with its figures
        state = state.get("state")
    state = _SYNONYMS.get(state, state)
    if state not in STATES or state == "diverged":  # diverged only with a diverged result
        return "finished"
    return state


def format_value(value: float) -> str:
    """A number for a status line: 3 significant digits, ``inf``/``nan`` spelled out.

    >>> format_value(1.7976931348623157e308), format_value(float("nan")), format_value(0.6931)
    ('> 1e300 (overflow)', 'not a number', '0.693')
    """
    if value is None or math.isnan(value):
        return "not a number"
    if math.isinf(value) or abs(value) > 1e300:
        return "> 1e300 (overflow)"
    return f"{value:.3g}"


def classify_losses(losses: Sequence[float], *, flat: float = 0.02, small: float = 1e-3,
                    window: int = 8, swing: float = 0.1) -> str:
    """The state of a finished loss series (oldest first).

    * ``diverged``: a non-finite value or one above 1e300;
    The tail is the last ``window`` values, at most the second half of the series.

    * ``not-training``: the last loss is within ``flat`` (relative) of the first, and the
      tail is flat too (relative spread below ``flat``);
    * ``converged``: the last loss is below ``small`` times the first, or the tail's
      relative spread is below ``flat``;
    * ``oscillating``: the tail's relative spread is above ``swing`` and its consecutive
      differences alternate in sign (period 2) or repeat with period 3-4;
    * ``chaotic``: a tail spread above ``swing`` that no short period explains, going up
      and down (at least every other step) rather than along a trend;
    * else ``training`` (still going down).
    """
    values = np.asarray([float("inf") if v is None else v for v in losses], dtype=float)
    if values.size == 0:
        raise ValueError("losses is empty; classify_losses needs at least one value")
    if not np.all(np.isfinite(values)) or np.any(np.abs(values) > 1e300):
        return "diverged"
    first, last = abs(values[0]), abs(values[-1])
    tail = values[max(values.size // 2, values.size - window):]  # at most the last half
    scale = max(float(np.mean(np.abs(tail))), 1e-300)
    spread = float(np.ptp(tail)) / scale
    if values.size > 1 and abs(last - first) <= flat * max(first, 1e-300) and spread < flat:
        return "not-training"
    if last <= small * max(first, 1e-300) or (values.size >= window and spread < flat):
        return "converged"
    if spread > swing and tail.size >= 4:
        diffs = np.sign(np.diff(tail))
        if np.all(diffs[1:] * diffs[:-1] < 0):
            return "oscillating"
        for period in (3, 4):
            if tail.size > 2 * period and np.allclose(tail[period:], tail[:-period],
                                                      rtol=swing):
                return "oscillating"
        turns = int(np.sum(diffs[1:] * diffs[:-1] < 0))  # a trend has none, chaos many
        if turns >= (diffs.size - 1) / 2 and float(np.mean(np.abs(np.diff(tail)))) / scale > swing:
            return "chaotic"
    return "training"


def phrase(state: str, detail: str = "") -> str:
    """The first words of a status sentence for ``state``, with an optional detail.

    >>> phrase("diverged", "at step 37"), phrase("converged")
    ('diverged (at step 37)', 'converged')
    """
    words = _WORDS[_check(state)]
    return f"{words} ({detail})" if detail else words
