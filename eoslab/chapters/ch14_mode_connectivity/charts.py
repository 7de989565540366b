"""Chapter 14's figure: training loss | loss along the paths | the plane | FGE accuracy.

:func:`connectivity_layout` builds the Altair layout on named datasets and
:func:`connectivity_datasets` fills them from a
:func:`~eoslab.chapters.ch14_mode_connectivity.connectivity.mode_connectivity` result,
so a live app swaps only the datasets (:mod:`eoslab.ui.plots`).

Example:
    >>> sorted(connectivity_datasets({}))
    ['fge', 'paths', 'plane_grid', 'plane_paths', 'plane_points', 'training']
"""

from __future__ import annotations

import altair as alt

from eoslab.ui.plane_plots import path_data, path_layout, plane_data, plane_layout
from eoslab.ui.plots import HEIGHT, WIDTH

__all__ = ["connectivity_datasets", "connectivity_layout", "partial_datasets"]


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


def partial_datasets(partial: dict) -> dict:
    """The datasets of what the pipeline has streamed so far (training rows, the line)."""
    out = {}
    if "training" in partial:
        out["training"] = partial["training"]
    if "line" in partial:
        out.update(path_data({"straight line": partial["line"]}))
    return out


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
