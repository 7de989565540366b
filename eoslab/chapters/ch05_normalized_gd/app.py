"""Chapter 05's app: normalised GD and GD on sqrt(L) reach the edge, then flatten.

Arora, Li, Panigrahi (ICML 2022, arXiv 2205.09745).  Two step-size sliders (normalised GD
and GD on :math:`\\sqrt L`) and Run drive
:func:`~eoslab.chapters.ch05_normalized_gd.experiment.experiment`; the chart shows the loss
:math:`L`, the sharpness :math:`S` of :math:`L`, and the effective edge ratio
:math:`\\eta_{\\mathrm{eff}} S / 2` of every run against the step; the status line names each
run's state (not training, training below its edge, at the edge, sharpness falling,
diverged at step t).

Usage (in a notebook)::

    from eoslab.chapters.ch05_normalized_gd.app import NormalizedGDApp
    app = NormalizedGDApp()  # preset: preset_for("05")
    app.run()  # trains in the background
    app
"""

from __future__ import annotations

import html

import altair as alt

from eoslab.chapters.ch05_normalized_gd.experiment import METHODS, experiment, run_label
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import slider
from eoslab.ui.lr_slider import span_range

__all__ = ["NormalizedGDApp", "normalized_layout", "run_state"]


def normalized_layout(steps: int = 100):
    """Loss, sharpness and the effective edge ratio against the step.

    Every axis's domain is the union of the data with a finite range (``steps`` wide on the
    step axis), so the empty chart of a run's start draws without infinite extents.
    """
    base = alt.Chart(alt.Data(name="history"))
    color = alt.Color("run:N", title="run", legend=alt.Legend(orient="bottom", columns=1,
                                                              labelLimit=320))
    x = alt.X("step:Q", title="step t", scale=alt.Scale(domain={"unionWith": [0, steps]}))
    loss = base.mark_line().encode(
        x=x, y=alt.Y("loss:Q", title="train loss L",
                     scale=alt.Scale(type="log", domain={"unionWith": [0.01, 1.0]})),
        color=color).transform_filter("datum.loss > 0").properties(title="loss L (MSE)")
    sharp = base.mark_line().encode(
        x=x, y=alt.Y("sharpness:Q", title="sharpness S of L",
                     scale=alt.Scale(domain={"unionWith": [0, 1]})), color=color
    ).transform_filter("isValid(datum.sharpness)").properties(
        title="sharpness: rises to the edge, then falls")
    ratio = alt.layer(
        base.mark_line().encode(
            x=x, y=alt.Y("edge_ratio:Q", title="η_eff S / 2",
                         scale=alt.Scale(domain={"unionWith": [0, 1.2]})), color=color
        ).transform_filter("isValid(datum.edge_ratio)"),
        alt.Chart(alt.Data(values=[{"one": 1.0}])).mark_rule(
            color="black", strokeDash=[6, 4]).encode(y="one:Q"),
    ).properties(title="η_eff S / 2; dashed: 1, the edge of the effective step")
    panels = [p.properties(width=280, height=190) for p in (loss, sharp, ratio)]
    return alt.vconcat(alt.hconcat(panels[0], panels[1]), panels[2]).properties(
        datasets={"history": []})


def run_state(run: dict) -> str:
    """A finished run's state from its drawn loss and edge ratio.

    *not training* (the loss fell by less than 10%), *at the edge, sharpness falling*
    (median :math:`\\eta_{\\mathrm{eff}} S/2` after the peak within 0.8-1.3 and the sharpness
    down by 10% or more), *at the edge* or *training below its edge*.

    >>> run_state({"history": [{"loss": 1.0}, {"loss": 0.95}], "summary": None})
    'not training'
    """
    losses = [r["loss"] for r in run["history"] if r.get("loss") is not None]
    s = run["summary"]
    if len(losses) < 2 or not losses[-1] < 0.9 * losses[0]:
        return "not training"
    if s is None or s["edge_median"] is None or s["edge_median"] < 0.8:
        return "training below its edge"
    if s["edge_median"] <= 1.3 and s["ratio"] <= 0.9:
        return "at the edge, sharpness falling"
    return "at the edge" if s["edge_median"] <= 1.3 else "training above its edge"


