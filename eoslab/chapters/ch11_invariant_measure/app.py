"""Chapter 11's app: the loss settles, the gradient does not vanish, the weights keep moving,
and their distribution settles.

Zhang, Li, Sra, Jadbabaie (ICML 2022, arXiv 2110.06256).  One SGD run at a fixed step
size (with weight decay) through :func:`eoslab.core.train.fit`, with
:class:`eoslab.chapters.ch11_invariant_measure.weight_stats.WeightStatsProbe` measuring, every window of ``record_every``
steps, the full-batch gradient norm, how far the weights moved (RMS per coordinate) and how
far their distribution moved (:math:`W_1` between the weight entries' empirical laws).
:func:`stationarity_summary` gives the chapter's figures.
"""

from __future__ import annotations

import html
import math
import statistics
import threading

import altair as alt
import ipywidgets as widgets
import numpy as np
import torch

from eoslab.chapters.ch11_invariant_measure.weight_stats import WeightStatsProbe
from eoslab.core.data import load_dataset
from eoslab.core.models import build_model
from eoslab.core.train import fit
from eoslab.ui.base import slider
from eoslab.ui.staged import StagedApp

__all__ = ["InvariantMeasureApp", "invariant_measure_experiment", "stationarity_summary",
           "weight_histograms"]

_KEYS = ("loss", "grad_full", "move_rms", "w1", "ks", "ratio", "travel_rms", "path_rms")


