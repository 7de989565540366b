"""Chapter 05's app: normalised GD and GD on sqrt(L) reach the edge, then flatten.

Arora, Li, Panigrahi (ICML 2022, arXiv 2205.09745).  Two step-size sliders (normalised GD
and GD on :math:`\\sqrt L`) and Run drive
:func:`~eoslab.chapters.ch05_normalized_gd.experiment.experiment`; the chart shows the loss
:math:`L`, the sharpness :math:`S` of :math:`L`, and the effective edge ratio
:math:`\\eta_{\\mathrm{eff}} S / 2` of every run against the step.

Usage (in a notebook)::

    from eoslab.chapters.ch05_normalized_gd.app import NormalizedGDApp
    app = NormalizedGDApp()  # preset: preset_for("05")
    app.run()  # trains in the background
    app
"""

from __future__ import annotations

import html

import altair as alt

from eoslab.chapters.ch05_normalized_gd.experiment import experiment, run_label
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import slider

__all__ = ["NormalizedGDApp", "normalized_layout"]


def normalized_layout():
    """Loss, sharpness and the effective edge ratio against the step."""
    base = alt.Chart(alt.Data(name="history"))
    color = alt.Color("run:N", title=None)
    loss = base.mark_line().encode(
        x="step:Q", y=alt.Y("loss:Q", title="train loss L", scale=alt.Scale(type="log")),
        color=color).transform_filter("datum.loss > 0").properties(title="loss L (MSE)")
    sharp = base.mark_line(point=True).encode(
        x="step:Q", y=alt.Y("sharpness:Q", title="sharpness S of L"), color=color
    ).transform_filter("isValid(datum.sharpness)").properties(
        title="sharpness: rises to the edge, then falls")
    ratio = alt.layer(
        base.mark_line(point=True).encode(
            x="step:Q", y=alt.Y("edge_ratio:Q", title="eta_eff * S / 2"), color=color
        ).transform_filter("isValid(datum.edge_ratio)"),
        alt.Chart(alt.Data(values=[{"one": 1.0}])).mark_rule(color="black").encode(y="one:Q"),
    ).properties(title="1 = edge of stability of the effective step")
    panels = [p.properties(width=260, height=200) for p in (loss, sharp, ratio)]
    return alt.hconcat(*panels).properties(datasets={"history": []})


class NormalizedGDApp(ChapterApp):
    """Step-size sliders, Run/Stop and the three panels.

    ``eoslab-lr-slider`` sets normalised GD's step size, ``eoslab-sqrt-lr-slider`` that of
    GD on sqrt(L).
    """

    CHAPTER = "05"
    KIND = "ch05_normalized_gd"
    LR_RANGE = (0.01, 20.0, 0.01)
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        return {"sqrt_lr": slider("GD on sqrt(L): eta", self.preset.sqrt_lr, 0.005, 0.5,
                                  0.005, "eoslab-sqrt-lr-slider", continuous=False)}

    def layout(self, settings: dict):
        return normalized_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.steps * len(self.preset.methods)

    def describe(self, result: dict) -> str:
        lines = []
        for method, run in result["runs"].items():
            s = run["summary"]
            if s is None:
                continue
            edge = "n/a" if s["edge_median"] is None else f"{s['edge_median']:.2f}"
            lines.append(html.escape(
                f"{run_label(method, run['lr'])}: sharpness peaks at {s['peak']:.3g} (step "
                f"{s['peak_step']}) and ends at {s['final']:.3g}, {s['ratio']:.2f}x the peak; "
                f"median eta_eff*S/2 after the peak {edge}"))
        return "<br>".join(lines)
