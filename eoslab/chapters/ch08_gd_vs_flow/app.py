"""Chapter 08's app: gradient descent tracks gradient flow until the flow gets too sharp.

Elkabetz and Cohen (NeurIPS 2021, arXiv 2107.06608).  The preset's net is integrated once
along the gradient flow (:func:`eoslab.chapters.ch08_gd_vs_flow.gradient_flow.gradient_flow`, adaptive RK45 with
dense output) and its sharpness :math:`S(t)` is tracked along it; then GD runs at step
sizes :math:`\\eta, \\eta/2, \\dots` (the preset's ``lr_ratios``) through
:func:`eoslab.core.train.fit`, each compared with the flow at the matched times :math:`t = k\\eta`
by :class:`~eoslab.chapters.ch08_gd_vs_flow.gradient_flow.FlowDistanceProbe`.  :func:`gap_summary` reads off, per
step size, when the flow's sharpness crosses :math:`2/\\eta` and how the gap behaves
before and after: the chapter's figures.
"""

from __future__ import annotations

import functools
import html
import math
import threading

import altair as alt
import numpy as np
import torch

from eoslab.chapters.ch08_gd_vs_flow.gradient_flow import (
    FlowDistanceProbe,
    FlowStopped,
    flow_sharpness,
    gradient_flow,
)
from eoslab.core.experiment import build_problem
from eoslab.core.train import fit
from eoslab.curvature.objective import Objective
from eoslab.ui.staged import StagedApp

__all__ = ["GdVsFlowApp", "flow_reference", "gap_summary", "gd_vs_flow_experiment"]

_FLOW_KEYS = ("dataset", "n_train", "model", "width", "depth", "loss", "horizon",
              "sharpness_points", "model_seed", "dtype")


def _problem(values):
    return build_problem(values, "float32")


@functools.lru_cache(maxsize=4)
def _flow_cached(items: tuple):
    values = dict(items)
    data, model = _problem(values)
    objective = Objective(model, values["loss"], data.x_train, data.y_train)
    flow = gradient_flow(objective, t_end=float(values["horizon"]))
    times = np.linspace(0.0, flow.t_end, int(values["sharpness_points"]))
    return flow, flow_sharpness(flow, times, tol=1e-3)


def flow_reference(values):
    """``(flow, sharpness_rows)`` of a preset's net, cached per setting (the flow does not
    depend on the GD step size, so moving the slider reuses it).
    """
    items = tuple((k, values.get(k)) for k in _FLOW_KEYS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _flow_cached(items)
    finally:
        torch.set_num_threads(threads)


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


def gd_vs_flow_experiment(values, lr: float, emit=None,
                          stop: threading.Event | None = None) -> dict:
    """The flow, its sharpness, and GD at each ``lr * ratio`` compared with it.

    Returns ``status``, ``runs`` ({lr: rows}), ``sharpness``, ``summary``, ``datasets``
    and, when a GD run blew up, ``diverged``.
    """
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} is not allowed; use a step size > 0")
    try:
        flow, sharp = flow_reference(values)
    except FlowStopped:
        return {"status": "stopped", "datasets": {}}
    lrs = sorted({round(lr * r, 6) for r in values["lr_ratios"]}, reverse=True)
    runs: dict[float, list] = {}
    datasets = {"sharpness": [dict(r, kind="flow S(t)") for r in sharp],
                "edges": [{"edge": 2 / x, "eta": f"eta = {x:g}"} for x in lrs],
                "gap": [], "loss": [{"t": r["t"], "loss": r["loss"], "curve": "gradient flow"}
                                    for r in sharp]}
    result = {"status": "finished", "runs": runs, "sharpness": sharp, "lrs": lrs}
    done = 0
    if emit is not None:
        emit(dict(datasets), 0)
    for x in lrs:
        steps = max(1, math.floor(values["horizon"] / x + 1e-9))
        every = max(1, round(values["horizon"] / (values["points"] * x)))
        data, model = _problem(values)
        rows: list[dict] = []
        label = f"eta = {x:g}"

        def on_row(row, rows=rows, label=label, offset=done):
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
            run = fit(model, data, values["loss"], torch.optim.SGD(model.parameters(), lr=x),
                      steps=steps, record_every=every, probes=[FlowDistanceProbe(flow, every)],
                      callbacks=[on_row], stop=stop, eval_test=False)
        finally:
            torch.set_num_threads(threads)
        runs[x] = rows
        done += steps
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


def gd_vs_flow_layout():
    """Gap to the flow (log) | flow sharpness with 2/eta rules | losses, against time."""
    eta = alt.Color("eta:N", title="GD step size")
    gap = alt.Chart(alt.Data(name="gap")).mark_line(point=True).encode(
        x=alt.X("t:Q", title="time t = k * eta"),
        y=alt.Y("distance:Q", title="|theta_k - theta(k eta)|", scale=alt.Scale(type="log")),
        color=eta).transform_filter("datum.distance > 0").properties(
        title="distance from GD to the gradient flow", width=300, height=220)
    sharp = alt.Chart(alt.Data(name="sharpness")).mark_line(color="black", point=True).encode(
        x=alt.X("t:Q", title="time t"), y=alt.Y("sharpness:Q", title="sharpness S(t) of the flow"))
    edges = alt.Chart(alt.Data(name="edges")).mark_rule(strokeDash=[6, 4]).encode(
        y="edge:Q", color=eta)
    sharp_panel = alt.layer(sharp, edges).properties(
        title="flow sharpness; dashed: 2/eta", width=300, height=220)
    loss = alt.Chart(alt.Data(name="loss")).mark_line().encode(
        x=alt.X("t:Q", title="time t"),
        y=alt.Y("loss:Q", title="train loss", scale=alt.Scale(type="log")),
        color=alt.Color("curve:N", title="curve"),
        strokeDash=alt.StrokeDash("curve:N", legend=None)).transform_filter(
        "datum.loss > 0").properties(title="loss of the flow and of GD", width=300, height=220)
    return alt.hconcat(gap, sharp_panel, loss).resolve_scale(color="independent").properties(
        datasets={"gap": [], "sharpness": [], "edges": [], "loss": []})


class GdVsFlowApp(StagedApp):
    """The step-size slider (``eoslab-lr-slider``: the largest eta), Run/Stop, three panels."""

    CHAPTER = "08"
    KIND = "ch08_gd_vs_flow"
    LR_RANGE = (0.02, 4.0, 0.01)

    def layout(self):
        return gd_vs_flow_layout()

    def total_work(self, settings: dict) -> int:
        horizon = self.preset["horizon"]
        return sum(max(1, int(horizon / (settings["lr"] * r))) for r in
                   self.preset["lr_ratios"])

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        return gd_vs_flow_experiment(self.preset.values, settings["lr"], emit, stop)

    def describe(self, result: dict) -> str:
        lines = []
        for key in sorted(result["summary"], key=float, reverse=True):
            s = result["summary"][key]
            if s["cross_t"] is None:
                lines.append(f"eta = {float(key):g}: the flow stays below 2/eta = "
                             f"{2 / float(key):.3g}; GD stays within {s['gap_end']:.3g} of it "
                             f"up to t = {s['t_end']:.3g}")
            else:
                lines.append(f"eta = {float(key):g}: the flow's sharpness passes 2/eta = "
                             f"{2 / float(key):.3g} at t = {s['cross_t']:.3g}; the gap grows "
                             f"from {s['gap_at_cross']:.3g} there to {s['gap_end']:.3g} at t = "
                             f"{s['t_end']:.3g} ({s['growth']:.3g}x)")
        return "<br>".join(html.escape(line) for line in lines)
