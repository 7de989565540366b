"""Chapter 18's figure: the two (lr, lambda) heatmaps, Adam's loss and its curvature.

Top: Adam + L2 and AdamW (Loshchilov & Hutter, ICLR 2019, arXiv 1711.05101) as heatmaps of
a final metric over (learning rate, lambda), a star on the best lambda of each row. Bottom:
full-batch Adam's train loss, and its preconditioned sharpness against
:math:`(2+2\\beta_1)/((1-\\beta_1)\\eta)` (38/η for β₁ = 0.9; Cohen et al.,
arXiv 2207.14484).

Datasets: ``grid_adam``, ``grid_adamw`` (lr, wd, value, status, label, ink), ``history``
(step, loss), ``sharpness`` (step, value, curve) and ``edge`` (curve, value).

Example:
    >>> from eoslab.chapters.ch18_adamw.grid import GridResult
    >>> sorted(adamw_data(GridResult(), [], 0.004, 0.9, "test_loss"))
    ['edge', 'grid_adam', 'grid_adamw', 'history', 'sharpness']
"""

from __future__ import annotations

import altair as alt
import numpy as np

from eoslab.chapters.ch18_adamw.grid import GridResult, best_per_lr
from eoslab.curvature.sharpness import threshold
from eoslab.ui import plots

__all__ = ["AXES", "DATASETS", "METRICS", "NAMES", "adamw_chart", "adamw_data", "adamw_layout",
           "thin_axis"]

W, H = plots.WIDTH, plots.HEIGHT
NAMES = {"adam": "Adam + L2 (coupled)", "adamw": "AdamW (decoupled)"}
METRICS = {"test_loss": "final test loss", "test_acc": "final test accuracy"}
AXES = {"adam": "L2 coefficient λ (gradient += λθ)",
        "adamw": {"paper": "decay λ (θ shrinks by η_t λ per step)",
                  "torch": "weight_decay (θ shrinks by lr_t · wd per step)"}}
DATASETS = ("grid_adam", "grid_adamw", "history", "sharpness", "edge")


def thin_axis(title: str, log: bool = True) -> alt.Axis:
    """An axis whose labels never collide ("450500" before).

    About five ticks, overlapping labels dropped (greedy), and on a log axis a short
    number format (``~g``; a linear step axis keeps Vega's integers).
    """
    extra = {"format": "~g"} if log else {}
    return alt.Axis(title=title, tickCount=5, labelOverlap="greedy", labelSeparation=6,
                    **extra)


def _heat(optimizer: str, metric: str, decay: str):
    color = alt.Color("value:Q", title=METRICS[metric], scale=alt.Scale(
        scheme="viridis", reverse=metric == "test_loss"))
    axis = AXES[optimizer] if optimizer == "adam" else AXES[optimizer][decay]
    base = alt.Chart(alt.Data(name=f"grid_{optimizer}"))
    cells = base.mark_rect().encode(
        x=alt.X("wd:O", title=axis), y=alt.Y("lr:O", title="learning rate α", sort="descending"),
        color=color, tooltip=["lr:O", "wd:O", "value:Q", "status:N"])
    text = base.mark_text(fontSize=9).encode(
        x="wd:O", y=alt.Y("lr:O", sort="descending"), text=alt.Text("label:N"),
        color=alt.condition(alt.datum.ink == "white", alt.value("white"), alt.value("black")))
    return alt.layer(cells, text).properties(width=W - 40, height=H - 40,
                                             title=NAMES[optimizer] + " (*: best per row)")


