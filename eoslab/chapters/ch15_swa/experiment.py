"""Chapter 15's experiment, widget-free: SGD iterates on the rim of a basin, SWA inside.

:func:`experiment` runs :func:`~eoslab.chapters.ch15_swa.swa_geometry.swa_experiment`
(Izmailov et al., UAI 2018, arXiv 1803.05407) on a typed preset and the app's settings and
adds the datasets of :func:`~eoslab.chapters.ch15_swa.charts.swa_layout`.

Usage::

    from eoslab.chapters.presets import get_preset
    result = experiment(get_preset("15", "quick"), {"lr": 0.3})
    result["swa"]["train_loss"] < result["iterates"]["train_loss"]
    # True
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from eoslab.chapters.ch15_swa.charts import partial_datasets, swa_datasets
from eoslab.chapters.ch15_swa.meta import SWAPreset
from eoslab.chapters.ch15_swa.swa_geometry import swa_experiment

__all__ = ["experiment", "run_state"]

Emit = Callable[[dict, int], None]


def run_state(history, *, bounce: float = 0.5, small: float = 0.1, fell: float = 0.5) -> str:
    """The constant-η SGD run's state, from the training panel's minibatch losses.

    Over the last quarter of the rows: ``oscillating`` when the losses spread by more than
    ``bounce`` times their mean (SGD bouncing in the basin, what SWA averages), else
    ``converged`` when their mean is below ``small`` times the first loss, ``training``
    below ``fell`` times it, ``not-training`` otherwise.

    >>> run_state([{"loss": 2.0}] + [{"loss": v} for v in (0.1, 0.02, 0.1, 0.02)])
    'oscillating'
    """
    losses = [r["loss"] for r in history if r.get("loss") is not None]
    if len(losses) < 2:
        return "not-training"
    tail = losses[-max(2, len(losses) // 4):]
    mean = sum(tail) / len(tail)
    if max(tail) - min(tail) > bounce * mean:
        return "oscillating"
    if mean < small * losses[0]:
        return "converged"
    return "training" if mean < fell * losses[0] else "not-training"


def experiment(preset: SWAPreset, settings: dict, *, emit: Emit | None = None,
               stop: threading.Event | None = None) -> dict:
    """SGD with the constant step size ``settings["lr"]`` (default: the preset's), then SWA.

    ``emit(datasets, done)`` streams the loss history; ``done`` counts SGD steps up to
    ``preset.sgd.steps``. Returns the pipeline's JSON-ready result with ``"datasets"``.
    """
    lr = settings.get("lr", preset.lr)
    start = preset.swa.start

    def partial(datasets: dict, done: int) -> None:
        if emit is not None:
            emit(partial_datasets(datasets, start), done)

    result = swa_experiment(preset, lr, emit=partial, stop=stop)
    result["datasets"] = swa_datasets(result, start)
    if result["status"] == "finished":
        result["state"] = run_state(result["history"])
    return result
