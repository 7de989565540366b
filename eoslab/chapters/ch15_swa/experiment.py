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

__all__ = ["experiment"]

Emit = Callable[[dict, int], None]


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
    return result
