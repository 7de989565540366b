"""The playground's figures: pure Altair builders on named datasets.

:func:`history_layout` draws four panels over the runs shown (one colour per run):
training loss (log scale), training accuracy, the optimiser's curvature against its
stability threshold (dashed; :mod:`eoslab.ui.playground.choices`), and the top-k Hessian
eigenvalues with the trace when measured. Its datasets are ``history`` (rows ``run, step,
loss, acc``), ``edge`` (``run, step, curve, value``) and ``spectrum`` (``run, step, which,
value``); :func:`history_datasets` builds them from run histories.

:func:`slice_layout` draws the 1-D slices along the top Hessian eigenvector and along the
gradient (``slice1d``: ``direction, alpha, loss``) and the 2-D slice of the two
(``slice2d``: ``x, y, loss``).

    >>> spec = history_layout().to_dict()
    >>> sorted(spec["datasets"])
    ['edge', 'history', 'spectrum']
"""

from __future__ import annotations

import altair as alt

from eoslab.ui.plots import HEIGHT, WIDTH, clean

__all__ = ["history_datasets", "history_layout", "slice_layout"]

_W, _H = int(WIDTH * 0.9), int(HEIGHT * 0.9)


def _panel(name: str, y: str, title: str, *, log: bool = False, color: str = "run:N",
           dash=None):
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    enc = {"x": alt.X("step:Q", title="step"),
           "y": alt.Y(f"{y}:Q", title=title, scale=scale),
           "color": alt.Color(color, legend=alt.Legend(orient="bottom", columns=1,
                                                       labelLimit=400)),
           "tooltip": ["run:N", "step:Q", f"{y}:Q"]}
    if dash is not None:
        enc["strokeDash"] = dash
    return (alt.Chart(alt.Data(name=name)).mark_line(point=False)
            .encode(**enc).properties(width=_W, height=_H, title=title))


def history_layout():
    """The four live panels, on empty named datasets."""
    loss = _panel("history", "loss", "training loss", log=True)
    acc = _panel("history", "acc", "training accuracy")
    dash = alt.StrokeDash("curve:N", title="curve", legend=alt.Legend(orient="bottom",
                                                                      labelLimit=400))
    edge = _panel("edge", "value", "sharpness vs threshold", log=True, dash=dash)
    edge = edge.encode(tooltip=["run:N", "curve:N", "step:Q", "value:Q"])
    spectrum = _panel("spectrum", "value", "top eigenvalues / trace", dash=alt.StrokeDash(
        "which:N", title="Hessian", legend=alt.Legend(orient="bottom")))
    chart = alt.vconcat(alt.hconcat(loss, acc), alt.hconcat(edge, spectrum))
    chart = chart.resolve_scale(color="shared", strokeDash="independent")
    return chart.properties(datasets={"history": [], "edge": [], "spectrum": []})


_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _spectrum_name(key: str) -> str:
    """The legend name of a spectrum column: ``λ₁`` (the sharpness), ``λ₂``, ..., ``trace``.

    >>> _spectrum_name("sharpness"), _spectrum_name("eig_3"), _spectrum_name("trace")
    ('λ₁', 'λ₃', 'trace')
    """
    if key == "sharpness":
        return "λ₁"
    if key.startswith("eig_"):
        return "λ" + key.removeprefix("eig_").translate(_SUBSCRIPTS)
    return key


def history_datasets(runs: list[tuple[str, list[dict], list[dict]]]) -> dict:
    """Datasets of :func:`history_layout` from ``(label, history, edge rows)`` per run."""
    history, edge, spectrum = [], [], []
    for label, rows, edges in runs:
        for row in rows:
            history.append({"run": label, "step": row["step"], "loss": clean(row.get("loss")),
                            "acc": clean(row.get("acc"))})
            for key, value in row.items():
                if key == "sharpness" or key.startswith("eig_") or key == "trace":
                    which = _spectrum_name(key)
                    spectrum.append({"run": label, "step": row["step"], "which": which,
                                     "value": clean(value)})
        edge.extend({**e, "run": label, "value": clean(e["value"])} for e in edges)
    return {"history": history, "edge": edge, "spectrum": spectrum}


def slice_layout():
    """1-D slices (top eigenvector, gradient) and the 2-D slice, on empty named datasets."""
    line = (alt.Chart(alt.Data(name="slice1d")).mark_line()
            .encode(x=alt.X("alpha:Q", title="distance along the unit direction"),
                    y=alt.Y("loss:Q", title="training loss", scale=alt.Scale(zero=False)),
                    color=alt.Color("direction:N", legend=alt.Legend(orient="bottom")),
                    tooltip=["direction:N", "alpha:Q", "loss:Q"])
            .properties(width=_W, height=_H, title="1-D slices at the chosen step"))
    heat = (alt.Chart(alt.Data(name="slice2d")).mark_rect()
            .encode(x=alt.X("x:O", title="top eigenvector", axis=alt.Axis(format=".2g")),
                    y=alt.Y("y:O", title="gradient", sort="descending",
                            axis=alt.Axis(format=".2g")),
                    color=alt.Color("loss:Q", scale=alt.Scale(type="log", scheme="viridis"),
                                    legend=alt.Legend(format=".3g")),
                    tooltip=["x:Q", "y:Q", "loss:Q"])
            .properties(width=_H, height=_H, title="2-D slice (eigenvector, gradient)"))
    chart = alt.hconcat(line, heat).resolve_scale(color="independent")
    return chart.properties(datasets={"slice1d": [], "slice2d": []})
