"""Chapter 02's experiment: full-batch GD at several step sizes, sharpness against 2/eta.

Cohen et al., "Gradient Descent on Neural Networks Typically Occurs at the Edge of
Stability" (ICLR 2021, arXiv 2103.00065): the sharpness :math:`\\lambda_{\\max}(H)` of GD
with step size :math:`\\eta` rises until it reaches :math:`2/\\eta` (with heavy-ball
momentum :math:`\\beta`: :math:`(2+2\\beta)/\\eta`) and then hovers there while the loss
keeps falling, non-monotonically.

:func:`experiment` trains the preset's step sizes ``lr * r`` one after the other, largest
first, each through :func:`eoslab.core.experiment.run` (so a step size trained before comes
back from the run store at once), on one torch thread, and streams the chart's datasets
(:func:`eoslab.chapters.ch02_edge_of_stability.charts.eos_data`) as history rows arrive.

Example:
    >>> from eoslab.chapters.presets import get_preset
    >>> p = get_preset("02", "quick")
    >>> p = p.replace(net=p.net.replace(n_train=32, width=8), steps=10, sharpness_every=0)
    >>> result = experiment(p, {"lr": 0.2, "momentum": 0.0}, store=False)
    >>> result["status"], [r["lr"] for r in result["runs"]]
    ('finished', [0.2])
"""

from __future__ import annotations

import threading

import numpy as np

from eoslab.chapters.ch02_edge_of_stability import charts
from eoslab.core.experiment import run as run_experiment
from eoslab.core.store import RunStore
from eoslab.speed.threads import single_thread

__all__ = ["edge_band", "eos_configs", "experiment", "run_summary"]

_RUN_KEYS = ("optimizer", "steps", "record_every", "sharpness_every")


def eos_configs(preset, lr: float | None = None, momentum: float | None = None) -> list:
    """One ``TrainConfig`` of ``preset.net`` per step size ``lr * ratio`` (largest first)."""
    lr = preset.lr if lr is None else lr
    momentum = preset.momentum if momentum is None else momentum
    run = {k: getattr(preset, k) for k in _RUN_KEYS}
    return [preset.net.train_config(lr=round(lr * r, 6), momentum=momentum, **run)
            for r in sorted(preset.lr_ratios, reverse=True)]


def edge_band(history, lr: float, momentum: float = 0.0, last: float = 0.5):
    """``(min, median, max)`` of sharpness / ((2+2beta)/eta) over the last part of a run.

    ``last`` is the fraction of the recorded steps looked at; ``None`` if no sharpness
    was recorded there.

    >>> rows = [{"step": s, "sharpness": v} for s, v in [(0, 1.0), (10, 4.0), (20, 4.4)]]
    >>> edge_band(rows, 0.5, last=0.5)
    (1.0, 1.05, 1.1)
    """
    if not 0 < last <= 1:
        raise ValueError(f"last={last!r} is not allowed; use a fraction in (0, 1]")
    steps = [r["step"] for r in history]
    if not steps:
        return None
    cut = steps[-1] - last * (steps[-1] - steps[0])
    edge = (2 + 2 * momentum) / lr
    ratios = [r["sharpness"] / edge for r in history
              if r["step"] >= cut and r.get("sharpness") is not None]
    if not ratios:
        return None
    return (round(float(min(ratios)), 6), round(float(np.median(ratios)), 6),
            round(float(max(ratios)), 6))


def run_summary(run, lr: float, momentum: float = 0.0) -> dict:
    """The JSON-ready summary of one step size's :class:`~eoslab.core.train.Run`.

    Keys: ``lr, status, steps_done, text`` (the run's one-line summary), ``band``
    (:func:`edge_band` over the second half, or ``None``), ``last_sharpness``,
    ``diverged_at`` (``[step, loss]`` or ``None``) and ``from_store``.
    """
    sharp = [r["sharpness"] for r in run.history if r.get("sharpness") is not None]
    band = edge_band(run.history, lr, momentum) if run.status == "finished" else None
    return {"lr": lr, "status": run.status, "steps_done": run.steps_done,
            "text": run.summary(), "band": None if band is None else list(band),
            "last_sharpness": sharp[-1] if sharp else None,
            "diverged_at": list(run.diverged_at) if run.diverged_at else None,
            "from_store": bool(run.extra.get("from_store"))}


class _Stream:
    """The chart's datasets built row by row (:func:`.charts.eos_data` per row)."""

    def __init__(self, lrs: list, momentum: float, emit):
        self.momentum, self.emit = momentum, emit
        self.rows: list = []
        self.crossings: list = []
        self.crossed: set = set()
        self.done = dict.fromkeys(lrs, 0)
        self.thresholds = charts.threshold_rows(lrs, momentum)

    def add(self, lr: float, row: dict) -> None:
        part = charts.eos_data({lr: [row]}, self.momentum)
        self.rows += part["history"]
        if part["crossings"] and lr not in self.crossed:
            self.crossed.add(lr)
            self.crossings += part["crossings"]
        self.done[lr] = row["step"]
        if self.emit is not None:
            self.emit({"history": list(self.rows), "thresholds": self.thresholds,
                       "crossings": list(self.crossings)}, sum(self.done.values()))


def experiment(preset, settings: dict, *, emit=None, stop: threading.Event | None = None,
               store: RunStore | None | bool = None) -> dict:
    """Train the step sizes of ``preset`` at ``settings["lr"]`` (the largest) and momentum.

    Args:
        preset: an :class:`~eoslab.chapters.ch02_edge_of_stability.meta.EdgeOfStabilityPreset`.
        settings: ``{"lr": ..., "momentum": ...}`` (momentum defaults to the preset's).
        emit: ``emit(datasets, steps_done)`` receives the chart's datasets as rows arrive.
        stop: setting it stops the run in progress and skips the rest.
        store: the run store of :func:`eoslab.core.experiment.run` (``None``: the default
            one, ``False``: none); stored runs are reused.

    Returns:
        ``{"status", "datasets", "momentum", "runs"}``: ``runs`` holds one
        :func:`run_summary` per step size trained (largest first); ``status`` is
        ``"stopped"`` if a run stopped, ``"diverged"`` (with ``"diverged"``) when every
        step size diverged, else ``"finished"``.
    """
    momentum = float(settings.get("momentum", preset.momentum))
    configs = eos_configs(preset, settings["lr"], momentum)
    stream = _Stream([c.lr for c in configs], momentum, emit)
    histories, runs = {}, []
    with single_thread():  # small nets: one intra-op thread (eoslab.speed.threads)
        for config in configs:
            res = run_experiment(config, callbacks=[lambda row, lr=config.lr: stream.add(lr, row)],
                                 stop=stop, store=store, reuse=True)
            histories[config.lr] = list(res.history)
            runs.append(run_summary(res, config.lr, momentum))
            if res.status == "stopped" or (stop is not None and stop.is_set()):
                break
    result = {"status": "finished", "datasets": charts.eos_data(histories, momentum),
              "momentum": momentum, "runs": runs}
    if any(r["status"] == "stopped" for r in runs) or len(runs) < len(configs):
        result["status"] = "stopped"
    elif all(r["status"] == "diverged" for r in runs):
        first = runs[0]
        label = charts.run_label(first["lr"], momentum)
        result["status"] = "diverged"
        result["diverged"] = {
            "step": first["diverged_at"][0], "loss": first["diverged_at"][1],
            "lr": first["lr"], "momentum": momentum, "sharpness": first["last_sharpness"],
            "stage": label if len(runs) == 1 else f"all {len(runs)} step sizes diverged; {label}"}
    return result
