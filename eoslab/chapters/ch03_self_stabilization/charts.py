"""Chapter 03's figure: GD beside the constrained trajectory and the paper's predicted (x, y).

Damian, Nichani, Lee (ICLR 2023, arXiv 2209.15594).  Six panels on named long-format
datasets (one row per step and curve, the curve named as the legend shows it), so that a
panel with no data yet draws nothing, and each panel's colours have a fixed domain and a
legend under the panel:

* ``sharpness``: :math:`S(\\theta_t)` of GD, :math:`S(\\theta^\\dagger_t)` and :math:`2/\\eta`;
* ``x``: :math:`|x_t|` measured and predicted (log scale);
* ``y``: :math:`y_t = S(\\theta_t) - 2/\\eta` measured and predicted;
* ``portrait``: the phase portrait :math:`(|x|, y)`, measured and predicted;
* ``distance``: :math:`\\lVert\\theta_t - \\theta^\\dagger_t\\rVert` and
  :math:`\\lVert\\theta_t - \\theta_0\\rVert`;
* ``loss``: the train loss of GD and of :math:`\\theta^\\dagger`.

:func:`cycle_data` builds the datasets from the probed history and the prediction
(:func:`~eoslab.chapters.ch03_self_stabilization.constrained.predicted_xy`).
"""

from __future__ import annotations

import altair as alt

from eoslab.ui.plots import clean

__all__ = ["CURVES", "cycle_data", "cycle_layout"]

MEASURED, PREDICTED = "measured (GD)", "predicted (cubic model)"
#: dataset -> (legend title, curve names, colours)
CURVES = {
    "sharpness": ("sharpness", ("S(θ) of GD", "S(θ†) constrained", "2/η"),
                  ("#d62728", "#1f77b4", "black")),
    "x": ("|x| along u", (MEASURED, PREDICTED), ("#ff7f0e", "#555555")),
    "y": ("y = S − 2/η", (MEASURED, PREDICTED), ("#ff7f0e", "#555555")),
    "portrait": ("(|x|, y)", (MEASURED, PREDICTED), ("#ff7f0e", "#555555")),
    "distance": ("distance", ("|θ − θ†|", "|θ − θ₀|"), ("#2ca02c", "#9467bd")),
    "loss": ("train loss", ("GD", "θ† constrained"), ("#d62728", "#1f77b4")),
}
SIZE = {"width": 230, "height": 170}
#: the scales' domains are the data's extent united with a fixed range (``unionWith``), so
#: that a panel without data yet has a finite domain (no infinite extents while it loads)


def _colour(name: str):
    title, domain, colours = CURVES[name]
    return alt.Color("curve:N", title=title, scale=alt.Scale(domain=list(domain),
                                                            range=list(colours)),
                     legend=alt.Legend(orient="bottom", direction="vertical"))


def _dash(dashed: str):
    return alt.condition(f"datum.curve == '{dashed}'", alt.value([5, 3]), alt.value([1, 0]))


