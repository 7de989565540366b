"""Altair chart builders: pure functions that return a chart and never display it.

Every chart reads its data from *named* datasets (``alt.Data(name=...)``) carried in the
top-level ``datasets`` of the spec.  The layout of a figure therefore depends only on a
few settings while its numbers live in one dict, so a live app can build the spec once
and then swap only ``spec["datasets"]`` on each update (see :class:`eoslab.ui.base.LiveChart`),
which skips Altair's construction and validation (the slow part) entirely.  The pieces:
``*_layout(...)`` builds the structure, ``*_data(...)`` the datasets, and the public
builder joins them with :func:`with_datasets`.

Rows are plain dicts; non-finite numbers become ``None`` (JSON has no NaN).

Example:
    >>> chart = history_chart({"eta = 0.1": [{"step": 0, "loss": 1.0}, {"step": 10, "loss": 0.5}]})
    >>> spec = chart.to_dict()
    >>> spec["datasets"]["history"][1]
    {'run': 'eta = 0.1', 'step': 10, 'loss': 0.5}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

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

__all__ = ["rows", "with_datasets", "history_chart", "eos_layout", "eos_data", "eos_chart",
           "quadratic_layout", "quadratic_data", "quadratic_chart", "slice_chart",
           "surface_chart", "spectrum_chart", "threshold_rows", "run_label"]

WIDTH, HEIGHT = 300, 220


def _clean(value):
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def rows(columns: Mapping[str, Sequence], **constants) -> list[dict]:
    """Columns (equal-length sequences) to records, with constant fields added.

    >>> rows({"x": [1.0, float("nan")]}, run="a")
    [{'run': 'a', 'x': 1.0}, {'run': 'a', 'x': None}]
    """
    names = list(columns)
    lengths = {len(columns[n]) for n in names}
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths {sorted(lengths)}; all must match")
    n = lengths.pop() if lengths else 0
    return [{**constants, **{k: _clean(columns[k][i]) for k in names}} for i in range(n)]


def with_datasets(chart, datasets: Mapping[str, list]):
    """``chart`` carrying ``datasets`` (name -> rows) at its top level."""
    return chart.properties(datasets={k: list(v) for k, v in datasets.items()})


def run_label(lr: float, momentum: float = 0.0) -> str:
    """The legend label of a run: ``'eta = 0.2'`` (and ``beta`` when there is momentum).

    >>> run_label(0.2), run_label(0.1, 0.9)
    ('eta = 0.2', 'eta = 0.1, beta = 0.9')
    """
    text = f"eta = {lr:.4g}"
    return text + (f", beta = {momentum:.3g}" if momentum else "")


def threshold_rows(lrs: Iterable[float], momentum: float = 0.0) -> list[dict]:
    """One row per run with its stability threshold :math:`(2 + 2\\beta)/\\eta`.

    >>> threshold_rows([0.5])
    [{'run': 'eta = 0.5', 'lr': 0.5, 'threshold': 4.0}]
    """
    return [{"run": run_label(lr, momentum), "lr": lr, "threshold": (2 + 2 * momentum) / lr}
            for lr in lrs]


def _color(field="run", title="run"):
    return alt.Color(f"{field}:N", title=title, sort="ascending")


def _y(field: str, title: str, log: bool):
    return alt.Y(f"{field}:Q", title=title, scale=alt.Scale(type="log" if log else "linear"))


def history_chart(histories: Mapping[str, Sequence[dict]], y: str = "loss",
                  x: str = "step", log_y: bool = True, title: str | None = None):
    """Line chart of one history field against another for several runs (one colour each).

    ``histories`` maps a run label to its history rows (dicts with ``x`` and ``y`` keys);
    rows lacking the field are left out, and so are non-positive values on a log axis.
    """
    data = []
    for label, history in histories.items():
        for row in history:
            value = _clean(row.get(y))
            if value is None or (log_y and value <= 0):
                continue
            data.append({"run": label, x: _clean(row.get(x)), y: value})
    chart = alt.Chart(alt.Data(name="history")).mark_line().encode(
        x=alt.X(f"{x}:Q", title=x), y=_y(y, y, log_y), color=_color()
    ).properties(width=WIDTH, height=HEIGHT, title=title or f"{y} vs {x}")
    return with_datasets(chart, {"history": data})


# -- chapter 02: edge of stability -------------------------------------------------------

def eos_layout(momentum: float = 0.0):
    """Four panels of the edge-of-stability runs.

    Loss and sharpness vs step with :math:`(2+2\\beta)/\\eta` lines, sharpness divided by
    its threshold (1 is the edge), and loss vs time :math:`\\eta t`.

    Datasets: ``history`` (run, lr, step, time, loss, sharpness, ratio), ``thresholds``
    (run, lr, threshold) and ``crossings`` (run, lr, step, time): where each run's
    sharpness first reaches its threshold, the time after which GD can no longer follow
    gradient flow (Cohen et al. 2021, section 3).
    """
    base = alt.Chart(alt.Data(name="history"))
    edge = "(2+2beta)/eta" if momentum else "2/eta"
    loss = base.mark_line().encode(
        x=alt.X("step:Q"), y=_y("loss", "train loss", True), color=_color()
    ).transform_filter("datum.loss > 0").properties(title="train loss")
    sharp_points = base.mark_line(point=True).encode(
        x="step:Q", y=alt.Y("sharpness:Q", title="sharpness (top Hessian eigenvalue)"),
        color=_color()).transform_filter("isValid(datum.sharpness)")
    rules = alt.Chart(alt.Data(name="thresholds")).mark_rule(strokeDash=[6, 4]).encode(
        y="threshold:Q", color=_color())
    sharp = alt.layer(sharp_points, rules).properties(
        title=f"sharpness; dashed: {edge}")
    ratio = alt.layer(
        base.mark_line(point=True).encode(
            x="step:Q", y=alt.Y("ratio:Q", title=f"sharpness / ({edge})"), color=_color()
        ).transform_filter("isValid(datum.ratio)"),
        alt.Chart(alt.Data(values=[{"one": 1.0}])).mark_rule(color="black").encode(y="one:Q"),
    ).properties(title="1 = the edge of stability")
    flow = alt.layer(
        base.mark_line().encode(
            x=alt.X("time:Q", title="time eta * step"), y=_y("loss", "train loss", True),
            color=_color()).transform_filter("datum.loss > 0"),
        alt.Chart(alt.Data(name="crossings")).mark_rule(strokeDash=[2, 3]).encode(
            x="time:Q", color=_color()),
    ).properties(title="loss vs time; dotted: each run reaches its edge")
    panels = [p.properties(width=WIDTH, height=HEIGHT) for p in (loss, sharp, ratio, flow)]
    return alt.vconcat(alt.hconcat(panels[0], panels[1]), alt.hconcat(panels[2], panels[3]))


def eos_data(histories: Mapping[float, Sequence[dict]], momentum: float = 0.0) -> dict:
    """Datasets for :func:`eos_layout` from ``{lr: history rows}``."""
    data, crossings = [], []
    for lr, history in histories.items():
        edge = (2 + 2 * momentum) / lr
        label, crossed = run_label(lr, momentum), False
        for row in history:
            sharpness = _clean(row.get("sharpness"))
            data.append({"run": label, "lr": lr, "step": row["step"],
                         "time": lr * row["step"], "loss": _clean(row.get("loss")),
                         "sharpness": sharpness,
                         "ratio": None if sharpness is None else sharpness / edge})
            if not crossed and sharpness is not None and sharpness >= edge:
                crossed = True
                crossings.append({"run": label, "lr": lr, "step": row["step"],
                                  "time": lr * row["step"]})
    return {"history": data, "thresholds": threshold_rows(histories, momentum),
            "crossings": crossings}


def eos_chart(histories: Mapping[float, Sequence[dict]], momentum: float = 0.0):
    """The edge-of-stability figure for several step sizes (Cohen et al., ICLR 2021)."""
    return with_datasets(eos_layout(momentum), eos_data(histories, momentum))


# -- chapter 01: a quadratic -------------------------------------------------------------

def quadratic_layout(view: float, max_lr: float):
    """Three panels of GD on a 2-D quadratic.

    Contours + trajectory in the box ``[-view, view]^2``, loss vs step, and the rate
    :math:`\\rho` vs :math:`\\eta` on ``[0, max_lr]`` with the thresholds.

    Datasets: ``levels`` (level, order, x, y), ``axis`` (order, x, y), ``trajectory``
    (step, x, y, loss), ``rates`` (lr, rate, method), ``current`` (lr, rate, verdict),
    ``thresholds`` (threshold, method).
    """
    domain = alt.Scale(domain=[-view, view])
    levels = alt.Chart(alt.Data(name="levels")).mark_line(color="#bbb", clip=True).encode(
        x=alt.X("x:Q", scale=domain, title="w1"), y=alt.Y("y:Q", scale=domain, title="w2"),
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
        x=alt.X("step:Q"), y=_y("loss", "loss", True)).transform_filter(
        "datum.loss > 1e-16").properties(width=WIDTH, height=HEIGHT, title="loss")
    lr_scale = alt.Scale(domain=[0, max_lr])
    rates = alt.Chart(alt.Data(name="rates")).mark_line().encode(
        x=alt.X("lr:Q", scale=lr_scale, title="step size eta"),
        y=alt.Y("rate:Q", title="per-step factor rho", scale=alt.Scale(domain=[0, 2], clamp=True)),
        color=alt.Color("method:N", title=None))
    one = alt.Chart(alt.Data(values=[{"one": 1.0}])).mark_rule(color="black").encode(y="one:Q")
    edges = alt.Chart(alt.Data(name="thresholds")).mark_rule(strokeDash=[6, 4]).encode(
        x=alt.X("threshold:Q", scale=lr_scale), color=alt.Color("method:N"))
    current = alt.Chart(alt.Data(name="current")).mark_point(size=120, filled=True).encode(
        x=alt.X("lr:Q", scale=lr_scale), y=alt.Y("rate:Q"),
        shape=alt.Shape("verdict:N", title=None))
    stability = alt.layer(rates, one, edges, current).properties(
        width=WIDTH, height=HEIGHT, title="rho < 1: converges; dashed: thresholds")
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
    methods = [("GD", 0.0)] + ([(f"heavy ball beta={beta:.3g}", beta)] if beta else [])
    rate_rows, edge_rows = [], []
    for name, b in methods:
        rate_rows += rows({"lr": grid, "rate": convergence_rates(grid, quadratic.eigenvalues, b)},
                          method=name)
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
    }


def quadratic_chart(quadratic: Quadratic, trajectory: Trajectory, view: float | None = None,
                    max_lr: float | None = None):
    """The chapter-01 figure: contours with the path, loss, and the stability diagram."""
    view = view or 1.6 * float(np.max(np.abs(trajectory.points[0])) + 1e-9)
    max_lr = max_lr or 2.5 * (2 + 2 * trajectory.momentum) / max(quadratic.lambda_max, 1e-9)
    return with_datasets(quadratic_layout(view, max_lr),
                         quadratic_data(quadratic, trajectory, max_lr))


# -- generic landscape pictures ----------------------------------------------------------

def slice_chart(alphas: Sequence[float], losses: Mapping[str, Sequence[float]],
                log_y: bool = False, x_title: str = "alpha"):
    """1-D slices :math:`L(\\theta + \\alpha d)`: one line per named curve."""
    data = []
    for name, values in losses.items():
        data += rows({"alpha": alphas, "loss": values}, curve=name)
    chart = alt.Chart(alt.Data(name="slice")).mark_line().encode(
        x=alt.X("alpha:Q", title=x_title), y=_y("loss", "loss", log_y),
        color=alt.Color("curve:N", title=None)).properties(width=WIDTH, height=HEIGHT)
    return with_datasets(chart, {"slice": data})


def surface_chart(xs: Sequence[float], ys: Sequence[float], values, log_color: bool = True,
                  points: Sequence[dict] = ()):
    """A 2-D slice as a heat map, with optional labelled points drawn on top.

    ``values[i, j]`` is drawn at ``(xs[j], ys[i])``; points are dicts with ``x``, ``y``,
    ``label``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(ys), len(xs)):
        raise ValueError(f"values has shape {values.shape}; expected (len(ys), len(xs)) = "
                         f"{(len(ys), len(xs))}")
    gx, gy = np.meshgrid(np.asarray(xs, float), np.asarray(ys, float))
    color = alt.Color("loss:Q", scale=alt.Scale(type="log" if log_color else "linear",
                                                scheme="viridis"))
    heat = alt.Chart(alt.Data(name="surface")).mark_rect().encode(
        x=alt.X("x:O", title=None, axis=alt.Axis(format=".2f", labelOverlap=True)),
        y=alt.Y("y:O", sort="descending", title=None, axis=alt.Axis(format=".2f")),
        color=color).properties(width=HEIGHT + 40, height=HEIGHT + 40)
    data = {"surface": rows({"x": gx.ravel(), "y": gy.ravel(), "loss": values.ravel()})}
    if not points:
        return with_datasets(heat, data)
    marks = alt.Chart(alt.Data(name="points")).mark_text(fontWeight="bold", color="white").encode(
        x="x:O", y=alt.Y("y:O", sort="descending"), text="label:N")
    data["points"] = [dict(p) for p in points]
    return with_datasets(alt.layer(heat, marks), data)


def spectrum_chart(grid: Sequence[float], density: Sequence[float], threshold: float | None = None,
                   log_y: bool = False):
    """A spectral density (e.g. from SLQ) as an area, with an optional :math:`2/\\eta` rule."""
    area = alt.Chart(alt.Data(name="density")).mark_area(opacity=0.6).encode(
        x=alt.X("eigenvalue:Q"), y=_y("density", "density", log_y))
    data = {"density": rows({"eigenvalue": grid, "density": density})}
    layers = [area]
    if threshold is not None:
        layers.append(alt.Chart(alt.Data(name="edge")).mark_rule(
            color="black", strokeDash=[6, 4]).encode(x="threshold:Q"))
        data["edge"] = [{"threshold": float(threshold)}]
    return with_datasets(alt.layer(*layers).properties(width=WIDTH, height=HEIGHT), data)
