"""Chapter 16's app: SAM's lower sharpness, its own edge of stability, and m-sharpness.

The pipeline is :func:`eoslab.chapters.ch16_sam.sam_edge.sam_experiment`, run in the background by
:class:`~eoslab.ui.staged.StagedApp`: full-batch GD and SAM runs stream live, then the
minibatch m-sharpness runs fill in their bars.
"""

from __future__ import annotations

import html
import threading

import altair as alt
import numpy as np

from eoslab.chapters.ch16_sam.sam_edge import sam_experiment
from eoslab.ui.base import slider
from eoslab.ui.plots import HEIGHT, WIDTH
from eoslab.ui.staged import StagedApp

__all__ = ["SAMApp", "edge_ratio", "sam_datasets", "sam_layout"]


def _label(rho: float) -> str:
    return "GD (rho = 0)" if rho == 0 else f"SAM rho = {rho:g}"


def edge_ratio(history, key: str = "sam_edge", last: float = 0.5):
    """Median of sharpness / ``key`` over the last ``last`` fraction of the recorded steps.

    >>> edge_ratio([{"step": 0, "sharpness": 1.0, "sam_edge": 4.0},
    ...             {"step": 10, "sharpness": 3.0, "sam_edge": 3.0}])
    1.0
    """
    steps = [r["step"] for r in history]
    if not steps:
        return None
    cut = steps[-1] - last * (steps[-1] - steps[0])
    ratios = [r["sharpness"] / r[key] for r in history if r["step"] >= cut
              and r.get("sharpness") is not None and r.get(key)]
    return float(np.median(ratios)) if ratios else None


def sam_layout():
    """Sharpness with 2/eta and the SAM-edge | sharpness / SAM-edge | loss | m-sharpness."""
    sharp = alt.Chart(alt.Data(name="sharp")).mark_line(point=True).encode(
        x="step:Q", y=alt.Y("sharpness:Q", title="sharpness (top Hessian eigenvalue)"),
        color=alt.Color("run:N", title="run"))
    edge = alt.Chart(alt.Data(name="curves")).mark_line(strokeDash=[4, 3], opacity=0.7).encode(
        x="step:Q", y="sam_edge:Q", color=alt.Color("run:N", title="run"))
    gd = alt.Chart(alt.Data(name="gd_edge")).mark_rule(color="black", strokeDash=[8, 4]).encode(
        y="edge:Q")
    panel1 = alt.layer(sharp, edge, gd).properties(
        width=WIDTH, height=HEIGHT,
        title="sharpness (dots) vs 2/eta (black) and each run's SAM-edge (dashed)")
    ratio = alt.Chart(alt.Data(name="sharp")).mark_line(point=True).encode(
        x="step:Q", y=alt.Y("ratio:Q", title="sharpness / own edge"),
        color=alt.Color("run:N", title="run")).properties(
        width=WIDTH, height=HEIGHT, title="each run against its own edge (1 = at the edge)")
    loss = alt.Chart(alt.Data(name="curves")).mark_line().encode(
        x="step:Q", y=alt.Y("loss:Q", title="train loss", scale=alt.Scale(type="log")),
        color=alt.Color("run:N", title="run")).properties(
        width=WIDTH, height=HEIGHT, title="full-batch train loss")
    bars = alt.Chart(alt.Data(name="m_runs")).mark_bar().encode(
        x=alt.X("label:N", title=None, sort=None),
        y=alt.Y("sharpness:Q", title="final sharpness"),
        tooltip=["label:N", "sharpness:Q", "test_acc:Q"]).properties(
        width=WIDTH, height=HEIGHT, title="minibatch SAM: sharpness for each m")
    return alt.vconcat(alt.hconcat(panel1, ratio), alt.hconcat(loss, bars))


def sam_datasets(result: dict) -> dict:
    """All datasets of :func:`sam_layout` from a (partial) pipeline result."""
    lr = result.get("lr")
    curves, sharp = [], []
    for key, rows in result.get("runs", {}).items():
        rho = float(key)
        for r in rows:
            row = {"run": _label(rho), "step": r["step"], "loss": r.get("loss")}
            if r.get("sam_edge") is not None:
                row["sam_edge"] = r["sam_edge"]
            curves.append(row)
            if r.get("sharpness") is not None:
                point = {"run": row["run"], "step": r["step"], "sharpness": r["sharpness"]}
                if r.get("sam_edge"):
                    point["ratio"] = r["sharpness"] / r["sam_edge"]
                sharp.append(point)
    m_rows = [{"label": f"m = {r['m']}" if r["m"] else "SGD (no SAM)",
               "sharpness": r["sharpness"], "test_acc": r.get("test_acc")}
              for r in result.get("m_runs", [])]
    return {"curves": curves, "sharp": sharp, "m_runs": m_rows,
            "gd_edge": [{"edge": 2.0 / lr}] if lr else []}


class SAMApp(StagedApp):
    """Step size and radius sliders (``eoslab-lr-slider``, ``eoslab-rho-slider``), four panels."""

    CHAPTER = "16"
    KIND = "ch16_sam"
    LR_RANGE = (0.02, 4.0, 0.02)

    def make_sliders(self) -> dict:
        self.rho = slider("SAM radius rho", self.preset["rho"], 0.0, 0.3, 0.01,
                          "eoslab-rho-slider", continuous=False)
        return {"rho": self.rho}

    def layout(self):
        return sam_layout()

    def total_work(self, settings: dict) -> int:
        p = self.preset
        return len(p["rho_ratios"]) * p["steps"] + len(p["m_values"]) * p["steps_m"]

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        lr = settings["lr"]

        def partial(datasets, done):
            emit(sam_datasets({"lr": lr, **datasets}) if "runs" in datasets else
                 {"m_runs": sam_datasets(datasets)["m_runs"]}, done)

        result = sam_experiment(self.preset.values, lr, settings["rho"], emit=partial,
                                stop=stop)
        result["datasets"] = sam_datasets(result)
        return result

    def describe(self, result: dict) -> str:
        lines = []
        for key, rows in result["runs"].items():
            rho = float(key)
            gd = edge_ratio(rows, "gd_edge")
            own = edge_ratio(rows, "sam_edge")
            text = f"{_label(rho)}: sharpness / (2/eta) = {gd:.2f}"
            if rho:
                text += f", sharpness / SAM-edge = {own:.2f}"
            lines.append(html.escape(text + " (median, second half)"))
        m = ", ".join(f"{'SGD' if r['m'] == 0 else 'm = ' + str(r['m'])}: "
                      f"{r['sharpness']:.3g} (test acc {r['test_acc']:.3f})"
                      for r in result["m_runs"])
        lines.append(html.escape(f"minibatch runs, final sharpness: {m}"))
        return "<br>".join(lines)
