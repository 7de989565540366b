"""Chapter 01's figure: GD on a 2-D quadratic, its loss, and the stability diagram.

Built from a layout on named datasets and a ``*_data`` function (see
:mod:`eoslab.ui.plots`), so the live app swaps only the datasets on every slider move.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np

from eoslab.chapters.ch01_quadratic_stability.quadratic import (
    Quadratic,
    Trajectory,
    convergence_rate,
    convergence_rates,
    default_levels,
    level_sets,
)
from eoslab.ui.plots import HEIGHT, WIDTH, rows, with_datasets, y_axis

__all__ = ["quadratic_chart", "quadratic_data", "quadratic_layout"]


def quadratic_layout(view: float, max_lr: float):
    """Three panels of GD on a 2-D quadratic.

    Contours + trajectory in the box ``[-view, view]^2``, loss vs step, and the rate
    :math:`\\rho` vs :math:`\\eta` on ``[0, max_lr]`` with the thresholds.

    The rate panel shows :math:`\\rho \\in [0, 2]` (the interesting part: 1 is the edge);
    rates above 2 are drawn at 2 and the panel then says so (``clipped``).

    Datasets: ``levels`` (level, order, x, y), ``axis`` (order, x, y), ``trajectory``
    (step, x, y, loss), ``rates`` (lr, rate, method), ``current`` (lr, rate, verdict),
    ``thresholds`` (threshold, method), ``clipped`` (note; one row when a rate is above 2).
    """
    domain = alt.Scale(domain=[-view, view])
    levels = alt.Chart(alt.Data(name="levels")).mark_line(color="#bbb", clip=True).encode(
        x=alt.X("x:Q", scale=domain, title="w₁"), y=alt.Y("y:Q", scale=domain, title="w₂"),
        detail="level:N", order="order:Q")
    axis = alt.Chart(alt.Data(name="axis")).mark_line(color="#888", strokeDash=[3, 3],
                                                      clip=True).encode(
        x=alt.X("x:Q", scale=domain), y=alt.Y("y:Q", scale=domain), order="order:Q")
    path = alt.Chart(alt.Data(name="trajectory")).encode(
        x=alt.X("x:Q", scale=domain), y=alt.Y("y:Q", scale=domain), order="step:Q")
    trajectory = alt.layer(levels, axis, path.mark_line(color="#d62728", clip=True),
                           path.mark_circle(color="#d62728", size=25, clip=True).encode(
                               tooltip=["step:Q", "loss:Q"])
                           ).properties(width=HEIGHT + 40, height=HEIGHT + 40,
                                        title="GD path on the loss contours")
    loss = alt.Chart(alt.Data(name="trajectory")).mark_line(point=True, color="#d62728").encode(
        x=alt.X("step:Q"), y=y_axis("loss", "loss", True)).transform_filter(
        "datum.loss > 1e-16").properties(width=WIDTH, height=HEIGHT, title="loss")
    lr_scale = alt.Scale(domain=[0, max_lr])
    rates = alt.Chart(alt.Data(name="rates")).mark_line().encode(
        x=alt.X("lr:Q", scale=lr_scale, title="step size η"),
        y=alt.Y("rate:Q", title="per-step factor ρ", scale=alt.Scale(domain=[0, 2], clamp=True)),
        color=alt.Color("method:N", title=None))
    one = alt.Chart(alt.Data(values=[{"one": 1.0}])).mark_rule(color="black").encode(y="one:Q")
    edges = alt.Chart(alt.Data(name="thresholds")).mark_rule(strokeDash=[6, 4]).encode(
        x=alt.X("threshold:Q", scale=lr_scale), color=alt.Color("method:N"))
    current = alt.Chart(alt.Data(name="current")).mark_point(size=120, filled=True).encode(
        x=alt.X("lr:Q", scale=lr_scale), y=alt.Y("rate:Q"),
        shape=alt.Shape("verdict:N", title=None))
    clipped = alt.Chart(alt.Data(name="clipped")).mark_text(
        align="right", baseline="top", color="#555", fontStyle="italic").encode(
        x=alt.value(WIDTH - 4), y=alt.value(4), text="note:N")
    stability = alt.layer(rates, one, edges, current, clipped).properties(
        width=WIDTH, height=HEIGHT, title="ρ < 1: converges; dashed: thresholds")
    return alt.hconcat(trajectory, alt.vconcat(loss, stability))


def quadratic_data(quadratic: Quadratic, trajectory: Trajectory, max_lr: float,
                   levels: Sequence[float] | None = None, n_rates: int = 120) -> dict:
    """Datasets for :func:`quadratic_layout`."""
    start = trajectory.points[0]
    levels = default_levels(quadratic, start) if levels is None else levels
    level_rows = []
    for level, curve in zip(levels, level_sets(quadratic, levels, n=64)):
        level_rows += rows({"x": curve[:, 0], "y": curve[:, 1], "order": range(len(curve))},
                           level=f"{level:.3g}")
    top = quadratic.rotation[:, int(np.argmax(quadratic.eigenvalues))]
    reach = 4 * float(np.max(np.abs(start)) + 1)
    ends = np.asarray(quadratic.center) + np.outer([-reach, reach], top)
    beta = trajectory.momentum
    grid = np.linspace(max_lr / n_rates, max_lr, n_rates)
    methods = [("GD", 0.0)] + ([(f"heavy ball β = {beta:.3g}", beta)] if beta else [])
    rate_rows, edge_rows, top_rate = [], [], 0.0
    for name, b in methods:
        rates = convergence_rates(grid, quadratic.eigenvalues, b)
        top_rate = max(top_rate, float(np.max(rates)))
        rate_rows += rows({"lr": grid, "rate": rates}, method=name)
        if quadratic.lambda_max > 0:
            edge_rows.append({"method": name, "threshold": (2 + 2 * b) / quadratic.lambda_max})
    rate = convergence_rate(trajectory.lr, quadratic.eigenvalues, beta)
    verdict = "converges" if rate < 1 else "diverges" if rate > 1 else "on the edge"
    return {
        "levels": level_rows,
        "axis": rows({"x": ends[:, 0], "y": ends[:, 1], "order": [0, 1]}),
        "trajectory": rows({"step": trajectory.steps, "x": trajectory.points[:, 0],
                            "y": trajectory.points[:, 1], "loss": trajectory.losses}),
        "rates": rate_rows, "thresholds": edge_rows,
        "current": [{"lr": trajectory.lr, "rate": min(rate, 2.0), "verdict": verdict}],
        "clipped": ([{"note": f"ρ > 2 drawn at 2 (up to {top_rate:.3g})"}]
                    if max(top_rate, rate) > 2 else []),
    }


def quadratic_chart(quadratic: Quadratic, trajectory: Trajectory, view: float | None = None,
                    max_lr: float | None = None):
    """The chapter-01 figure: contours with the path, loss, and the stability diagram."""
    view = view or 1.6 * float(np.max(np.abs(trajectory.points[0])) + 1e-9)
    max_lr = max_lr or 2.5 * (2 + 2 * trajectory.momentum) / max(quadratic.lambda_max, 1e-9)
    return with_datasets(quadratic_layout(view, max_lr),
                         quadratic_data(quadratic, trajectory, max_lr))
