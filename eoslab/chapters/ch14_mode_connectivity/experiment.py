"""Chapter 14's experiment, widget-free: two minima, the line, a trained curve, FGE.

:func:`experiment` runs
:func:`~eoslab.chapters.ch14_mode_connectivity.connectivity.mode_connectivity` (Garipov
et al., NeurIPS 2018, arXiv 1802.10026) on a typed preset and the app's settings and adds
the datasets of :func:`~eoslab.chapters.ch14_mode_connectivity.charts.connectivity_layout`.

Usage::

    from eoslab.chapters.presets import get_preset
    result = experiment(get_preset("14", "quick"), {"kind": "polychain"})
    result["barrier_curve"] < result["barrier_line"]
    # True
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from eoslab.chapters.ch14_mode_connectivity.charts import connectivity_datasets, partial_datasets
from eoslab.chapters.ch14_mode_connectivity.connectivity import mode_connectivity
from eoslab.chapters.ch14_mode_connectivity.meta import ModeConnectivityPreset

__all__ = ["experiment", "total_steps"]

Emit = Callable[[dict, int], None]


def total_steps(preset: ModeConnectivityPreset) -> int:
    """The SGD steps of the whole pipeline: both minima, the bend and the FGE cycles."""
    return 2 * preset.sgd.steps + preset.curve.steps + preset.fge.cycle * preset.fge.cycles


def experiment(preset: ModeConnectivityPreset, settings: dict, *, emit: Emit | None = None,
               stop: threading.Event | None = None) -> dict:
    """The pipeline with step size ``settings["lr"]`` and curve ``settings["kind"]``.

    A setting missing from ``settings`` takes the preset's value. ``emit(datasets, done)``
    streams the training loss and then the straight line; ``done`` counts SGD steps up to
    :func:`total_steps`. Returns the pipeline's JSON-ready result with ``"datasets"``.
    """
    settings = {"lr": preset.lr, "kind": preset.kind, **settings}

    def partial(datasets: dict, done: int) -> None:
        if emit is not None:
            emit(partial_datasets(datasets), done)

    result = mode_connectivity(preset, settings["lr"], settings["kind"], emit=partial,
                               stop=stop)
    result["datasets"] = connectivity_datasets(result)
    return result
