"""Chapter 18's experiment: full-batch Adam at its edge, then Adam + L2 vs AdamW on a grid.

Loshchilov & Hutter (ICLR 2019, arXiv 1711.05101): inside Adam an L2 penalty
:math:`\\lambda\\theta` is divided by :math:`\\sqrt{\\hat v}` like the rest of the gradient,
so its best :math:`\\lambda` moves with the learning rate; decoupled weight decay (AdamW)
shrinks the weights outside the adaptive step and its best :math:`\\lambda` stays put
(:mod:`eoslab.chapters.ch18_adamw.grid`). Cohen et al. (arXiv 2207.14484): full-batch Adam's
preconditioned sharpness :math:`\\lambda_{\\max}(P^{-1}H)` rises to
:math:`(2+2\\beta_1)/((1-\\beta_1)\\eta)` = 38/eta and hovers there.

:func:`experiment` trains the Adam run of ``settings["lr"]`` (sharpness and preconditioned
sharpness every few steps), then the grid cell by cell; every run goes through
:func:`eoslab.core.experiment.run` and its store, so a grid trained before comes back at
once. All on one torch thread.

Example:
    >>> from eoslab.chapters.presets import get_preset
    >>> p = get_preset("18", "quick")
    >>> adam_eos_config(p, 0.01).optimizer, len(grid_runs(p))
    ('adam', 22)
"""

from __future__ import annotations

import threading

from eoslab.chapters.ch02_edge_of_stability.experiment import edge_band
from eoslab.chapters.ch18_adamw.charts import adamw_data
from eoslab.chapters.ch18_adamw.grid import (
    GridResult,
    best_per_lr,
    grid_cells,
    optimum_spread,
    run_grid,
)
from eoslab.core.config import TrainConfig
from eoslab.core.experiment import run as run_experiment
from eoslab.core.store import RunStore
from eoslab.curvature.sharpness import threshold
from eoslab.speed.threads import single_thread

__all__ = ["adam_eos_config", "adam_state", "adam_summary", "experiment", "grid_base",
           "grid_runs", "precond_band"]


def adam_eos_config(preset, lr: float) -> TrainConfig:
    """Full-batch Adam at step size ``lr`` on the preset's edge-of-stability problem."""
    e = preset.eos
    return e.net.train_config(optimizer="adam", lr=lr, betas=(e.beta1, 0.999), steps=e.steps,
                              record_every=e.record_every, sharpness_every=e.sharpness_every)


def grid_base(preset) -> TrainConfig:
    """The grid's base config (its optimiser, lr and weight decay are replaced per cell)."""
    g = preset.grid
    return g.net.train_config(batch_size=g.batch, steps=g.steps, schedule=g.schedule,
                              record_every=g.steps)


def grid_runs(preset) -> list:
    """The preset's grid as ``(cell, config)`` pairs (:func:`.grid.grid_cells`)."""
    g = preset.grid
    return grid_cells(grid_base(preset), g.lrs, g.wds.by_optimizer(), decay=g.decay,
                      seeds=g.seeds)


def precond_band(history, lr: float, beta1: float = 0.9, last: float = 0.5):
    """``(min, median, max)`` of precond_sharpness / (38/eta) over the last part of a run.

    >>> precond_band([{"step": 0, "precond_sharpness": 38.0}, {"step": 10,
    ...               "precond_sharpness": 76.0}], 1.0, last=0.5)
    (2.0, 2.0, 2.0)
    """
    edge = threshold("adam", lr, beta1)
    rows = [{"step": r["step"], "sharpness": r["precond_sharpness"] * 2 / (lr * edge)}
            for r in history if r.get("precond_sharpness") is not None]
    return edge_band(rows, lr, 0.0, last) if rows else None


def adam_state(status: str, history, band, *, edge: float = 0.9, fell: float = 0.5,
               small: float = 1e-3) -> str:
    """The Adam run's state, from the loss and curvature panels' own numbers.

    ``diverged``/``stopped`` as the run says; else ``oscillating`` when the median of
    :func:`precond_band` is at least ``edge`` (Adam hovering at 38/eta), ``converged`` when
    the last loss is below ``small`` times the first, ``training`` when it is below ``fell``
    times the first, and ``not-training`` otherwise.

    >>> adam_state("finished", [{"loss": 1.0}, {"loss": 0.3}], [0.9, 1.0, 1.1])
    'oscillating'
    >>> adam_state("finished", [{"loss": 1.0}, {"loss": 0.3}], [0.1, 0.2, 0.3])
    'training'
    """
    if status in ("diverged", "stopped"):
        return status
    losses = [r["loss"] for r in history if r.get("loss") is not None]
    if band is not None and band[1] >= edge:
        return "oscillating"
    if len(losses) < 2 or losses[-1] >= fell * losses[0]:
        return "not-training"
    return "converged" if losses[-1] < small * losses[0] else "training"