def _mean(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(values) if values else None


def stationarity_summary(history: list[dict]) -> dict | None:
    """The chapter's figures from the recorded rows (quarters of the run by position).

    ``loss_start``, ``loss_late`` (mean over the last quarter), ``loss_settle`` (last quarter's
    mean over the third quarter's), ``grad_start``, ``grad_late``, ``grad_settle`` (the same
    for the full gradient norm), ``move_late`` (mean RMS move per window, last quarter),
    ``w1_first`` (first window), ``w1_late``, ``w1_drop`` = late / first, ``ratio_first``,
    ``ratio_late`` (:math:`W_1/m`), and ``path_late``, ``travel_late``: how much the path
    length and the distance from the start grew over the last quarter.

    >>> rows = [{"step": s, "loss": l, "grad_full": 0.1, "move_rms": 0.01, "w1": w,
    ...          "ratio": w / 0.01, "travel_rms": 0.1, "path_rms": 0.01 * s}
    ...         for s, l, w in [(1, 1.0, 0.008), (2, 0.2, 0.004), (3, 0.2, 0.001), (4, 0.2, 0.001)]]
    >>> s = stationarity_summary(rows); s["loss_settle"], s["w1_drop"], s["grad_settle"]
    (1.0, 0.125, 1.0)
    """
    rows = [r for r in history if r.get("grad_full") is not None]
    if len(rows) < 4:
        return None
    q = len(rows) // 4
    third, last = rows[-2 * q:-q], rows[-q:]
    moved = [r for r in rows if r.get("w1") is not None]
    out = {"loss_start": rows[0]["loss"], "loss_late": _mean(last, "loss"),
           "grad_start": rows[0]["grad_full"], "grad_late": _mean(last, "grad_full"),
           "move_late": _mean(last, "move_rms"), "w1_late": _mean(last, "w1"),
           "ratio_late": _mean(last, "ratio"),
           "path_late": last[-1]["path_rms"] - third[-1]["path_rms"],
           "travel_late": last[-1]["travel_rms"] - third[-1]["travel_rms"]}
    out["loss_settle"] = out["loss_late"] / _mean(third, "loss")
    out["grad_settle"] = out["grad_late"] / _mean(third, "grad_full")
    if moved:
        out.update(w1_first=moved[0]["w1"], ratio_first=moved[0]["ratio"],
                   w1_drop=out["w1_late"] / moved[0]["w1"] if moved[0]["w1"] else None)
    return out


def weight_histograms(snapshots: dict, bins: int = 40, clip: float = 0.995) -> list[dict]:
    """Density rows (``step``, ``x``, ``density``) of each snapshot on common bins.

    The bins span the central ``clip`` mass of all snapshots together (long tails would
    squash the picture).

    >>> rows = weight_histograms({0: np.zeros(4), 5: np.ones(4)}, bins=2, clip=1.0)
    >>> [(r["step"], r["x"], r["density"]) for r in rows]
    [(0, 0.25, 2.0), (0, 0.75, 0.0), (5, 0.25, 0.0), (5, 0.75, 2.0)]
    """
    if not snapshots:
        return []
    everything = np.concatenate([np.asarray(v) for v in snapshots.values()])
    lo, hi = np.quantile(everything, [(1 - clip) / 2, (1 + clip) / 2])
    edges = np.linspace(lo, hi, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    rows = []
    for step, values in sorted(snapshots.items()):
        density, _ = np.histogram(np.clip(values, lo, hi), bins=edges, density=True)
        rows += [{"step": int(step), "x": float(x), "density": float(d)}
                 for x, d in zip(centres, density)]
    return rows


def _clean(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def invariant_measure_experiment(values, settings: dict, emit=None,
                                 stop: threading.Event | None = None) -> dict:
    """One SGD run at ``settings`` (``lr``, ``batch_size``, ``weight_decay``).

    Returns ``status``, ``history`` (rows with the probe's fields and ``path_rms``, the
    running sum of ``move_rms``), ``summary`` (:func:`stationarity_summary`), ``datasets``
    and, if the run blew up, ``diverged``.
    """
    lr, wd = settings["lr"], settings["weight_decay"]
    batch = int(settings["batch_size"])
    data = load_dataset(values["dataset"], n_train=values["n_train"], loss=values["loss"],
                        dtype=values.get("dtype", "float32"), device=values.get("device"))
    batch = None if batch >= data.n_train else max(batch, 1)
    model = build_model(values["model"], data.input_shape, data.n_outputs,
                        width=values["width"], depth=values["depth"],
                        seed=values.get("model_seed", 0), device=data.x_train.device,
                        dtype=values.get("dtype", "float32"))
    probe = WeightStatsProbe(values["record_every"], weight_decay=wd, track=values["track"],
                             snapshot_every=values["snapshot_every"])
    history: list[dict] = []
    path = [0.0]

    def datasets():
        return {"history": list(history), "hist": weight_histograms(probe.snapshots)}

    def on_row(row):
        if row.get("move_rms") is not None:
            path[0] += row["move_rms"]
        clean = {k: _clean(row.get(k)) for k in _KEYS}
        clean.update(step=row["step"], path_rms=path[0] if "grad_full" in row else None)
        history.append(clean)
        if emit is not None:
            emit(datasets(), row["step"])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: one thread avoids OpenMP oversubscription stalls
    try:
        run = fit(model, data, values["loss"],
                  torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd),
                  steps=values["steps"], batch_size=batch, record_every=values["record_every"],
                  probes=[probe], callbacks=[on_row], stop=stop, eval_test=False,
                  seed=values.get("seed", 0))
    finally:
        torch.set_num_threads(threads)
    result = {"status": run.status, "lr": lr, "batch_size": batch or data.n_train,
              "weight_decay": wd, "history": history,
              "summary": stationarity_summary(history), "datasets": datasets()}
    if run.diverged:
        step, value = run.diverged_at
        result["diverged"] = {"step": step, "loss": value if math.isfinite(value) else 1e308,
                              "lr": lr, "stage": "SGD"}
    return result


def invariant_layout():
    """Loss | full gradient norm | per-window moves | path vs travel | weight histograms."""
    base = alt.Chart(alt.Data(name="history"))
    loss = base.mark_line().encode(
        x="step:Q", y=alt.Y("loss:Q", title="train loss", scale=alt.Scale(type="log"))
    ).transform_filter("datum.loss > 0").properties(title="the loss settles")
    grad = base.mark_line(point=True, color="#d62728").encode(
        x="step:Q", y=alt.Y("grad_full:Q", title="|| full-batch gradient ||",
                            scale=alt.Scale(type="log"))
    ).transform_filter("datum.grad_full > 0").properties(
        title="... but the gradient does not go to zero")
    legend = {"move_rms": "weights (RMS move)", "w1": "their distribution (W1)"}
    moves = base.transform_fold(list(legend), as_=["what", "v"]).transform_filter(
        "datum.v > 0").transform_calculate(
        what=f"datum.what == 'w1' ? '{legend['w1']}' : '{legend['move_rms']}'"
    ).mark_line(point=True).encode(
        x="step:Q", y=alt.Y("v:Q", title="moved in one window", scale=alt.Scale(type="log")),
        color=alt.Color("what:N", title="moved in a window")).properties(
        title="the weights keep moving, their distribution stops")
    names = {"path_rms": "path length", "travel_rms": "distance from start"}
    path = base.transform_fold(list(names), as_=["what", "v"]).transform_filter(
        "isValid(datum.v)").transform_calculate(
        what=f"datum.what == 'path_rms' ? '{names['path_rms']}' : '{names['travel_rms']}'"
    ).mark_line().encode(
        x="step:Q", y=alt.Y("v:Q", title="RMS per coordinate"),
        color=alt.Color("what:N", title="since step 0", scale=alt.Scale(
            domain=list(names.values()), range=["#2ca02c", "#9467bd"]))).properties(
        title="path grows, distance from start levels off")
    hist = alt.Chart(alt.Data(name="hist")).mark_line().encode(
        x=alt.X("x:Q", title="weight entry"), y=alt.Y("density:Q", title="density"),
        color=alt.Color("step:O", title="snapshot at step", scale=alt.Scale(scheme="viridis")),
    ).properties(title="distribution of the weight entries")
    panels = [p.properties(width=250, height=190) for p in (loss, grad, moves, path, hist)]
    rows = [alt.hconcat(*panels[:3]).resolve_scale(color="independent"),
            alt.hconcat(*panels[3:]).resolve_scale(color="independent")]
    return alt.vconcat(*rows).resolve_scale(color="independent").properties(
        datasets={"history": [], "hist": []})


class InvariantMeasureApp(StagedApp):
    """Step size (``eoslab-lr-slider``), batch size and weight decay; Run/Stop; the chart."""

    CHAPTER = "11"
    KIND = "ch11_invariant_measure"
    LR_RANGE = (0.01, 3.0, 0.01)

    def make_sliders(self) -> dict:
        batch = widgets.IntSlider(value=self.preset["batch_size"], min=1, max=500,
                                  description="batch size (>= n: GD)",
                                  continuous_update=False,
                                  layout=widgets.Layout(width="480px"),
                                  style={"description_width": "160px"})
        batch.add_class("eoslab-batch-slider")
        return {"batch_size": batch,
                "weight_decay": slider("weight decay", self.preset["weight_decay"], 0.0, 0.05,
                                       0.001, "eoslab-wd-slider", continuous=False)}

    def layout(self):
        return invariant_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset["steps"]

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        return invariant_measure_experiment(self.preset.values, settings, emit, stop)

    def describe(self, result: dict) -> str:
        s = result["summary"]
        if s is None:
            return "too few records to judge; raise the number of steps"
        text = (f"SGD, eta = {result['lr']:.3g}, batch {result['batch_size']}, weight decay "
                f"{result['weight_decay']:.3g}: the loss fell from {s['loss_start']:.3g} to "
                f"{s['loss_late']:.3g} (last quarter / third quarter: {s['loss_settle']:.2f}); "
                f"the full gradient norm went from {s['grad_start']:.3g} to {s['grad_late']:.3g} "
                f"and stays there ({s['grad_settle']:.2f}); each window the weights still move "
                f"{s['move_late']:.2g} RMS")
        if s.get("w1_drop") is not None:
            text += (f", while the distribution of the entries moves {s['w1_drop']:.2g}x as much "
                     f"as in the first window (W1/move {s['ratio_first']:.2f} -> "
                     f"{s['ratio_late']:.2f})")
        return html.escape(text)
