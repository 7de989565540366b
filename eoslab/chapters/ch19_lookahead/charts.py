"""Chapter 19's figure: the paths on the contours, the loss, and the stability diagram.

The layout reads the named datasets of
:func:`eoslab.chapters.ch19_lookahead.experiment.lookahead_data`, so a live app builds it
once and then swaps only the data.
"""

from __future__ import annotations

import altair as alt

from eoslab.chapters.ch01_quadratic_stability.quadratic import Quadratic
from eoslab.chapters.ch19_lookahead.experiment import LR_MAX, lookahead_data
from eoslab.ui import plots

__all__ = ["lookahead_chart", "lookahead_layout"]

W, H = plots.WIDTH, plots.HEIGHT


def lookahead_layout(view: float = 2.4, max_lr: float = LR_MAX):
    """Contours and paths in ``[-view, view]^2``, the loss, and the rates on ``[0, max_lr]``."""
    dom = alt.Scale(domain=[-view, view])
    xy = {"x": alt.X("x:Q", scale=dom, title="w₁"), "y": alt.Y("y:Q", scale=dom, title="w₂")}
    levels = alt.Chart(alt.Data(name="levels")).mark_line(color="#ccc", clip=True).encode(
        **xy, detail="level:N", order="order:Q")
    color = alt.Color("path:N", title="path", scale=alt.Scale(
        domain=["GD alone", "fast weights", "slow weights"],
        range=["#999999", "#ff7f0e", "#1f77b4"]))
    # GD alone grey dashed and thin, the fast weights thin and translucent, the slow path
    # thick: where the zig-zags overlap, each stays visible
    paths = alt.Chart(alt.Data(name="paths")).mark_line(clip=True).encode(
        **xy, color=color, order="step:Q",
        strokeDash=alt.StrokeDash("path:N", legend=None, scale=alt.Scale(
            domain=["GD alone", "fast weights", "slow weights"],
            range=[[6, 4], [1, 0], [1, 0]])),
        strokeWidth=alt.condition("datum.path == 'slow weights'", alt.value(2.5), alt.value(1.2)),
        opacity=alt.condition("datum.path == 'fast weights'", alt.value(0.55), alt.value(0.9)))
    slow = alt.Chart(alt.Data(name="paths")).transform_filter(
        "datum.path == 'slow weights'").mark_circle(size=40, clip=True, color="#1f77b4").encode(
        **xy, tooltip=["step:Q", "loss:Q"])
    plane = alt.layer(levels, paths, slow).properties(
        width=H + 60, height=H + 60, title="fast zig-zag, slow path (dots: every k steps)")
    loss = alt.Chart(alt.Data(name="paths")).mark_line(clip=True).encode(
        x=alt.X("step:Q"), y=alt.Y("loss:Q", scale=alt.Scale(type="log"), title="loss"),
        color=color).transform_filter("datum.loss > 1e-14 && datum.loss < 1e12").properties(
        width=W, height=H, title="loss")
    lr_scale = alt.Scale(domain=[0, max_lr])
    rates = alt.Chart(alt.Data(name="rates")).mark_line().encode(
        x=alt.X("lr:Q", scale=lr_scale, title="step size η"),
        y=alt.Y("rate:Q", title="error factor per step", scale=alt.Scale(domain=[0, 1.5],
                                                                          clamp=True)),
        color=alt.Color("method:N", title="optimiser"))
    one = alt.Chart(alt.Data(values=[{"one": 1.0}])).mark_rule(color="black").encode(y="one:Q")
    edges = alt.Chart(alt.Data(name="thresholds")).mark_rule(strokeDash=[6, 4]).encode(
        x=alt.X("threshold:Q", scale=lr_scale), color=alt.Color("method:N"))
    now = alt.Chart(alt.Data(name="current")).mark_rule(color="red").encode(
        x=alt.X("lr:Q", scale=lr_scale))
    clipped = alt.Chart(alt.Data(name="clipped")).mark_text(
        align="right", baseline="top", color="#555", fontStyle="italic").encode(
        x=alt.value(W - 4), y=alt.value(4), text="note:N")
    stability = alt.layer(rates, one, edges, now, clipped).properties(
        width=W, height=H, title="below 1 converges; dashed: 2/λ_max and η*")
    return alt.hconcat(plane, alt.vconcat(loss, stability).resolve_scale(
        color="independent")).resolve_scale(color="independent")


def lookahead_chart(quadratic: Quadratic, paths, lr: float, alpha: float, k: int,
                    view: float = 2.4, max_lr: float = LR_MAX):
    """The chapter-19 figure with its data.

    ``paths`` is the :class:`~eoslab.optimizers.lookahead.Paths` of
    :func:`~eoslab.optimizers.lookahead.lookahead_paths`.
    """
    return plots.with_datasets(lookahead_layout(view, max_lr),
                               lookahead_data(quadratic, paths, lr, alpha, k, max_lr))
