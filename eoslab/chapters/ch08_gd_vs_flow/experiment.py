"""Chapter 08's experiment: gradient descent tracks gradient flow until the flow gets too sharp.

Elkabetz and Cohen, *Continuous vs. Discrete Optimization of Deep Neural Networks*,
NeurIPS 2021, arXiv 2107.06608.  The preset's net is integrated once along the gradient
flow (:func:`eoslab.chapters.ch08_gd_vs_flow.gradient_flow.gradient_flow`, adaptive RK45
with dense output) and its sharpness :math:`S(t)` is tracked along it
(:func:`flow_reference`, cached per preset: the flow does not depend on the step size).
Then GD runs at step sizes :math:`\\eta, \\eta/2, \\dots` (the preset's ``lr_ratios``)
through :func:`eoslab.core.train.fit`, each compared with the flow at the matched times
:math:`t = k\\eta` by
:class:`~eoslab.chapters.ch08_gd_vs_flow.gradient_flow.FlowDistanceProbe`.
:func:`gap_summary` reads off, per step size, when the flow's sharpness crosses
:math:`2/\\eta` and how the gap behaves before and after: the chapter's figures.

Usage::

    from eoslab.chapters.presets import get_preset
    result = experiment(get_preset("08", "quick"), {"lr": 0.5})
    result["status"], sorted(result["datasets"])
    # ('finished', ['edges', 'gap', 'loss', 'sharpness'])
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np
import torch

from eoslab.chapters.ch08_gd_vs_flow.gradient_flow import (
    FlowDistanceProbe,
    FlowStopped,
    flow_sharpness,
    gradient_flow,
)
from eoslab.chapters.ch08_gd_vs_flow.meta import GdVsFlowPreset
from eoslab.core.train import fit
from eoslab.curvature.objective import Objective

__all__ = ["MODELS", "experiment", "flow_reference", "gap_summary", "gd_steps", "step_sizes"]


# the networks offered: Cohen et al.'s tanh net and the homogeneous ones of the paper's theory
MODELS = ("fc-tanh", "fc-relu", "fc-linear")


@functools.lru_cache(maxsize=4)
def _flow_cached(preset: GdVsFlowPreset):
    data, model = preset.net.build()
    objective = Objective(model, preset.net.loss, data.x_train, data.y_train)
    flow = gradient_flow(objective, t_end=float(preset.horizon))
    times = np.linspace(0.0, flow.t_end, int(preset.sharpness_points))
    return flow, flow_sharpness(flow, times, tol=1e-3)


def flow_reference(preset: GdVsFlowPreset):
    """``(flow, sharpness_rows)`` of a preset's net, cached per preset.

    The flow does not depend on the GD step size, so moving the slider reuses it.

    Usage::

        from eoslab.chapters.presets import get_preset
        flow, rows = flow_reference(get_preset("08", "quick"))
        rows[-1]["t"]
        # 60.0
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _flow_cached(preset)
    finally:
        torch.set_num_threads(threads)


def step_sizes(preset: GdVsFlowPreset, lr: float) -> list[float]:
    """The GD step sizes compared with the flow: ``lr`` times each of ``lr_ratios``.

    >>> from eoslab.chapters.presets import get_preset
    >>> step_sizes(get_preset("08", "quick"), 0.5)
    [0.5, 0.25]
    """
    return sorted({round(lr * r, 6) for r in preset.lr_ratios}, reverse=True)


def gd_steps(preset: GdVsFlowPreset, lr: float) -> int:
    """The steps GD at ``lr`` takes to reach the flow's ``horizon``.

    >>> from eoslab.chapters.presets import get_preset
    >>> gd_steps(get_preset("08", "quick"), 0.5)
    120
    """
    return max(1, math.floor(preset.horizon / lr + 1e-9))


def gap_summary(runs: dict, sharpness: list[dict]) -> dict:
    """Per step size: where the flow's sharpness crosses :math:`2/\\eta` and the gap around it.

    ``runs`` maps :math:`\\eta` to GD history rows (with ``t`` and ``flow_distance``);
    ``sharpness`` holds the flow's rows ``{"t", "sharpness"}``.  For each :math:`\\eta`:
    ``cross_t`` (first flow time with :math:`S(t) > 2/\\eta`, ``None`` if never),
    ``gap_at_cross`` (GD's distance at the last record before it), ``gap_end`` and
    ``growth`` (``gap_end / gap_at_cross``), ``gap_over_eta`` (median distance over
    :math:`\\eta` before the crossing, the first-order error constant).

    >>> runs = {0.5: [{"t": 0.0, "flow_distance": 0.0}, {"t": 1.0, "flow_distance": 0.05},
    ...               {"t": 2.0, "flow_distance": 0.5}]}
    >>> s = gap_summary(runs, [{"t": 0.0, "sharpness": 3.0}, {"t": 1.5, "sharpness": 4.5}])
    >>> s[0.5]["cross_t"], s[0.5]["gap_at_cross"], s[0.5]["growth"]
    (1.5, 0.05, 10.0)
    """
    out = {}
    for lr, rows in runs.items():
        edge = 2.0 / lr
        cross = next((r["t"] for r in sharpness if r["sharpness"] > edge), None)
        rows = [r for r in rows if r.get("flow_distance") is not None]
        if not rows:
            continue
        before = [r for r in rows if cross is None or r["t"] < cross]
        at_cross = before[-1]["flow_distance"] if before else rows[0]["flow_distance"]
        positive = [r["flow_distance"] / lr for r in before if r["t"] > 0]
        end = rows[-1]["flow_distance"]
        out[lr] = {"cross_t": cross, "gap_at_cross": at_cross, "gap_end": end,
                   "t_end": rows[-1]["t"],
                   "growth": end / at_cross if at_cross > 0 else math.inf,
                   "gap_over_eta": float(np.median(positive)) if positive else None}
    return out


