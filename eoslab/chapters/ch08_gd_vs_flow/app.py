"""Chapter 08's app: gradient descent tracks gradient flow until the flow gets too sharp.

Elkabetz and Cohen (NeurIPS 2021, arXiv 2107.06608). The step-size slider sets the
largest :math:`\\eta`; GD also runs at the preset's smaller ``lr_ratios`` of it. The slider
spans ``LR_SPAN`` times the preset's ``lr_edge`` (:math:`2/\\lambda_0`, GD's stability
threshold at the initialisation). The network menu picks Cohen et al.'s tanh net or one of
the homogeneous nets (ReLU, linear) of the paper's theory. The pipeline is
:func:`eoslab.chapters.ch08_gd_vs_flow.experiment.experiment`; this module draws it on
:class:`~eoslab.ui.app.ChapterApp`'s lifecycle.

Usage::

    app = GdVsFlowApp("quick", store=False, auto_run=False)
    app.run(wait=True)
    app.result["summary"]
"""

from __future__ import annotations

import html
import math

import altair as alt
import ipywidgets as widgets

from eoslab.chapters.ch08_gd_vs_flow.experiment import MODELS, experiment, gd_steps, step_sizes
from eoslab.ui.app import ChapterApp

__all__ = ["GdVsFlowApp", "gd_vs_flow_layout", "run_state"]

MODEL_LABELS = {"fc-tanh": "tanh (not homogeneous)",
                "fc-relu": "ReLU (homogeneous)", "fc-linear": "linear (homogeneous)"}


def gd_vs_flow_layout():
    """Gap to the flow (log) | flow sharpness with 2/η rules; losses below, against time."""
    eta = alt.Color("eta:N", title="GD step size η")
    gap = alt.Chart(alt.Data(name="gap")).mark_line().encode(
        x=alt.X("t:Q", title="time t = kη"),
        y=alt.Y("distance:Q", title="‖θ_k − θ(kη)‖",
                scale=alt.Scale(type="log", domain={"unionWith": [0.01, 0.1]})),
        color=eta).transform_filter("datum.distance > 0").properties(
        title="distance from GD to the gradient flow", width=300, height=200)
    sharp = alt.Chart(alt.Data(name="sharpness")).mark_line(color="black").encode(
        x=alt.X("t:Q", title="time t"),
        y=alt.Y("sharpness:Q", title="sharpness S(t) of the flow",
                scale=alt.Scale(domain={"unionWith": [0, 1]})))
    edges = alt.Chart(alt.Data(name="edges")).mark_rule(strokeDash=[6, 4]).encode(
        y="edge:Q", color=eta)
    sharp_panel = alt.layer(sharp, edges).properties(
        title="flow sharpness (black); dashed: 2/η", width=300, height=200)
    loss = alt.Chart(alt.Data(name="loss")).mark_line().encode(
        x=alt.X("t:Q", title="time t"),
        y=alt.Y("loss:Q", title="train loss",
                scale=alt.Scale(type="log", domain={"unionWith": [0.01, 1.0]})),
        color=alt.Color("curve:N", title="curve"),
        strokeDash=alt.StrokeDash("curve:N", legend=None)).transform_filter(
        "datum.loss > 0").properties(title="loss of the flow and of GD", width=300, height=200)
    return alt.vconcat(alt.hconcat(gap, sharp_panel), loss).resolve_scale(
        color="independent").properties(
        datasets={"gap": [], "sharpness": [], "edges": [], "loss": []})


def run_state(lr: float, s: dict, diverged: dict | None) -> str:
    """The state of GD at ``lr`` against the flow, from its :func:`gap_summary` entry.

    >>> run_state(0.5, {"cross_t": None, "gap_end": 0.01, "t_end": 60.0}, None)[:30]
    'η = 0.5: tracking the flow (it'
    """
    edge = 2 / lr
    if diverged is not None and float(diverged["lr"]) == lr:
        return f"η = {lr:g}: diverged at step {diverged['step']} (2/η = {edge:.3g})"
    if s["cross_t"] is None:
        return (f"η = {lr:g}: tracking the flow (its sharpness stays below 2/η = {edge:.3g}); "
                f"gap {s['gap_end']:.3g} at t = {s['t_end']:.3g}")
    if s["cross_t"] == 0 or not math.isfinite(s["growth"]):
        return (f"η = {lr:g}: not tracking: the flow is sharper than 2/η = {edge:.3g} from the "
                f"start; gap {s['gap_end']:.3g} at t = {s['t_end']:.3g}")
    return (f"η = {lr:g}: left the flow after its sharpness passed 2/η = {edge:.3g} at "
            f"t = {s['cross_t']:.3g}; gap {s['gap_at_cross']:.3g} there, {s['gap_end']:.3g} at "
            f"t = {s['t_end']:.3g} ({s['growth']:.3g}×)")


class GdVsFlowApp(ChapterApp):
    """The step-size slider (``eoslab-lr-slider``: the largest η), network menu, Run/Stop.

    CSS: ``eoslab-model-menu`` for the network menu; three panels.
    """

    CHAPTER = "08"
    KIND = "ch08_gd_vs_flow"
    LR_RANGE = (0.02, 4.0, 0.01)  # used where a preset has no lr_edge
    LR_SPAN = (0.1, 3.0)  # the slider spans 0.1x to 3x the edge 2/lambda_0
    LR_LABEL = "largest step size η"
    LR_EDGE_LABEL = "largest η (2/λ₀ = {edge:.2g})"
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        menu = widgets.Dropdown(options=[(MODEL_LABELS[m], m) for m in MODELS],
                                value=self.preset.net.model, description="network",
                                layout=widgets.Layout(width="480px"),
                                style={"description_width": "160px"})
        menu.add_class("eoslab-model-menu")
        return {"model": menu}

    def layout(self, settings: dict):
        return gd_vs_flow_layout()

    def total_work(self, settings: dict) -> int:
        return sum(gd_steps(self.preset, x) for x in step_sizes(self.preset, settings["lr"]))

    def describe(self, result: dict) -> str:
        lines = []
        sharp = result.get("sharpness") or []
        if sharp:
            lines.append(f"flow sharpness S(0) = {sharp[0]['sharpness']:.3g} (edge 2/S(0) = "
                         f"{2 / sharp[0]['sharpness']:.3g}), S = {sharp[-1]['sharpness']:.3g} "
                         f"at t = {sharp[-1]['t']:.3g}")
        summary, diverged = result.get("summary", {}), result.get("diverged")
        for key in sorted(summary, key=float, reverse=True):
            lines.append(run_state(float(key), summary[key], diverged))
        if diverged is not None and not any(float(k) == diverged["lr"] for k in summary):
            lines.append(f"η = {diverged['lr']:g}: diverged at step {diverged['step']} "
                         f"(2/η = {2 / diverged['lr']:.3g})")
        return "<br>".join(html.escape(line) for line in lines)

    def describe_diverged(self, result: dict) -> str:
        return self.describe(result)
