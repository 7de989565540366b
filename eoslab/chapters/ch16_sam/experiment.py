"""Chapter 16's experiment, widget-free: SAM's lower sharpness, its own edge, m-sharpness.

:func:`experiment` runs :func:`~eoslab.chapters.ch16_sam.sam_edge.sam_experiment` (Foret
et al., arXiv 2010.01412; Andriushchenko and Flammarion, arXiv 2206.06232; Long and
Bartlett, arXiv 2309.12488) on a typed preset and the app's settings and adds the
datasets of :func:`~eoslab.chapters.ch16_sam.charts.sam_layout`; :func:`edge_ratio`
summarises a run against an edge.

Usage::

    from eoslab.chapters.presets import get_preset
    result = experiment(get_preset("16", "quick"), {"rho": 0.05})
    edge_ratio(result["runs"]["0.0"], "gd_edge")  # GD hovers at 2/eta
    # 1.02...
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from eoslab.chapters.ch16_sam.charts import partial_datasets, sam_datasets
from eoslab.chapters.ch16_sam.meta import SAMPreset
from eoslab.chapters.ch16_sam.sam_edge import sam_experiment

__all__ = ["edge_ratio", "experiment", "run_state", "total_steps"]

Emit = Callable[[dict, int], None]


def edge_ratio(history, key: str = "sam_edge", last: float = 0.5):
    """Median of sharpness / ``key`` over the last ``last`` fraction of the recorded steps.

    >>> edge_ratio([{"step": 0, "sharpness": 1.0, "sam_edge": 4.0},
    ...             {"step": 10, "sharpness": 3.0, "sam_edge": 3.0}])
    1.0
    """
    steps = [r["step"] for r in history]
    if not steps:
        return None
    cut = steps[-1] - last * (steps[-1] - steps[0])
    ratios = [r["sharpness"] / r[key] for r in history if r["step"] >= cut
              and r.get("sharpness") is not None and r.get(key)]
    return float(np.median(ratios)) if ratios else None


def run_state(result: dict, *, edge: float = 0.9, fell: float = 0.5) -> str:
    """The state of the full-batch GD run (the first panel's reference).

    ``oscillating`` when GD's median sharpness over the second half is at least ``edge``
    times 2/eta (:func:`edge_ratio`: GD at the edge of stability), else ``training`` when its
    loss fell below ``fell`` times the first, else ``not-training``.

    >>> run_state({"runs": {"0.0": [{"step": 0, "loss": 1.0, "sharpness": 1.0, "gd_edge": 2.0},
    ...                              {"step": 9, "loss": 0.1, "sharpness": 2.0, "gd_edge": 2.0}]}})
    'oscillating'
    """
    runs = {float(k): v for k, v in result.get("runs", {}).items()}
    rows = runs.get(0.0) or (runs[min(runs)] if runs else [])
    ratio = edge_ratio(rows, "gd_edge")
    if ratio is not None and ratio >= edge:
        return "oscillating"
    losses = [r["loss"] for r in rows if r.get("loss") is not None]
    return "training" if len(losses) > 1 and losses[-1] < fell * losses[0] else "not-training"


def total_steps(preset: SAMPreset) -> int:
    """The training steps of every full-batch and minibatch run together."""
    full, mini = preset.full_batch, preset.minibatch
    return len(full.rho_ratios) * full.steps + len(mini.m_values) * mini.steps


def experiment(preset: SAMPreset, settings: dict, *, emit: Emit | None = None,
               stop: threading.Event | None = None) -> dict:
    """Both parts with step size ``settings["lr"]`` and radius ``settings["rho"]``.

    A setting missing from ``settings`` takes the preset's value. ``emit(datasets, done)``
    streams the full-batch runs and then each minibatch run; ``done`` counts steps up to
    :func:`total_steps`. Returns the pipeline's JSON-ready result with ``"datasets"``.
    """
    lr, rho = settings.get("lr", preset.lr), settings.get("rho", preset.rho)

    def partial(datasets: dict, done: int) -> None:
        if emit is not None:
            emit(partial_datasets(datasets, lr), done)

    result = sam_experiment(preset, lr, rho, emit=partial, stop=stop)
    result["datasets"] = sam_datasets(result)
    if result.get("status") == "finished":
        result["state"] = run_state(result)
    return result
