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
from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np

__all__ = ["HEIGHT", "WIDTH", "clean", "color_by", "history_chart", "panel_note", "rows",
           "slice_chart",
           "spectrum_chart", "surface_chart", "with_datasets", "y_axis"]

WIDTH, HEIGHT = 300, 220


def clean(value):
    """A JSON-ready number: numpy scalars to Python, non-finite floats to ``None``."""
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
    return [{**constants, **{k: clean(columns[k][i]) for k in names}} for i in range(n)]


def with_datasets(chart, datasets: Mapping[str, list]):
    """``chart`` carrying ``datasets`` (name -> rows) at its top level."""
    return chart.properties(datasets={k: list(v) for k, v in datasets.items()})


def color_by(field: str = "run", title: str = "run"):
    """A nominal colour encoding sorted by value (one colour per run)."""
    return alt.Color(f"{field}:N", title=title, sort="ascending")


def y_axis(field: str, title: str, log: bool):
    """A quantitative y encoding on a log or linear scale."""
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
            value = clean(row.get(y))
            if value is None or (log_y and value <= 0):
                continue
            data.append({"run": label, x: clean(row.get(x)), y: value})
    chart = alt.Chart(alt.Data(name="history")).mark_line().encode(
        x=alt.X(f"{x}:Q", title=x), y=y_axis(y, y, log_y), color=color_by()
    ).properties(width=WIDTH, height=HEIGHT, title=title or f"{y} vs {x}")
    return with_datasets(chart, {"history": data})


# -- generic landscape pictures ----------------------------------------------------------

def slice_chart(alphas: Sequence[float], losses: Mapping[str, Sequence[float]],
                log_y: bool = False, x_title: str = "alpha"):
    """1-D slices :math:`L(\\theta + \\alpha d)`: one line per named curve."""
    data = []
    for name, values in losses.items():
        data += rows({"alpha": alphas, "loss": values}, curve=name)
    chart = alt.Chart(alt.Data(name="slice")).mark_line().encode(
        x=alt.X("alpha:Q", title=x_title), y=y_axis("loss", "loss", log_y),
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
        x=alt.X("eigenvalue:Q"), y=y_axis("density", "density", log_y))
    data = {"density": rows({"eigenvalue": grid, "density": density})}
    layers = [area]
    if threshold is not None:
        layers.append(alt.Chart(alt.Data(name="edge")).mark_rule(
            color="black", strokeDash=[6, 4]).encode(x="threshold:Q"))
        data["edge"] = [{"threshold": float(threshold)}]
    return with_datasets(alt.layer(*layers).properties(width=WIDTH, height=HEIGHT), data)


def panel_note(panel: str, width: float, height: float, font_size: int = 12):
    """A layer with the text of dataset ``notes``'s rows for ``panel``, at the panel's centre.

    A part of a run says in place why its panel is empty (e.g. "not computed: SGD diverged
    at step 4"); ``width`` and ``height`` are the panel's.
    """
    return alt.Chart(alt.Data(name="notes")).mark_text(
        color="#b00020", fontSize=font_size, fontWeight="bold", lineBreak="\n").encode(
        x=alt.value(width / 2), y=alt.value(height / 2), text="text:N").transform_filter(
        alt.datum.panel == panel)
