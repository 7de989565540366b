"""Chapter 14's app: the straight line between two minima, a trained curve, the plane, FGE.

The pipeline is :func:`eoslab.chapters.ch14_mode_connectivity.connectivity.mode_connectivity`, run in the background by
:class:`~eoslab.ui.staged.StagedApp`: the loss of the training stages streams live, then
the path, plane and ensemble panels fill in.
"""

from __future__ import annotations

import html
import threading

import altair as alt
import ipywidgets as widgets

from eoslab.chapters.ch14_mode_connectivity.connectivity import mode_connectivity
from eoslab.ui.plane_plots import path_data, path_layout, plane_data, plane_layout
from eoslab.ui.plots import HEIGHT, WIDTH
from eoslab.ui.staged import StagedApp

__all__ = ["ModeConnectivityApp", "connectivity_datasets", "connectivity_layout"]


def connectivity_layout():
    """Training loss | loss along the paths | the plane | FGE accuracy."""
    training = alt.Chart(alt.Data(name="training")).mark_line().encode(
        x=alt.X("step:Q", title="step (w1, w2, curve, FGE in turn)"),
        y=alt.Y("loss:Q", title="minibatch loss", scale=alt.Scale(type="log")),
        color=alt.Color("stage:N", title="stage")).properties(
        width=WIDTH, height=HEIGHT, title="training")
    fge = alt.Chart(alt.Data(name="fge")).mark_line(point=True).encode(
        x=alt.X("k:Q", title="snapshot k", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("acc:Q", title="test accuracy", scale=alt.Scale(zero=False)),
        color=alt.Color("what:N", title="FGE")).properties(
        width=WIDTH, height=HEIGHT, title="FGE: snapshot alone vs ensemble of the first k")
    top = alt.hconcat(training, path_layout("train loss: straight line vs trained curve"))
    bottom = alt.hconcat(plane_layout("train loss on the plane through w1, w2 and the bend"),
                         fge)
    return alt.vconcat(top, bottom).resolve_scale(color="independent")


def connectivity_datasets(result: dict) -> dict:
    """All datasets of :func:`connectivity_layout` from a pipeline result."""
    out = {"training": result.get("training", [])}
    paths = {}
    if "line" in result:
        paths["straight line"] = result["line"]
    if "curve" in result:
        paths[f"{result.get('kind', 'bezier')} curve"] = result["curve"]
    out.update(path_data(paths))
    if "plane" in result:
        p = result["plane"]
        a = p["anchors"]
        out.update(plane_data(p["x"], p["y"], p["loss"],
                              {"curve": p["curve"], "segment": [a[0], a[1]]},
                              [{"x": a[0][0], "y": a[0][1], "label": "w1"},
                               {"x": a[1][0], "y": a[1][1], "label": "w2"},
                               {"x": a[2][0], "y": a[2][1], "label": "bend"}],
                              ceiling=5.0))
    else:
        out.update({"plane_grid": [], "plane_paths": [], "plane_points": []})
    fge = []
    for row in result.get("fge", []):
        fge.append({"k": row["k"], "acc": row["single_acc"], "what": "snapshot k alone"})
        fge.append({"k": row["k"], "acc": row["ensemble_acc"], "what": "ensemble of 1..k"})
    out["fge"] = fge
    return out


class ModeConnectivityApp(StagedApp):
    """Step size and curve family; Run/Stop; training, path, plane and FGE panels.

    CSS classes: those of :class:`StagedApp` plus ``eoslab-kind`` (Bézier / polychain).
    """

    CHAPTER = "14"
    KIND = "ch14_mode_connectivity"
    LR_RANGE = (0.01, 5.0, 0.01)

    def make_sliders(self) -> dict:
        self.kind = widgets.ToggleButtons(options=["bezier", "polychain"],
                                          value=self.preset.get("kind", "bezier"),
                                          description="curve")
        self.kind.add_class("eoslab-kind")
        return {"kind": self.kind}

    def settings(self) -> dict:
        return {"lr": round(float(self.lr.value), 6), "kind": self.kind.value}

    def layout(self):
        return connectivity_layout()

    def total_work(self, settings: dict) -> int:
        p = self.preset
        return 2 * p["steps"] + p["curve_steps"] + p["fge_cycle"] * p["fge_cycles"]

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        def partial(datasets, done):
            out = {}
            if "training" in datasets:
                out["training"] = datasets["training"]
            if "line" in datasets:
                out.update(path_data({"straight line": datasets["line"]}))
            emit(out, done)

        result = mode_connectivity(self.preset.values, settings["lr"], settings["kind"],
                                   emit=partial, stop=stop)
        result["datasets"] = connectivity_datasets(result)
        return result

    def describe(self, result: dict) -> str:
        fge = result["fge"][-1]
        single = sum(r["single_acc"] for r in result["fge"]) / len(result["fge"])
        curve = result["barrier_curve"]
        lower = (f"{result['barrier_line'] / curve:.0f}x lower" if curve > 1e-6
                 else "no barrier: the curve stays below the chord")
        return html.escape(
            f"barrier (loss above the chord): straight line {result['barrier_line']:.3g}, "
            f"{result['kind']} curve {curve:.3g} ({lower}); "
            f"FGE: {fge['k']} snapshots, mean single test acc {single:.4f}, ensemble "
            f"{fge['ensemble_acc']:.4f}; test NLL single {result['fge'][0]['single_loss']:.3g}"
            f" -> ensemble {fge['ensemble_loss']:.3g}")
