"""Chapter 17's experiment: a designed schedule trained with full-batch GD, and the range test.

SGDR (Loshchilov & Hutter, ICLR 2017, arXiv 1608.03983) anneals :math:`\\eta(t)` along a
cosine and restarts it; Smith's cyclical rate (WACV 2017, arXiv 1506.01186) climbs and
falls linearly, with bounds read off a range test. At the edge of stability the sharpness
:math:`S` follows :math:`2/\\eta(t)`, and a restart that drops :math:`2/\\eta` below
:math:`S` makes GD unstable: the loss spikes and :math:`S` falls back to about the new
:math:`2/\\eta` (a catapult, Lewkowycz et al. 2020, arXiv 2003.02218).

:func:`experiment` draws :math:`\\eta(t)` with the very scheduler training uses
(:func:`eoslab.optimizers.schedules.schedule_curve`), runs the range test
(:func:`eoslab.optimizers.schedules.lr_range_test`, remembered per problem, as it does not
depend on the schedule), then trains (:func:`eoslab.core.experiment.run`), streaming the
history.

Example:
    >>> from eoslab.chapters.presets import get_preset
    >>> schedule_config(get_preset("17", "quick")).schedule_options
    {'T_0': 150, 'eta_min': 0.1}
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from eoslab.core.config import TrainConfig
from eoslab.core.experiment import run as run_experiment
from eoslab.optimizers.schedules import (
    RangeTest,
    catapults,
    designer_options,
    edge_ratios,
    lr_range_test,
    schedule_curve,
)
from eoslab.speed.threads import single_thread
from eoslab.ui.plots import rows

__all__ = ["experiment", "history_data", "range_config", "range_test", "run_state",
           "schedule_config", "schedule_data"]

_RANGE_TESTS: dict[str, dict] = {}


def schedule_config(preset) -> TrainConfig:
    """The :class:`TrainConfig` of the preset's designed schedule on its problem."""
    options = designer_options(preset.schedule, preset.lr, preset.period, preset.low,
                               preset.gamma)
    return preset.net.train_config(lr=preset.lr, schedule=preset.schedule,
                                   schedule_options=options,
                                   **dataclasses.asdict(preset.training))


def range_config(preset) -> TrainConfig:
    """The :class:`TrainConfig` of the preset's range test (no sharpness, its own steps)."""
    spec = preset.range_test
    run = {**dataclasses.asdict(preset.training), "steps": spec.steps, "sharpness_every": 0}
    return preset.net.train_config(lr=spec.lr_min, batch_size=spec.batch, **run)


def range_test(preset, stop: threading.Event | None = None) -> RangeTest:
    """Smith's range test of the preset's problem, run once per problem in this process."""
    config, spec = range_config(preset), preset.range_test
    key = config.key()
    if key not in _RANGE_TESTS:
        found = lr_range_test(config, spec.lr_min, spec.lr_max, spec.steps, stop=stop)
        if stop is not None and stop.is_set():
            return found
        _RANGE_TESTS[key] = found.to_json()
    return RangeTest(**_RANGE_TESTS[key])


def run_state(history, *, edge: float = 0.9, fell: float = 0.5, small: float = 1e-3) -> str:
    """The state of a finished run, from the loss and sharpness panels' own rows.

    ``converged``: the last loss is below ``small`` times the first; ``oscillating``: the
    last sharpness recorded during training (the final row pairs theta_T with the next
    cycle's rate, so it is left out) is at least ``edge`` times :math:`2/\\eta(t)` (GD at
    the edge of stability, the loss moving up and down); ``training``: the loss fell below ``fell``
    times its first value; else ``not-training``.

    >>> run_state([{"step": 0, "loss": 1.0, "lr": 0.5, "sharpness": 1.0},
    ...            {"step": 9, "loss": 0.2, "lr": 0.5, "sharpness": 3.9},
    ...            {"step": 10, "loss": 0.2}])
    'oscillating'
    >>> run_state([{"loss": 1.0}, {"loss": 0.99}])
    'not-training'
    """
    losses = [r["loss"] for r in history if r.get("loss") is not None]
    if len(losses) < 2:
        return "not-training"
    if losses[-1] < small * losses[0]:
        return "converged"
    ratios = edge_ratios(history[:-1])  # the last row holds theta_T with the next cycle's eta
    if ratios and ratios[-1][1] >= edge:
        return "oscillating"
    return "training" if losses[-1] < fell * losses[0] else "not-training"