def adamw_layout(metric: str = "test_loss", decay: str = "paper"):
    """The figure's layout on the empty named datasets :data:`DATASETS`."""
    heat = alt.hconcat(_heat("adam", metric, decay), _heat("adamw", metric, decay)).resolve_scale(
        color="shared")
    loss = alt.Chart(alt.Data(name="history")).mark_line(color="#d62728").encode(
        x=alt.X("step:Q", axis=thin_axis("step", log=False)),
        y=alt.Y("loss:Q", scale=alt.Scale(type="log"), axis=thin_axis("train loss (log)"))
    ).properties(width=W, height=H, title="full-batch Adam: train loss")
    kind = alt.Color("curve:N", title="curvature vs Adam's edge")
    sharp = alt.Chart(alt.Data(name="sharpness")).mark_line(point=True).encode(
        x=alt.X("step:Q", axis=thin_axis("step", log=False)),
        y=alt.Y("value:Q", scale=alt.Scale(type="log"), axis=thin_axis("curvature (log)")),
        color=kind)
    edge = alt.Chart(alt.Data(name="edge")).mark_rule(strokeDash=[6, 4]).encode(
        y="value:Q", color=kind)
    eos = alt.layer(sharp, edge).properties(
        width=W, height=H, title="preconditioned sharpness vs 38/η")
    return plots.with_datasets(alt.vconcat(heat, alt.hconcat(loss, eos)),
                               {name: [] for name in DATASETS})


def _ink(rows: list, metric: str) -> None:
    """Label colour per cell: white on the dark half of the shared viridis scale."""
    values = [r["value"] for r in rows if r["value"] is not None]
    mid = (min(values) + max(values)) / 2 if values else 0.0
    for r in rows:
        dark = r["value"] is not None and (r["value"] > mid if metric == "test_loss"
                                           else r["value"] < mid)
        r["ink"] = "white" if dark else "black"


def _grid_rows(grid: GridResult, optimizer: str, metric: str) -> list:
    """One row per trained cell of ``optimizer``, the best lambda of each lr starred."""
    best = dict(best_per_lr(grid, optimizer, metric, maximize=metric == "test_acc"))
    lrs, wds, table = grid.table(optimizer, metric)
    status = {(c["lr"], c["weight_decay"]): c["status"] for c in grid.cells
              if c["optimizer"] == optimizer}
    rows = []
    for i, row_lr in enumerate(lrs):
        for j, wd in enumerate(wds):
            if (row_lr, wd) not in status:  # not trained yet
                continue
            v = None if np.isnan(table[i, j]) else float(table[i, j])
            star = "*" if best.get(row_lr) == wd else ""
            rows.append({"lr": row_lr, "wd": wd, "value": v, "status": status[(row_lr, wd)],
                         "label": "x" if v is None else f"{v:.2f}{star}"})
    return rows


def adamw_data(grid: GridResult, history, lr: float, beta1: float, metric: str) -> dict:
    """Datasets of :func:`adamw_layout`: the grid's cells and the Adam run's ``history``."""
    data = {f"grid_{opt}": _grid_rows(grid, opt, metric) for opt in ("adam", "adamw")}
    _ink(data["grid_adam"] + data["grid_adamw"], metric)
    history = list(history)
    data["history"] = plots.rows({"step": [r["step"] for r in history],
                                  "loss": [r["loss"] for r in history]})
    sharp = []
    for name, key in (("preconditioned sharpness", "precond_sharpness"),
                      ("sharpness (raw)", "sharpness")):
        rows = [r for r in history if r.get(key) is not None]
        sharp += plots.rows({"step": [r["step"] for r in rows],
                             "value": [r[key] for r in rows]}, curve=name)
    data["sharpness"] = sharp
    data["edge"] = [{"curve": "38/η" if beta1 == 0.9 else "(2+2β₁)/((1-β₁)η)",
                     "value": threshold("adam", lr, beta1)}]
    return data


def adamw_chart(grid: GridResult, history=(), lr: float = 0.004, beta1: float = 0.9,
                metric: str = "test_loss", decay: str = "paper"):
    """The chapter-18 figure: the two heatmaps, Adam's loss and its preconditioned sharpness."""
    return plots.with_datasets(adamw_layout(metric, decay),
                               adamw_data(grid, history, lr, beta1, metric))
