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

__all__ = ["experiment", "run_state", "total_steps"]

Emit = Callable[[dict, int], None]


def total_steps(preset: ModeConnectivityPreset) -> int:
    """The SGD steps of the whole pipeline: both minima, the bend and the FGE cycles."""
    return 2 * preset.sgd.steps + preset.curve.steps + preset.fge.cycle * preset.fge.cycles


def run_state(training: list, *, small: float = 0.1, fell: float = 0.5) -> str:
    """The state of the two minima's training, from the training panel's own rows.

    For each of ``w1`` and ``w2``: the mean of its last quarter of minibatch losses over
    its first loss. ``converged`` when both are below ``small``, ``training`` when both
    are below ``fell``, else ``not-training``.

    >>> rows = [{"stage": s, "loss": v} for s in ("w1", "w2") for v in (2.3, 1.0, 0.05)]
    >>> run_state(rows)
    'converged'
    """
    ratios = []
    for stage in ("w1", "w2"):
        losses = [r["loss"] for r in training if r["stage"] == stage]
        if len(losses) < 2:
            return "not-training"
        tail = losses[-max(1, len(losses) // 4):]
        ratios.append(sum(tail) / len(tail) / losses[0])
    if max(ratios) < small:
        return "converged"
    return "training" if max(ratios) < fell else "not-training"


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
    if result["status"] == "finished":
        result["state"] = run_state(result["training"])
    return result
