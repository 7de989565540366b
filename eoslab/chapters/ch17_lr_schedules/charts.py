"""Chapter 17's figure: η(t), the range test, the train loss, and sharpness vs 2/η(t).

The layout reads the named datasets of
:func:`eoslab.chapters.ch17_lr_schedules.experiment.schedule_data`, so the app builds it
once and streams only the data.
"""

from __future__ import annotations

import altair as alt

from eoslab.chapters.ch17_lr_schedules.experiment import schedule_data
from eoslab.optimizers.schedules import RangeTest
from eoslab.ui import plots

__all__ = ["log_axis", "schedule_chart", "schedule_layout"]

W, H = plots.WIDTH, plots.HEIGHT


def log_axis(title: str) -> alt.Axis:
    """A log axis whose labels never collide.

    At most about five ticks, a short number format, and labels that would overlap
    dropped (Vega's greedy rule).
    """
    return alt.Axis(title=title, tickCount=5, format="~g", labelOverlap="greedy",
                    labelSeparation=6)


def schedule_layout():
    """Four panels on the datasets curve, range, suggested, history, edge and sharpness."""
    step = alt.X("step:Q", title="step t")
    eta = alt.Chart(alt.Data(name="curve")).mark_line(color="#1f77b4").encode(
        x=step, y=alt.Y("lr:Q", title="step size η(t)")).properties(
        width=W, height=H, title="the schedule η(t)")
    loss = alt.Chart(alt.Data(name="history")).mark_line(color="#d62728").encode(
        x=step, y=alt.Y("loss:Q", scale=alt.Scale(type="log"),
                        axis=log_axis("train loss (log)"))).properties(
        width=W, height=H, title="train loss (spikes: catapults)")
    kind = alt.Color("curve:N", title="sharpness S vs 2/η(t)", scale=alt.Scale(
        domain=["sharpness", "2/η(t)"], range=["#2ca02c", "#555555"]))
    edge = alt.Chart(alt.Data(name="edge")).mark_line(strokeDash=[6, 4]).encode(
        x=step, y=alt.Y("value:Q", scale=alt.Scale(type="log"),
                        axis=log_axis("sharpness S (log)")), color=kind)
    sharp = alt.Chart(alt.Data(name="sharpness")).mark_line(point=True).encode(
        x=step, y=alt.Y("value:Q", scale=alt.Scale(type="log")), color=kind)
    sharpness = alt.layer(edge, sharp).properties(
        width=W, height=H, title="sharpness S and 2/η(t)")
    lr_axis = alt.X("lr:Q", scale=alt.Scale(type="log"), axis=log_axis("step size η (log)"))
    rng = alt.Chart(alt.Data(name="range")).mark_line(color="#9467bd").encode(
        x=lr_axis, y=alt.Y("loss:Q", scale=alt.Scale(type="log"), axis=log_axis("loss (log)")),
        strokeDash=alt.StrokeDash("series:N", title="range test"))
    band = alt.Chart(alt.Data(name="suggested")).mark_rect(opacity=0.15, color="#9467bd").encode(
        x="low:Q", x2="high:Q")
    range_test = alt.layer(band, rng).properties(
        width=W, height=H, title="LR range test (shaded: suggested range)")
    return alt.vconcat(alt.hconcat(eta, range_test), alt.hconcat(loss, sharpness)).resolve_scale(
        color="independent", strokeDash="independent")


def schedule_chart(curve, history=(), range_result: RangeTest | None = None):
    """The chapter-17 figure with its data."""
    return plots.with_datasets(schedule_layout(), schedule_data(curve, history, range_result))
