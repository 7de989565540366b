"""Chapter 02's experiment: full-batch GD at several step sizes, sharpness against 2/eta.

Cohen et al., "Gradient Descent on Neural Networks Typically Occurs at the Edge of
Stability" (ICLR 2021, arXiv 2103.00065): the sharpness :math:`\\lambda_{\\max}(H)` of GD
with step size :math:`\\eta` rises until it reaches :math:`2/\\eta` (with heavy-ball
momentum :math:`\\beta`: :math:`(2+2\\beta)/\\eta`) and then hovers there while the loss
keeps falling, non-monotonically.  Until a run reaches its edge it follows the gradient
flow :math:`\\dot\\theta = -\\nabla L(\\theta)` at times :math:`t = \\eta k`; after, it cannot.

:func:`experiment` trains the preset's step sizes ``lr * r`` one after the other, largest
first, each through :func:`eoslab.core.experiment.run` (so a step size trained before comes
back from the run store at once), on one torch thread, and streams the chart's datasets
(:func:`eoslab.chapters.ch02_edge_of_stability.charts.eos_data`) as history rows arrive.
Then :func:`flow_rows` integrates the gradient flow of the same network from the same
weights (RK45 with dense output: the solver of chapter 08,
:func:`eoslab.chapters.ch08_gd_vs_flow.gradient_flow.gradient_flow`)
up to the preset's ``flow_horizon`` or the longest run's time :math:`\\eta T`, whichever
is first: the flow's sharpness keeps rising, so its cost grows with the horizon.

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
import torch

from eoslab.chapters.ch02_edge_of_stability import charts
from eoslab.chapters.ch02_edge_of_stability.meta import chosen_net
from eoslab.chapters.ch08_gd_vs_flow.gradient_flow import FlowStopped, gradient_flow
from eoslab.core.experiment import run as run_experiment
from eoslab.core.store import RunStore
from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.objective import Objective
from eoslab.speed.threads import single_thread

__all__ = ["edge_band", "eos_configs", "experiment", "flow_rows", "initial_sharpness",
           "run_state",
           "run_summary"]

_RUN_KEYS = ("optimizer", "steps", "record_every", "sharpness_every")


def eos_configs(preset, lr: float | None = None, momentum: float | None = None,
                arch: str | None = None, loss: str | None = None) -> list:
    """One ``TrainConfig`` per step size ``lr * ratio`` (largest first).

    The problem is ``preset.net`` with architecture ``arch`` and loss ``loss``
    (:func:`~eoslab.chapters.ch02_edge_of_stability.meta.chosen_net`; ``None`` keeps them).
    """
    lr = preset.lr if lr is None else lr
    momentum = preset.momentum if momentum is None else momentum
    net = chosen_net(preset, arch, loss)
    run = {k: getattr(preset, k) for k in _RUN_KEYS}
    return [net.train_config(lr=round(lr * r, 6), momentum=momentum, **run)
            for r in sorted(preset.lr_ratios, reverse=True)]


_FLOWS: dict = {}


def flow_rows(net, t_end: float, points: int = 60,
              stop: threading.Event | None = None) -> list[dict]:
    """``[{"time", "loss"}, ...]`` of the gradient flow of ``net`` from its initial weights.

    :math:`\\dot\\theta = -\\nabla L(\\theta)` integrated by RK45 (``rtol=1e-4``,
    ``atol=1e-7``) up to ``t_end`` and read at ``points`` evenly spaced times; cached per
    ``(net, t_end, points)``.  A set ``stop`` ends it early with ``[]``.

    >>> from eoslab.core.netspec import NetSpec
    >>> rows = flow_rows(NetSpec(dataset="moons", n_train=16, width=8, depth=1), 2.0, 3)
    >>> [r["time"] for r in rows], rows[-1]["loss"] < rows[0]["loss"]
    ([0.0, 1.0, 2.0], True)
    """
    if not (isinstance(points, int) and points >= 2):
        raise ValueError(f"points={points!r} is not allowed; use an integer >= 2")
    key = (net, float(t_end), points)
    if key not in _FLOWS:
        data, model = net.build()
        objective = Objective(model, net.loss, data.x_train, data.y_train)
        try:
            flow = gradient_flow(objective, t_end=float(t_end), rtol=1e-4, atol=1e-7,
                                 stop=stop)
        except FlowStopped:
            return []
        with torch.no_grad():
            _FLOWS[key] = [{"time": float(t), "loss": flow.loss(float(t))}
                           for t in np.linspace(0.0, flow.t_end, points)]
    return list(_FLOWS[key])


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


def run_state(summary: dict) -> tuple[str, str]:
    """``(state, words)`` of a run from the quantities the panels show.

    States: ``"diverged"`` (at step t), ``"stopped"``, ``"not training"`` (the loss fell by
    less than 10%), ``"at the edge"`` (the median of sharpness / edge over the second half is
    at least 0.85: oscillating at the edge), ``"converged"`` (below the edge, loss under
    1e-3 of its start) and ``"training"`` (below the edge, loss still falling).

    >>> run_state({"status": "finished", "band": [0.9, 1.05, 1.2], "loss0": 1.0,
    ...            "loss": 0.1, "sharpness0": 3.9, "max_ratio": 1.3})[0]
    'at the edge'
    """
    if summary["status"] == "diverged":
        step, loss = summary["diverged_at"]
        return "diverged", f"diverged at step {step} (loss {loss:.2g})"
    if summary["status"] == "stopped":
        return "stopped", f"stopped at step {summary['steps_done']}"
    loss0, loss, band = summary.get("loss0"), summary.get("loss"), summary.get("band")
    fell = f"loss {loss0:.3g} → {loss:.3g}" if loss0 is not None and loss is not None else ""
    if loss0 is None or loss is None or loss > 0.9 * loss0:
        return "not training", f"not training: {fell or 'no loss recorded'}"
    if band is not None and band[1] >= 0.85:
        return "at the edge", (f"oscillating at the edge: {fell}; sharpness / edge over the "
                               f"second half {band[0]:.2f} to {band[2]:.2f} "
                               f"(median {band[1]:.2f})")
    ratio = summary.get("max_ratio")
    below = "" if ratio is None else f"; sharpness reached {ratio:.2f} × the edge"
    if ratio is not None and ratio >= 1.0:
        below = f"; sharpness peaked at {ratio:.2f} × the edge, then fell below it"
    if loss < 1e-3 * loss0:
        return "converged", f"converged below the edge: {fell}{below}"
    if ratio is not None and ratio >= 1.0:
        return "training", f"training, back below the edge: {fell}{below}"
    return "training", f"training below the edge: {fell}{below}"


def run_summary(run, lr: float, momentum: float = 0.0) -> dict:
    """The JSON-ready summary of one step size's :class:`~eoslab.core.train.Run`.

    Keys: ``lr, status, steps_done, text`` (the run's one-line summary), ``band``
    (:func:`edge_band` over the second half, or ``None``), ``sharpness0`` (the first
    sharpness measured, :math:`\\lambda_0`), ``last_sharpness``, ``max_ratio`` (the largest
    sharpness / edge), ``loss0`` and ``loss`` (first and last finite losses),
    ``diverged_at`` (``[step, loss]`` or ``None``), ``from_store`` and ``state`` / ``words``
    (:func:`run_state`).
    """
    sharp = [r["sharpness"] for r in run.history if r.get("sharpness") is not None]
    losses = [r["loss"] for r in run.history
              if r.get("loss") is not None and np.isfinite(r["loss"])]
    band = edge_band(run.history, lr, momentum) if run.status == "finished" else None
    edge = (2 + 2 * momentum) / lr
    out = {"lr": lr, "status": run.status, "steps_done": run.steps_done,
           "text": run.summary(), "band": None if band is None else list(band),
           "sharpness0": sharp[0] if sharp else None,
           "last_sharpness": sharp[-1] if sharp else None,
           "max_ratio": max(sharp) / edge if sharp else None,
           "loss0": losses[0] if losses else None, "loss": losses[-1] if losses else None,
           "diverged_at": list(run.diverged_at) if run.diverged_at else None,
           "from_store": bool(run.extra.get("from_store"))}
    out["state"], out["words"] = run_state(out)
    return out


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
                       "crossings": list(self.crossings), "flow": []}, self.total())

    def total(self) -> int:
        return sum(self.done.values())


def experiment(preset, settings: dict, *, emit=None, stop: threading.Event | None = None,
               store: RunStore | None | bool = None) -> dict:
    """Train the step sizes of ``preset`` at ``settings["lr"]`` (the largest), then the flow.

    Args:
        preset: an :class:`~eoslab.chapters.ch02_edge_of_stability.meta.EdgeOfStabilityPreset`.
        settings: ``{"lr", "momentum", "arch", "loss"}``; all but ``lr`` default to the
            preset's (``arch`` and ``loss`` name the network and the loss, see
            :func:`~eoslab.chapters.ch02_edge_of_stability.meta.chosen_net`).
        emit: ``emit(datasets, steps_done)`` receives the chart's datasets as rows arrive.
        stop: setting it stops the run in progress and skips the rest.
        store: the run store of :func:`eoslab.core.experiment.run` (``None``: the default
            one, ``False``: none); stored runs are reused.

    Returns:
        ``{"status", "datasets", "momentum", "runs", "flow_end"}``: ``runs`` holds one
        :func:`run_summary` per step size trained (largest first); ``datasets["flow"]`` the
        gradient flow's rows (:func:`flow_rows`, up to time ``flow_end``); ``status`` is
        ``"stopped"`` if a run stopped, ``"diverged"`` (with ``"diverged"``) when every
        step size diverged, else ``"finished"``.
    """
    momentum = float(settings.get("momentum", preset.momentum))
    arch, loss = settings.get("arch"), settings.get("loss")
    configs = eos_configs(preset, settings["lr"], momentum, arch, loss)
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
        stopped = any(r["status"] == "stopped" for r in runs) or len(runs) < len(configs)
        flow_end = min(preset.flow_horizon, max(r["lr"] * r["steps_done"] for r in runs)
                       / (1 - momentum))
        flow = [] if stopped or flow_end <= 0 else flow_rows(
            chosen_net(preset, arch, loss), flow_end, preset.flow_points, stop)
    datasets = charts.eos_data(histories, momentum, flow)
    if emit is not None and flow:
        emit(datasets, stream.total())
    result = {"status": "stopped" if stopped else "finished", "datasets": datasets,
              "momentum": momentum, "runs": runs, "flow_end": flow_end if flow else 0.0}
    if not stopped and all(r["status"] == "diverged" for r in runs):
        first = runs[0]
        label = charts.run_label(first["lr"], momentum)
        result["status"] = "diverged"
        result["diverged"] = {
            "step": first["diverged_at"][0], "loss": first["diverged_at"][1],
            "lr": first["lr"], "momentum": momentum, "sharpness": first["last_sharpness"],
            "stage": label if len(runs) == 1 else f"all {len(runs)} step sizes diverged; {label}"}
    return result


_SHARPNESS0: dict = {}


def initial_sharpness(net) -> float:
    """:math:`\\lambda_0`, the top Hessian eigenvalue of ``net``'s loss at its initial weights.

    Lanczos on Hessian-vector products (relative tolerance 1e-4), cached per ``net``;
    :math:`2/\\lambda_0` is the largest stable GD step size at initialisation.

    >>> from eoslab.core.netspec import NetSpec
    >>> initial_sharpness(NetSpec(dataset="moons", n_train=16, width=8, depth=1)) > 0
    True
    """
    if net not in _SHARPNESS0:
        data, model = net.build()
        objective = Objective(model, net.loss, data.x_train, data.y_train)
        with single_thread():
            op = HessianOperator(objective, objective.params())
            _SHARPNESS0[net] = float(top_eigen(op, 1, tol=1e-4).values[0])
    return _SHARPNESS0[net]