def adam_summary(run, lr: float, beta1: float) -> dict:
    """The JSON-ready summary of the full-batch Adam :class:`~eoslab.core.train.Run`.

    Keys: ``status, steps_done, text`` (its one-line summary), ``state``
    (:func:`adam_state`), ``band``
    (:func:`precond_band` over the second half, or ``None``), ``edge`` (38/eta),
    ``last_precond_sharpness``, ``history`` (the recorded rows), ``from_store`` and, for a
    divergence, ``diverged: {step, loss, lr, stage}``.
    """
    sharp = [r["precond_sharpness"] for r in run.history
             if r.get("precond_sharpness") is not None]
    band = precond_band(run.history, lr, beta1) if run.status == "finished" else None
    out = {"status": run.status, "steps_done": run.steps_done, "text": run.summary(),
           "band": None if band is None else list(band), "edge": threshold("adam", lr, beta1),
           "last_precond_sharpness": sharp[-1] if sharp else None,
           "history": list(run.history), "from_store": bool(run.extra.get("from_store")),
           "state": adam_state(run.status, run.history, band)}
    if run.diverged_at:
        step, loss = run.diverged_at
        out["diverged"] = {"step": step, "loss": loss, "lr": lr, "stage": "full-batch Adam"}
    return out


def _optimum(grid: GridResult, metric: str) -> dict:
    """Per optimiser: the best lambda of each lr and how many decades it moves over."""
    maximize = metric == "test_acc"
    return {opt: {"best": [[lr, wd] for lr, wd in best_per_lr(grid, opt, metric, maximize)],
                  "spread_decades": optimum_spread(grid, opt, metric, maximize, "decades")}
            for opt in ("adam", "adamw") if any(c["optimizer"] == opt for c in grid.cells)}


def experiment(preset, settings: dict, *, emit=None, stop: threading.Event | None = None,
               store: RunStore | None | bool = None) -> dict:
    """Train full-batch Adam at ``settings["lr"]``, then the preset's (lr, lambda) grid.

    Args:
        preset: an :class:`~eoslab.chapters.ch18_adamw.meta.AdamWPreset`.
        settings: ``{"lr": ..., "metric": "test_loss" | "test_acc"}`` (the heatmaps' metric).
        emit: ``emit(datasets, done)`` streams the figure's datasets; ``done`` counts Adam's
            steps, then one per grid cell.
        stop: setting it stops the run in progress and skips the rest.
        store: the run store of :func:`eoslab.core.experiment.run` (``None``: the default
            one, ``False``: none); stored runs are reused.

    Returns:
        ``{"status", "datasets", "lr", "metric", "adam", "grid", "optimum", "state"}``:
        ``state`` is the Adam run's (:func:`adam_state`; ``finished`` when only the Adam run
        diverged: the grid is drawn all the same and the status line says so); ``adam`` is
        :func:`adam_summary`, ``grid`` the cells of
        :class:`~eoslab.chapters.ch18_adamw.grid.GridResult`, ``optimum`` per optimiser the
        best lambda per lr and its spread in decades. ``status`` is ``"stopped"`` or
        ``"finished"``; a divergence of the Adam run is in ``adam["diverged"]``.
    """
    lr, metric = float(settings["lr"]), settings.get("metric", "test_loss")
    beta1, g = preset.eos.beta1, preset.grid
    history, live = [], GridResult()
    n_cells = len(grid_runs(preset))

    def send(done: int) -> None:
        if emit is not None:
            emit(adamw_data(live, history, lr, beta1, metric), done)

    def on_row(row: dict) -> None:
        history.append(row)
        send(row["step"])

    def on_cell(cell: dict, index: int, total: int) -> None:
        live.cells.append(cell)
        send(preset.eos.steps + index + 1)

    with single_thread():  # small nets: one intra-op thread (eoslab.speed.threads)
        adam = run_experiment(adam_eos_config(preset, lr), callbacks=[on_row], stop=stop,
                              store=store)
        if adam.status != "stopped":
            run_grid(grid_base(preset), g.lrs, g.wds.by_optimizer(), decay=g.decay,
                     seeds=g.seeds, store=store, on_cell=on_cell, stop=stop)
    stopped = adam.status == "stopped" or len(live.cells) < n_cells
    return {"status": "stopped" if stopped else "finished",
            "datasets": adamw_data(live, adam.history, lr, beta1, metric),
            "lr": lr, "metric": metric, "adam": adam_summary(adam, lr, beta1),
            "grid": live.cells, "optimum": _optimum(live, metric),
            "state": "finished" if adam.status == "diverged" else adam_state(
                adam.status, adam.history, precond_band(adam.history, lr, beta1)
                if adam.status == "finished" else None)}
