"""Chapter 15's figure: training | plane through three iterates | slices | comparison.

:func:`swa_layout` builds the Altair layout on named datasets and :func:`swa_datasets`
fills them from a :func:`~eoslab.chapters.ch15_swa.swa_geometry.swa_experiment` result,
so a live app swaps only the datasets (:mod:`eoslab.ui.plots`). A diverged run keeps the
loss it drew; every panel it never reached says so in place (dataset ``notes``: panel, text).

Example:
    >>> swa_datasets({"history": [{"step": 0, "loss": 1.0, "test_loss": None}]}, 10)["history"]
    [{'step': 0, 'loss': 1.0}]
"""

from __future__ import annotations

import altair as alt

from eoslab.ui.plane_plots import plane_data, plane_layout
from eoslab.ui.plots import HEIGHT, WIDTH, panel_note, rows

__all__ = ["notes", "partial_datasets", "swa_datasets", "swa_layout"]

_WHO = ("last SGD iterate", "mean over iterates", "SWA", "SGD, decaying η")
_METRICS = ("test error", "sharpness", "train loss")
_SPLITS = {"loss": "train (minibatch)", "test_loss": "test"}


def _note(panel: str, width: float, height: float):
    return panel_note(panel, width, height, font_size=11)


def _plane_panel():
    return plane_layout("train loss on the plane through 3 iterates",
                        x_title="from the first to the middle iterate",
                        extra=[_note("plane", WIDTH + 20, HEIGHT + 20)])


def swa_layout():
    """Training curves | plane through three iterates | random-direction slices | comparison."""
    hist = alt.Chart(alt.Data(name="history")).transform_fold(
        list(_SPLITS), as_=["key", "value"]).transform_calculate(
        split=f"datum.key == 'loss' ? '{_SPLITS['loss']}' : '{_SPLITS['test_loss']}'"
    ).mark_line().encode(
        x=alt.X("step:Q", title="SGD step"),
        y=alt.Y("value:Q", title="loss (log)", scale=alt.Scale(type="log")),
        color=alt.Color("split:N", title="loss on"))
    start = alt.Chart(alt.Data(name="swa_start")).mark_rule(strokeDash=[6, 4]).encode(
        x="step:Q")
    training = alt.layer(hist, start, _note("training", WIDTH, HEIGHT)).properties(
        width=WIDTH, height=HEIGHT, title="SGD at constant η (averaging from the dashed line)")
    slices = alt.Chart(alt.Data(name="slices")).mark_line().encode(
        x=alt.X("alpha:Q", title="distance along random filter-normalised directions"),
        y=alt.Y("loss:Q", title="train loss (mean of 3 directions)",
                scale=alt.Scale(type="log")),
        color=alt.Color("at:N", title="slice from"))
    slices = alt.layer(slices, _note("slices", WIDTH, HEIGHT)).properties(
        width=WIDTH, height=HEIGHT, title="1-D slices: SWA vs the last SGD iterate")
    bars = [alt.layer(alt.Chart(alt.Data(name="compare")).transform_filter(
        alt.datum.metric == metric).mark_bar().encode(
        x=alt.X("who:N", title=None, sort=list(_WHO)), y=alt.Y("value:Q", title=metric),
        color=alt.Color("who:N", legend=None, sort=list(_WHO))),
        _note(metric, WIDTH // 3 + 20, HEIGHT)).properties(
        width=WIDTH // 3 + 20, height=HEIGHT, title=metric) for metric in _METRICS]
    top = alt.hconcat(training, _plane_panel())
    bottom = alt.hconcat(slices, *bars).resolve_scale(color="independent")
    return alt.vconcat(top.resolve_scale(color="independent", strokeDash="independent"),
                       bottom).resolve_scale(color="independent", strokeDash="independent")


def notes(result: dict) -> list:
    """In-place notes: the panels a diverged run never reached, and a diverged baseline.

    >>> notes({"status": "diverged", "diverged": {"stage": "SGD", "step": 7}})[0]["text"]
    'SGD diverged at step 7'
    """
    out = []
    if result.get("status") == "diverged":
        d = result.get("diverged", {})
        what = f"{d.get('stage', 'SGD')} diverged at step {d.get('step')}"
        out.append({"panel": "training", "text": what})
        out += [{"panel": panel, "text": f"not computed:\n{what}"}
                for panel in ("plane", "slices")]
        out += [{"panel": metric, "text": f"not computed:\n{d.get('stage', 'SGD')} diverged"
                 f"\nat step {d.get('step')}"} for metric in _METRICS]  # narrow panels
    elif result.get("decayed", {}).get("status") == "diverged":
        step = result["decayed"].get("step")
        out += [{"panel": metric, "text": f"decaying-η SGD\ndiverged at step {step}"}
                for metric in _METRICS]
    return out


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
        for who, key in zip(_WHO, ("sgd", "iterates", "swa", "decayed")):
            m = result.get(key, {})
            if m.get("status", "finished") != "finished" or "test_acc" not in m:
                continue
            compare += [{"who": who, "metric": "test error", "value": 1 - m["test_acc"]},
                        {"who": who, "metric": "sharpness", "value": m["sharpness"]},
                        {"who": who, "metric": "train loss", "value": m["train_loss"]}]
        out["compare"] = compare
    else:
        out.update({"plane_grid": [], "plane_paths": [], "plane_points": [], "slices": [],
                    "compare": []})
    out["notes"] = notes(result)
    return out
