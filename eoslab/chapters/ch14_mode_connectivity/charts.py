"""Chapter 14's figure: training loss | loss along the paths | the plane | FGE accuracy.

:func:`connectivity_layout` builds the Altair layout on named datasets and
:func:`connectivity_datasets` fills them from a
:func:`~eoslab.chapters.ch14_mode_connectivity.connectivity.mode_connectivity` result,
so a live app swaps only the datasets (:mod:`eoslab.ui.plots`).

Example:
    >>> sorted(connectivity_datasets({}))
    ['fge', 'notes', 'paths', 'plane_grid', 'plane_paths', 'plane_points', 'training']

A diverged run keeps every panel it reached; a panel the run never reached (or the stage
that blew up) says so in place, through the ``notes`` dataset (panel, text), drawn as
text at the panel's centre.
"""

from __future__ import annotations

import altair as alt

from eoslab.ui.plane_plots import path_data, path_layout, plane_data, plane_layout
from eoslab.ui.plots import HEIGHT, WIDTH, panel_note

__all__ = ["connectivity_datasets", "connectivity_layout", "notes", "partial_datasets"]

PANELS = ("training", "paths", "plane", "fge")


def _note(panel: str, width: float, height: float):
    return panel_note(panel, width, height, font_size=12)


def _plane_panel():
    return plane_layout("train loss on the plane through w1, w2 and the bend",
                        x_title="along w2 − w1", y_title="towards the bend, in the plane",
                        extra=[_note("plane", WIDTH + 20, HEIGHT + 20)])


def connectivity_layout():
    """Training loss | loss along the paths | the plane | FGE accuracy."""
    training = alt.Chart(alt.Data(name="training")).mark_line().encode(
        x=alt.X("step:Q", title="step (w1, w2, curve, FGE in turn)"),
        y=alt.Y("loss:Q", title="minibatch loss", scale=alt.Scale(type="log")),
        color=alt.Color("stage:N", title="training stage"))
    fge = alt.Chart(alt.Data(name="fge")).mark_line(point=True).encode(
        x=alt.X("k:Q", title="snapshot k", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("acc:Q", title="test accuracy", scale=alt.Scale(zero=False)),
        color=alt.Color("what:N", title="FGE test accuracy"))
    paths = path_layout("train loss: straight line vs trained curve")
    paths = paths.encode(color=alt.Color("path:N", title="path from w1 to w2"))
    top = alt.hconcat(
        alt.layer(training, _note("training", WIDTH, HEIGHT)).properties(
            width=WIDTH, height=HEIGHT, title="training"),
        alt.layer(paths, _note("paths", WIDTH, HEIGHT)).properties(
            width=WIDTH, height=HEIGHT, title="train loss: straight line vs trained curve"))
    bottom = alt.hconcat(_plane_panel(), alt.layer(fge, _note("fge", WIDTH, HEIGHT)).properties(
        width=WIDTH, height=HEIGHT, title="FGE: snapshot alone vs ensemble of the first k"))
    return alt.vconcat(top.resolve_scale(color="independent", strokeDash="independent"),
                       bottom.resolve_scale(color="independent", strokeDash="independent")
                       ).resolve_scale(color="independent", strokeDash="independent")


def notes(result: dict) -> list:
    """In-place notes of a diverged result: the stage that blew up, panels never reached.

    >>> notes({"status": "diverged", "training": [1], "line": {},
    ...        "diverged": {"stage": "FGE", "step": 7}})[0]["panel"]
    'training'
    """
    if result.get("status") != "diverged":
        return []
    d = result.get("diverged", {})
    what = f"{d.get('stage', 'training')} diverged at step {d.get('step')}"
    reached = {"training": bool(result.get("training")), "paths": "line" in result,
               "plane": "plane" in result, "fge": "fge" in result}
    out = [{"panel": "training", "text": what}]
    out += [{"panel": panel, "text": f"not computed:\n{what}"}
            for panel in PANELS[1:] if not reached[panel]]
    return out


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
    out["notes"] = notes(result)
    fge = []
    for row in result.get("fge", []):
        fge.append({"k": row["k"], "acc": row["single_acc"], "what": "snapshot k alone"})
        fge.append({"k": row["k"], "acc": row["ensemble_acc"], "what": "ensemble of 1..k"})
    out["fge"] = fge
    return out
