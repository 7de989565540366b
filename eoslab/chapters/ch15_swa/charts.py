"""Chapter 15's figure: training | plane through three iterates | slices | comparison.

:func:`swa_layout` builds the Altair layout on named datasets and :func:`swa_datasets`
fills them from a :func:`~eoslab.chapters.ch15_swa.swa_geometry.swa_experiment` result,
so a live app swaps only the datasets (:mod:`eoslab.ui.plots`).

Example:
    >>> swa_datasets({"history": [{"step": 0, "loss": 1.0, "test_loss": None}]}, 10)["history"]
    [{'step': 0, 'loss': 1.0}]
"""

from __future__ import annotations

import altair as alt

from eoslab.ui.plane_plots import plane_data, plane_layout
from eoslab.ui.plots import HEIGHT, WIDTH, rows

__all__ = ["partial_datasets", "swa_datasets", "swa_layout"]

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


def _history(result: dict, swa_start: int) -> dict:
    return {"history": [{k: v for k, v in r.items() if v is not None}
                        for r in result.get("history", [])],
            "swa_start": [{"step": swa_start}]}


def partial_datasets(partial: dict, swa_start: int) -> dict:
    """The datasets of what training has streamed so far (the loss history)."""
    return _history(partial, swa_start) if "history" in partial else dict(partial)


def swa_datasets(result: dict, swa_start: int) -> dict:
    """All datasets of :func:`swa_layout` from a pipeline result."""
    out = _history(result, swa_start)
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