def _clean(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in row.items()}


def experiment(preset: GdVsFlowPreset, settings: dict, *, emit=None,
               stop: threading.Event | None = None) -> dict:
    """The flow, its sharpness, and GD at each ``settings["lr"] * ratio`` compared with it.

    ``emit(datasets, done)`` receives partial datasets, ``done`` counting GD steps over
    all step sizes. Returns ``status``, ``runs`` ({lr: rows}), ``sharpness``,
    ``flow_travel`` (:math:`\\lVert\\theta(T) - \\theta(0)\\rVert` over the horizon), ``summary``
    (:func:`gap_summary`, keyed by the step size as text), ``datasets`` and, when a GD run
    blew up, ``diverged``.  ``settings["model"]`` (optional) replaces the net's model:
    ``"fc-relu"`` or ``"fc-linear"`` are the homogeneous nets of the paper's theory.
    """
    lr = settings["lr"]
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} is not allowed; use a step size > 0")
    model = settings.get("model", preset.net.model)
    if model not in MODELS:
        raise ValueError(f"model={model!r} is not allowed; use one of {', '.join(MODELS)}")
    preset = preset.replace(net=preset.net.replace(model=model))
    try:
        flow, sharp = flow_reference(preset)
    except FlowStopped:
        return {"status": "stopped", "datasets": {}}
    lrs = step_sizes(preset, lr)
    runs: dict[float, list] = {}
    datasets = {"sharpness": [dict(r, kind="flow S(t)") for r in sharp],
                "edges": [{"edge": 2 / x, "eta": f"η = {x:g}"} for x in lrs],
                "gap": [], "loss": [{"t": r["t"], "loss": r["loss"], "curve": "gradient flow"}
                                    for r in sharp]}
    result = {"status": "finished", "runs": runs, "sharpness": sharp, "lrs": lrs,
              "model": model,
              "flow_travel": float((flow.vector(flow.t_end) - flow.vector(0.0)).norm())}
    if emit is not None:
        emit(dict(datasets), 0)
    done = 0
    for x in lrs:
        runs[x], run = _gd_run(preset, flow, x, datasets, emit, done, stop)
        done += gd_steps(preset, x)
        if run.status == "stopped":
            result["status"] = "stopped"
            break
        if run.diverged and "diverged" not in result:
            step, value = run.diverged_at
            result["status"] = "diverged"
            result["diverged"] = {"step": step, "loss": value if math.isfinite(value) else 1e308,
                                  "lr": x, "stage": f"GD at eta = {x:g}"}
    result["runs"] = {str(k): v for k, v in runs.items()}
    result["summary"] = {str(k): v for k, v in gap_summary(runs, sharp).items()}
    result["datasets"] = datasets
    return result


def _gd_run(preset: GdVsFlowPreset, flow, lr: float, datasets: dict, emit, offset: int, stop):
    """GD at ``lr`` against the flow, its rows streamed into ``datasets``; ``(rows, run)``."""
    steps = gd_steps(preset, lr)
    every = max(1, round(preset.horizon / (preset.points * lr)))
    data, model = preset.net.build()
    rows: list[dict] = []
    label = f"η = {lr:g}"

    def on_row(row):
        row = _clean(row)
        rows.append(row)
        if row.get("flow_distance") is not None:
            datasets["gap"].append({"t": row["t"], "distance": row["flow_distance"],
                                    "eta": label})
            datasets["loss"].append({"t": row["t"], "loss": row["loss"], "curve": label})
        if emit is not None:
            emit({"gap": list(datasets["gap"]), "loss": list(datasets["loss"])},
                 offset + row["step"])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = fit(model, data, preset.net.loss, torch.optim.SGD(model.parameters(), lr=lr),
                  steps=steps, record_every=every, probes=[FlowDistanceProbe(flow, every)],
                  callbacks=[on_row], stop=stop, eval_test=False)
    finally:
        torch.set_num_threads(threads)
    return rows, run