class NormalizedGDApp(ChapterApp):
    """Step-size sliders, Run/Stop and the three panels.

    ``eoslab-lr-slider`` sets normalised GD's step size, ``eoslab-sqrt-lr-slider`` that of
    GD on sqrt(L).  Each spans ``LR_SPAN`` times its edge at the initialisation (the
    preset's ``lr_edge`` = :math:`2\\lVert\\nabla L_0\\rVert/\\lambda_0` and ``sqrt_lr_edge`` =
    :math:`4\\sqrt{L_0}/\\lambda_0`), not :math:`2/\\lambda_0`: the effective step sizes are
    :math:`\\eta/\\lVert\\nabla L\\rVert` and :math:`\\eta/(2\\sqrt L)`.
    """

    CHAPTER = "05"
    KIND = "ch05_normalized_gd"
    LR_RANGE = (0.01, 20.0, 0.01)  # used where a preset has no lr_edge
    SQRT_RANGE = (0.005, 2.0, 0.005)  # used where a preset has no sqrt_lr_edge
    LR_SPAN = (0.02, 4.0)  # each slider spans 0.02x to 4x its edge at the initialisation
    LR_LABEL, LR_EDGE_LABEL = "NGD η", "NGD η (edge {edge:.2g})"
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        low, high = self.slider_range("sqrt_lr", self.preset)
        return {"sqrt_lr": slider(_label("GD on √L: η", self.preset.sqrt_lr_edge),
                                  self.preset.sqrt_lr, low, high, self.SQRT_RANGE[2],
                                  "eoslab-sqrt-lr-slider", continuous=False)}

    def slider_range(self, name: str, preset) -> tuple[float, float] | None:
        if name == "sqrt_lr":
            return span_range(preset.sqrt_lr_edge, self.LR_SPAN, self.SQRT_RANGE[:2])
        return super().slider_range(name, preset)

    def _switch_preset(self, preset_name: str) -> None:
        super()._switch_preset(preset_name)  # relabels "lr"; "sqrt_lr" has its own edge
        self.sliders["sqrt_lr"].description = _label("GD on √L: η", self.preset.sqrt_lr_edge)

    def layout(self, settings: dict):
        return normalized_layout(self.preset.steps)

    def total_work(self, settings: dict) -> int:
        return self.preset.steps * len(self.preset.methods)

    def describe(self, result: dict) -> str:
        lines = []
        for method, run in result["runs"].items():
            s = run["summary"]
            name = run_label(method, run["lr"])
            if run["status"] == "diverged":
                d = run["diverged"]
                loss = "overflowed" if d["loss"] >= 1e300 else f"{d['loss']:.2g}"
                lines.append(f"{name}: diverged at step {d['step']} (loss {loss})")
                continue
            if s is None:
                lines.append(f"{name}: {run_state(run)}; no sharpness measured")
                continue
            edge = "n/a" if s["edge_median"] is None else f"{s['edge_median']:.2f}"
            lines.append(
                f"{name}: {run_state(run)}; sharpness peaks at {s['peak']:.3g} (step "
                f"{s['peak_step']}) and ends at {s['final']:.3g}, {s['ratio']:.2f}× the peak; "
                f"median η_eff S/2 after the peak {edge}")
        for method in self.preset.methods:
            if method not in result["runs"]:
                lines.append(f"{METHODS[method][0]}: not run (stopped)")
        return "<br>".join(html.escape(line) for line in lines)

    def describe_diverged(self, result: dict) -> str:
        if "runs" not in result:  # diverged before any method's run was summarised
            return super().describe_diverged(result)
        return self.describe(result)


def _label(name: str, edge: float | None) -> str:
    return name if edge is None else f"{name} (edge {edge:.2g})"
