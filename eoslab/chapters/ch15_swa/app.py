"""Chapter 15's app: SGD iterates on the rim of a basin, their average (SWA) near its centre.

The pipeline is :func:`eoslab.chapters.ch15_swa.swa_geometry.swa_experiment`, run in the background by
:class:`~eoslab.ui.staged.StagedApp`: the training curves stream live, then the plane,
the slices and the comparison fill in.
"""

from __future__ import annotations

import html
import threading

import altair as alt

from eoslab.chapters.ch15_swa.swa_geometry import swa_experiment
from eoslab.ui.plane_plots import plane_data, plane_layout
from eoslab.ui.plots import HEIGHT, WIDTH, rows
from eoslab.ui.staged import StagedApp

__all__ = ["SWAApp", "swa_datasets", "swa_layout"]

_WHO = ("last SGD iterate", "mean over iterates", "SWA")


def swa_layout():
    """Training curves | plane through three iterates | random-direction slices | comparison."""
    hist = alt.Chart(alt.Data(name="history")).transform_fold(
        ["loss", "test_loss"], as_=["split", "value"]).mark_line().encode(
        x=alt.X("step:Q"), y=alt.Y("value:Q", title="loss", scale=alt.Scale(type="log")),
        color=alt.Color("split:N", title="split"))
    start = alt.Chart(alt.Data(name="swa_start")).mark_rule(strokeDash=[6, 4]).encode(
        x="step:Q")
    training = alt.layer(hist, start).properties(
        width=WIDTH, height=HEIGHT, title="SGD (averaging from the dashed line on)")
    slices = alt.Chart(alt.Data(name="slices")).mark_line().encode(
        x=alt.X("alpha:Q", title="distance along random filter-normalised directions"),
        y=alt.Y("loss:Q", title="train loss (mean of 3 directions)",
                scale=alt.Scale(type="log")),
        color=alt.Color("at:N", title="slice from")).properties(
        width=WIDTH, height=HEIGHT, title="1-D slices: SWA vs the last SGD iterate")
    bars = [alt.Chart(alt.Data(name="compare")).transform_filter(
        alt.datum.metric == metric).mark_bar().encode(
        x=alt.X("who:N", title=None, sort=list(_WHO)), y=alt.Y("value:Q", title=metric),
        color=alt.Color("who:N", legend=None, sort=list(_WHO))).properties(
        width=WIDTH // 3, height=HEIGHT, title=metric)
        for metric in ("test error", "sharpness", "train loss")]
    top = alt.hconcat(training, plane_layout("train loss on the plane through 3 iterates",
                                              x_title="from the first to the middle iterate"))
    return alt.vconcat(top, alt.hconcat(slices, *bars)).resolve_scale(color="independent")


def swa_datasets(result: dict, swa_start: int) -> dict:
    """All datasets of :func:`swa_layout` from a pipeline result."""
    out = {"history": [{k: v for k, v in r.items() if v is not None}
                       for r in result.get("history", [])],
           "swa_start": [{"step": swa_start}]}
    if "plane" in result:
        p = result["plane"]
        it = p["iterates"]
        points = [{"x": it[0][0], "y": it[0][1], "label": "first"},
                  {"x": it[-1][0], "y": it[-1][1], "label": "last"},
                  {"x": p["swa"][0], "y": p["swa"][1], "label": "SWA"}]
        out.update(plane_data(p["x"], p["y"], p["loss"], {"SGD iterates": it}, points))
        s = result["slices"]
        out["slices"] = rows({"alpha": s["alpha"], "loss": s["swa"]}, at="SWA") + rows(
            {"alpha": s["alpha"], "loss": s["sgd"]}, at="last SGD iterate")
        compare = []
        for who, key in zip(_WHO, ("sgd", "iterates", "swa")):
            m = result[key]
            compare += [{"who": who, "metric": "test error", "value": 1 - m["test_acc"]},
                        {"who": who, "metric": "sharpness", "value": m["sharpness"]},
                        {"who": who, "metric": "train loss", "value": m["train_loss"]}]
        out["compare"] = compare
    else:
        out.update({"plane_grid": [], "plane_paths": [], "plane_points": [], "slices": [],
                    "compare": []})
    return out


class SWAApp(StagedApp):
    """Step-size slider (constant SGD step, averaged from ``swa_start``), Run/Stop, four panels."""

    CHAPTER = "15"
    KIND = "ch15_swa"
    LR_RANGE = (0.01, 3.0, 0.01)

    def layout(self):
        return swa_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset["steps"]

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        start = self.preset["swa_start"]

        def partial(datasets, done):
            if "history" in datasets:
                datasets = swa_datasets({"history": datasets["history"]}, start)
                datasets = {k: datasets[k] for k in ("history", "swa_start")}
            emit(datasets, done)

        result = swa_experiment(self.preset.values, settings["lr"], emit=partial, stop=stop)
        result["datasets"] = swa_datasets(result, start)
        return result

    def describe(self, result: dict) -> str:
        s, g, it = result["swa"], result["sgd"], result["iterates"]
        sl = result["slices"]
        return html.escape(
            f"test acc: SWA {s['test_acc']:.4f}, last SGD iterate {g['test_acc']:.4f}, mean "
            f"of the {it['n']} iterates {it['test_acc']:.4f}; train loss SWA "
            f"{s['train_loss']:.3g} vs iterates {it['train_loss']:.3g}; sharpness SWA "
            f"{s['sharpness']:.3g} vs SGD {g['sharpness']:.3g}; flat width (loss rise "
            f"{sl['rise']:g}) SWA {sl['width_swa']:.2f} vs SGD {sl['width_sgd']:.2f}")
