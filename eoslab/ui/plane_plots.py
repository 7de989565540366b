"""Chart builders for planes and paths in weight space (chapters 14 and 15).

The loss on a plane through three weight vectors (:class:`eoslab.geometry.plane.Plane`) is drawn as
a heat map on *quantitative* plane coordinates, so paths (the straight segment, a trained
curve, SGD iterates) and labelled points can be layered on the same axes.  As in
:mod:`eoslab.ui.plots`, every builder is split into a layout on named datasets and a
``*_data`` function, so a live app swaps only the datasets.

Example:
    >>> data = plane_data([0.0, 1.0], [0.0, 2.0], [[1.0, 2.0], [3.0, 4.0]])
    >>> data["plane_grid"][1]
    {'x': 0.0, 'y': 2.0, 'x2': 0.5, 'y2': 3.0, 'x1': -0.5, 'y1': 1.0, 'loss': 2.0}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np

from eoslab.ui.plots import HEIGHT, WIDTH, rows

__all__ = ["clip_loss", "path_data", "path_layout", "plane_data", "plane_layout"]


def clip_loss(values, floor: float = 1e-4, ceiling: float | None = None) -> np.ndarray:
    """Losses clipped to ``[floor, ceiling]`` for a log colour scale (non-finite -> ceiling).

    >>> clip_loss([0.0, 2.0, float("nan")], floor=0.1, ceiling=1.0).tolist()
    [0.1, 1.0, 1.0]
    """
    v = np.asarray(values, dtype=np.float64)
    top = ceiling if ceiling is not None else (float(np.nanmax(v[np.isfinite(v)]))
                                              if np.isfinite(v).any() else 1.0)
    v = np.where(np.isfinite(v), v, top)
    return np.clip(v, floor, max(top, floor))


def plane_layout(title: str = "train loss on the plane", color_title: str = "train loss",
                 x_title: str = "along w2 - w1", y_title: str = "orthogonal, in the plane",
                 extra: Sequence = ()):
    """Heat map, paths and labelled points on the plane's coordinates, then ``extra``.

    ``extra`` are more layers on the same panel, e.g. a :func:`~eoslab.ui.plots.panel_note`.

    Datasets: ``plane_grid`` (the heat map), ``plane_paths`` (x, y, order, path) and
    ``plane_points`` (x, y, label).
    """
    heat = alt.Chart(alt.Data(name="plane_grid")).mark_rect().encode(
        x=alt.X("x1:Q", title=x_title), x2="x2:Q",
        y=alt.Y("y1:Q", title=y_title), y2="y2:Q",
        color=alt.Color("loss:Q", title=color_title,
                        scale=alt.Scale(type="log", scheme="viridis")),
        tooltip=["x:Q", "y:Q", "loss:Q"])
    paths = alt.Chart(alt.Data(name="plane_paths")).mark_line(strokeWidth=2.5).encode(
        x="x:Q", y="y:Q", order="order:Q",  # white on the map; the legend draws them black
        strokeDash=alt.StrokeDash("path:N", title="path (white on the plane)", legend=alt.Legend(
            symbolStrokeColor="black", symbolStrokeWidth=2)),
        color=alt.value("white"))
    dots = alt.Chart(alt.Data(name="plane_points")).mark_point(
        filled=True, size=70, color="red").encode(x="x:Q", y="y:Q", tooltip=["label:N"])
    labels = alt.Chart(alt.Data(name="plane_points")).mark_text(
        dx=8, dy=-8, color="white", fontWeight="bold", align="left").encode(
        x="x:Q", y="y:Q", text="label:N")
    return alt.layer(heat, paths, dots, labels, *extra).properties(
        width=WIDTH + 20, height=HEIGHT + 20, title=title)


def plane_data(xs: Sequence[float], ys: Sequence[float], values,
               paths: Mapping[str, Sequence[Sequence[float]]] | None = None,
               points: Sequence[dict] = (), floor: float = 1e-4,
               ceiling: float | None = None) -> dict:
    """Datasets of :func:`plane_layout`.

    ``values[i][j]`` is the loss at ``(xs[i], ys[j])`` (the layout of
    :meth:`eoslab.geometry.plane.Plane.evaluate`); ``paths`` maps a name to ``(x, y)``
    pairs; ``points`` are dicts with ``x``, ``y``, ``label``.
    """
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (len(xs), len(ys)):
        raise ValueError(f"values has shape {v.shape}; expected (len(xs), len(ys)) = "
                         f"{(len(xs), len(ys))}")
    dx = (xs[1] - xs[0]) / 2 if len(xs) > 1 else 0.5
    dy = (ys[1] - ys[0]) / 2 if len(ys) > 1 else 0.5
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    grid = rows({"x": gx.ravel(), "y": gy.ravel(), "x2": gx.ravel() + dx,
                 "y2": gy.ravel() + dy, "x1": gx.ravel() - dx, "y1": gy.ravel() - dy,
                 "loss": clip_loss(v.ravel(), floor, ceiling)})
    lines = []
    for name, coords in (paths or {}).items():
        for i, (x, y) in enumerate(coords):
            lines.append({"path": name, "order": i, "x": float(x), "y": float(y)})
    return {"plane_grid": grid, "plane_paths": lines, "plane_points": [dict(p) for p in points]}


def path_layout(title: str = "train loss along the path", y_title: str = "train loss",
                log_y: bool = True):
    """Loss against the path parameter ``t`` (dataset ``paths``: t, loss, path)."""
    return alt.Chart(alt.Data(name="paths")).mark_line(point=True).encode(
        x=alt.X("t:Q", title="t (0 = w1, 1 = w2)"),
        y=alt.Y("loss:Q", title=y_title, scale=alt.Scale(type="log" if log_y else "linear")),
        color=alt.Color("path:N", title="path")).properties(
        width=WIDTH, height=HEIGHT, title=title)


def path_data(paths: Mapping[str, Mapping[str, Sequence[float]]], key: str = "loss",
              floor: float = 1e-6) -> dict:
    """``{"paths": rows}`` from ``{name: {"t": [...], key: [...]}}`` (losses floored for log).

    >>> path_data({"line": {"t": [0.0, 1.0], "loss": [0.0, 2.0]}})["paths"][0]
    {'path': 'line', 't': 0.0, 'loss': 1e-06}
    """
    out = []
    for name, p in paths.items():
        values = np.maximum(np.asarray(p[key], dtype=np.float64), floor)
        out += rows({"t": p["t"], "loss": values}, path=name)
    return {"paths": out}