def cycle_layout(lr: float, steps: int):
    """The six panels for step size ``lr`` over ``steps`` steps (domains fixed by them)."""
    edge = 2.0 / lr
    step = alt.X("step:Q", title="step t", scale=alt.Scale(domain=[0, steps]))

    def panel(name, y, title, dashed, **mark):
        return alt.Chart(alt.Data(name=name)).mark_line(**mark).encode(
            x=step, y=y, color=_colour(name), strokeDash=_dash(dashed), order="step:Q"
        ).properties(title=title, **SIZE)

    sharp = panel("sharpness", alt.Y("v:Q", title="sharpness S", scale=alt.Scale(
        zero=False, domain={"unionWith": [0.8 * edge, 1.1 * edge]})),
        "S of GD and of θ†; dashed 2/η", "2/η")
    x = panel("x", alt.Y("v:Q", title="|x| = |u · (θ − θ†)|", scale=alt.Scale(
        type="log", domain={"unionWith": [1e-4, 1e-2]})),
              "displacement along u", PREDICTED)
    y = panel("y", alt.Y("v:Q", title="y = S − 2/η", scale=alt.Scale(
        domain={"unionWith": [-0.2 * edge, 0.2 * edge]})), "sharpness above the edge",
        PREDICTED)
    # plain lines: a point overlay makes a layer whose copy of the unionWith domain Vega
    # reports as a conflicting scale property
    portrait = alt.Chart(alt.Data(name="portrait")).mark_line().encode(
        x=alt.X("abs_x:Q", title="|x|", scale=alt.Scale(
            type="log", domain={"unionWith": [1e-4, 1e-2]})),
        y=alt.Y("y:Q", title="y = S − 2/η", scale=alt.Scale(
            domain={"unionWith": [-0.2 * edge, 0.2 * edge]})), color=_colour("portrait"),
        strokeDash=_dash(PREDICTED), order="step:Q", detail="curve:N"
    ).properties(title="phase portrait (|x|, y)", **SIZE)
    dist = panel("distance", alt.Y("v:Q", title="norm", scale=alt.Scale(
        domain={"unionWith": [0, 0.1]})), "distance to θ† vs travel", "|θ − θ₀|")
    loss = panel("loss", alt.Y("v:Q", title="train loss", scale=alt.Scale(
        type="log", domain={"unionWith": [0.05, 1]})),
                 "loss of GD and of θ†", "θ† constrained")
    return alt.vconcat(alt.hconcat(sharp, x, y).resolve_scale(color="independent"),
                       alt.hconcat(portrait, dist, loss).resolve_scale(color="independent")
                       ).resolve_scale(color="independent").properties(
        datasets={name: [] for name in CURVES})


def _long(rows: list[dict], name: str, fields: tuple[str, ...]) -> list[dict]:
    curves = CURVES[name][1]
    return [{"step": r["step"], "curve": curve, "v": clean(r.get(field))}
            for r in rows for field, curve in zip(fields, curves)
            if clean(r.get(field)) is not None]


def cycle_data(rows: list[dict], predicted: list[dict], lr: float) -> dict:
    """The six datasets from the probed ``rows`` and the ``predicted`` ``(x, y)`` rows.

    The prediction is shown at the recorded steps only (``x`` flips sign every step, so
    the recorded cadence shows it as the measurement does).

    >>> data = cycle_data([{"step": 0, "loss": 1.0, "dagger_loss": 1.0, "sharpness": 2.0,
    ...                     "dagger_sharpness": 2.0, "x": 0.0, "y": -1.0, "distance": 0.0,
    ...                     "travel": 0.0}], [], 0.66)
    >>> [r["curve"] for r in data["sharpness"]], data["x"]
    (['S(θ) of GD', 'S(θ†) constrained', '2/η'], [])
    """
    edge = 2.0 / lr
    probed = [r for r in rows if r.get("y") is not None]
    recorded = {r["step"] for r in probed}
    shown = [p for p in predicted if p["step"] in recorded]
    abs_x = [{"step": r["step"], "a": abs(r["x"])} for r in probed]
    abs_x += [{"step": p["step"], "b": abs(p["x"])} for p in shown]
    out = {
        "sharpness": _long([{**r, "edge": edge} for r in probed], "sharpness",
                           ("sharpness", "dagger_sharpness", "edge")),
        "x": [r for r in _long(abs_x, "x", ("a", "b")) if r["v"] > 0],
        "y": _long(probed, "y", ("y",)) + [{"step": p["step"], "curve": PREDICTED,
                                            "v": clean(p["y"])} for p in shown],
        "portrait": [{"step": r["step"], "curve": curve, "abs_x": abs(r["x"]), "y": r["y"]}
                     for curve, src in ((MEASURED, probed), (PREDICTED, shown))
                     for r in src if r["x"] != 0 and clean(r["y"]) is not None],
        "distance": _long(probed, "distance", ("distance", "travel")),
        "loss": [r for r in _long(probed, "loss", ("loss", "dagger_loss")) if r["v"] > 0],
    }
    return out