def history_data(history) -> dict:
    """The ``history`` (step, loss) and ``sharpness`` (step, value, curve) datasets."""
    history = list(history)
    sharp = [r for r in history if r.get("sharpness") is not None]
    return {"history": rows({"step": [r["step"] for r in history],
                                   "loss": [r["loss"] for r in history]}),
            "sharpness": rows({"step": [r["step"] for r in sharp],
                                     "value": [r["sharpness"] for r in sharp]},
                                    curve="sharpness")}


def schedule_data(curve, history=(), range_result: RangeTest | None = None) -> dict:
    """The chart's datasets: curve, history, edge, sharpness, range, suggested."""
    data = {"curve": rows({"step": range(len(curve)), "lr": curve}),
            **history_data(history),
            "edge": rows({"step": range(len(curve)), "value": [2 / v for v in curve]},
                               curve="2/η(t)"),
            "range": [], "suggested": []}
    if range_result is not None and range_result.lrs:
        data["range"] = (rows({"lr": range_result.lrs, "loss": range_result.losses},
                                    series="raw loss")
                         + rows({"lr": range_result.lrs, "loss": range_result.smoothed},
                                      series="smoothed loss"))
        data["suggested"] = [{"low": range_result.low, "high": range_result.high}]
    return data


def experiment(preset, settings: dict, *, emit: Callable | None = None,
               stop: threading.Event | None = None) -> dict:
    """The range test, then full-batch GD under the designed schedule, with the sharpness.

    Args:
        preset: a :class:`~eoslab.chapters.ch17_lr_schedules.meta.SchedulePreset`.
        settings: any of its designer fields (``schedule``, ``lr``, ``period``, ``low``,
            ``gamma``) overriding the preset's values.
        emit: receives the curve at once, the range test, then each history row's
            datasets, with the steps done (range test first).
        stop: ends the range test or the training early (status ``"stopped"``).

    Returns:
        ``status`` (the run's), ``datasets`` (:func:`schedule_data`), ``history`` (the
        run's rows), ``steps``, ``summary`` (one line), ``catapults`` (the restarts with a
        sharpness before and after, :func:`eoslab.optimizers.schedules.catapults`),
        ``range_test`` (:class:`RangeTest` as a dict), ``state`` (:func:`run_state`:
        converged, oscillating, training or not-training) and, on divergence,
        ``diverged = {"step", "loss", "lr", "stage"}``.
    """
    p = preset.replace(**settings)
    config = schedule_config(p)
    curve = schedule_curve(config.schedule, config.lr, config.steps, config.schedule_options)
    emit = emit or (lambda datasets, done: None)
    emit(schedule_data(curve), 0)
    with single_thread():  # small nets: one intra-op thread is faster (eoslab.speed.threads)
        found = range_test(p, stop)
        if stop is not None and stop.is_set():
            return {"status": "stopped", "datasets": schedule_data(curve, (), found)}
        emit(schedule_data(curve, (), found), p.range_test.steps)
        rows: list = []

        def on_row(row):
            rows.append(row)
            emit(history_data(rows), p.range_test.steps + row["step"])

        run = run_experiment(config, callbacks=[on_row], stop=stop, store=False)
    result = {"status": run.status, "datasets": schedule_data(curve, run.history, found),
              "history": run.history, "steps": config.steps, "summary": run.summary(),
              "catapults": [c for c in catapults(run.history)
                            if c["sharp_before"] is not None and c["sharp_after"] is not None],
              "range_test": found.to_json(), "state": run_state(run.history)}
    if run.diverged:
        step, loss = run.diverged_at
        result["diverged"] = {"step": step, "loss": loss, "stage": "GD on this schedule",
                              "lr": curve[min(step, len(curve) - 1)]}
    return result
