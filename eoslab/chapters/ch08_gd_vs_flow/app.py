"""Chapter 08's app: gradient descent tracks gradient flow until the flow gets too sharp.

Elkabetz and Cohen (NeurIPS 2021, arXiv 2107.06608). The step-size slider sets the
largest :math:`\\eta`; GD also runs at the preset's smaller ``lr_ratios`` of it. The
pipeline is :func:`eoslab.chapters.ch08_gd_vs_flow.experiment.experiment`; this module
draws it on :class:`~eoslab.ui.app.ChapterApp`'s lifecycle.

Usage::

    app = GdVsFlowApp("quick", store=False, auto_run=False)
    app.run(wait=True)
    app.result["summary"]
"""

from __future__ import annotations

import html

import altair as alt

from eoslab.chapters.ch08_gd_vs_flow.experiment import experiment, gd_steps, step_sizes
from eoslab.ui.app import ChapterApp

__all__ = ["GdVsFlowApp", "gd_vs_flow_layout"]


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


class GdVsFlowApp(ChapterApp):
    """The step-size slider (``eoslab-lr-slider``: the largest eta), Run/Stop, three panels."""

    CHAPTER = "08"
    KIND = "ch08_gd_vs_flow"
    LR_RANGE = (0.02, 4.0, 0.01)
    experiment = staticmethod(experiment)

    def layout(self, settings: dict):
        return gd_vs_flow_layout()

    def total_work(self, settings: dict) -> int:
        return sum(gd_steps(self.preset, x) for x in step_sizes(self.preset, settings["lr"]))

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
