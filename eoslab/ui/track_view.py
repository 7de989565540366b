"""The live chart of a :class:`~eoslab.curvature.tracker.Tracker`.

Three panels against the step: the loss (log scale); the sharpness against the
optimiser's stability threshold (dashed), i.e. :math:`\\lambda_{\\max}(\\nabla^2 L)` versus
:math:`2/\\eta` or :math:`(2+2\\beta)/\\eta` (Cohen et al., ICLR 2021, arXiv 2103.00065), or
for Adam/AdamW/RMSprop the preconditioned sharpness :math:`\\lambda_{\\max}(P^{-1}\\nabla^2 L)`
versus :math:`(2+2\\beta_1)/((1-\\beta_1)\\eta)` (Cohen et al., arXiv 2207.14484), with the
next eigenvalues when the tracker records ``k > 1``; and the Hessian trace.

As every eoslab figure, the layout (:func:`track_layout`) reads named datasets that
:func:`track_data` fills, so :class:`TrackView` sends only new datasets as rows arrive
(:class:`~eoslab.ui.base.LiveChart`) and draws a new layout only when the legend changes
(the first row with an optimiser, a divergence does not).

Example:
    >>> rows = [{"step": 20, "loss": 0.5, "sharpness": 3.0, "threshold": 20.0, "trace": 9.0}]
    >>> data = track_data(rows, "2/η")
    >>> [(r["series"], r["value"]) for r in data["curvature"]]
    [('sharpness λmax', 3.0), ('threshold 2/η', 20.0)]
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import altair as alt
import ipywidgets as widgets

from eoslab.ui.base import LiveChart
from eoslab.ui.plots import HEIGHT, WIDTH, clean, with_datasets, y_axis

__all__ = ["TrackView", "curvature_series", "status_text", "track_chart", "track_data",
           "track_layout"]

SHARPNESS = "sharpness λmax"
PRECOND = "preconditioned sharpness λmax(P⁻¹H)"


def curvature_series(threshold_name: str | None, adaptive: bool = False, k: int = 1
                     ) -> list[str]:
    """The legend entries of the sharpness panel, in order.

    >>> curvature_series("(2+2β)/η", k=2)
    ['sharpness λmax', 'λ2', 'threshold (2+2β)/η']
    """
    names = [PRECOND] if adaptive else [SHARPNESS] + [f"λ{i}" for i in range(2, k + 1)]
    return names + ([f"threshold {threshold_name}"] if threshold_name else [])


def track_layout(threshold_name: str | None, adaptive: bool = False, k: int = 1,
                 trace: bool = True):
    """Sharpness against its dashed threshold, loss and trace, side by side.

    Datasets: ``loss`` (step, loss), ``curvature`` (step, series, value) and ``trace``
    (step, trace).
    """
    series = curvature_series(threshold_name, adaptive, k)
    dashes = [[6, 4] if s.startswith("threshold") else [1, 0] for s in series]
    loss = alt.Chart(alt.Data(name="loss")).mark_line(point=True).encode(
        x=alt.X("step:Q"), y=y_axis("loss", "loss", True)
    ).transform_filter("datum.loss > 0").properties(title="train loss")
    base = alt.Chart(alt.Data(name="curvature")).encode(
        x=alt.X("step:Q"), y=alt.Y("value:Q", title="eigenvalue"),
        color=alt.Color("series:N", title=None, sort=series, scale=alt.Scale(domain=series),
                        legend=alt.Legend(orient="bottom", direction="vertical",
                                          symbolType="stroke", labelLimit=320)),
        strokeDash=alt.StrokeDash("series:N", title=None, sort=series,
                                  scale=alt.Scale(domain=series, range=dashes)))
    edge = "indexof(datum.series, 'threshold') == 0"
    curvature = alt.layer(
        base.mark_line(point=True).transform_filter(f"!({edge})"),
        base.mark_line().transform_filter(edge),
    ).properties(title="sharpness against its threshold (dashed)")
    panels = [curvature, loss]
    if trace:
        panels.append(alt.Chart(alt.Data(name="trace")).mark_line(point=True).encode(
            x=alt.X("step:Q"), y=alt.Y("trace:Q", title="trace of the Hessian")
        ).properties(title="trace tr ∇²L"))
    return alt.hconcat(*[p.properties(width=WIDTH, height=HEIGHT) for p in panels])


def track_data(rows: Sequence[dict], threshold_name: str | None, adaptive: bool = False,
               k: int = 1) -> dict:
    """Datasets for :func:`track_layout` from a tracker's rows (missing values left out)."""
    names = curvature_series(threshold_name, adaptive, k)
    fields = (["precond_sharpness"] if adaptive
              else ["sharpness"] + [f"eig_{i}" for i in range(2, k + 1)])
    if threshold_name:
        fields.append("threshold")
    loss, curvature, trace = [], [], []
    for row in rows:
        step = row["step"]
        if clean(row.get("loss")) is not None:
            loss.append({"step": step, "loss": clean(row["loss"])})
        for field, name in zip(fields, names):
            value = clean(row.get(field))
            if value is not None:
                curvature.append({"step": step, "series": name, "value": value})
        if clean(row.get("trace")) is not None:
            trace.append({"step": step, "trace": clean(row["trace"])})
    return {"loss": loss, "curvature": curvature, "trace": trace}


def track_chart(rows: Sequence[dict], threshold_name: str | None, adaptive: bool = False,
                k: int = 1, trace: bool = True):
    """The tracker's figure with its data (see :func:`track_layout`)."""
    return with_datasets(track_layout(threshold_name, adaptive, k, trace),
                         track_data(rows, threshold_name, adaptive, k))


def status_text(tracker) -> str:
    """One line on the latest row, or on the divergence.

    >>> class T: history, diverged, threshold_name = [], (40, float("inf")), None
    >>> status_text(T())
    'diverged at step 40: loss inf; curvature is no longer computed'
    """
    if tracker.diverged is not None:
        step, value = tracker.diverged
        return f"diverged at step {step}: loss {value:.3g}; curvature is no longer computed"
    if not tracker.history:
        return "no row yet: call tracker.step(optimizer) after each optimizer.step()"
    row = tracker.history[-1]
    text = f"step {row['step']}: loss {row['loss']:.4g}"
    key = "precond_sharpness" if "precond_sharpness" in row else "sharpness"
    if row.get(key) is not None:
        text += f", {PRECOND if key != 'sharpness' else SHARPNESS} {row[key]:.4g}"
    if row.get("threshold") is not None and tracker.threshold_name:
        text += f" (threshold {tracker.threshold_name} = {row['threshold']:.4g})"
    return text


class TrackView:
    """A tracker's live chart and status line, updated after each recorded row.

    Attributes:
        chart: the :class:`~eoslab.ui.base.LiveChart`.
        status: an HTML line (CSS class ``eoslab-status``) naming the latest values or
            the divergence.
        widget: both in a box (CSS class ``eoslab-track``), to display.
    """

    def __init__(self, tracker, mode: str = "auto"):
        self.tracker = tracker
        self._layout = self._layout_key()
        self.chart = LiveChart(track_chart(tracker.history, *self._layout), mode=mode)
        self.status = widgets.HTML(value=html.escape(status_text(tracker)))
        self.status.add_class("eoslab-status")
        self.widget = widgets.VBox([self.chart.widget, self.status])
        self.widget.add_class("eoslab-track")
        tracker.subscribe(self.refresh)

    def _layout_key(self) -> tuple:
        t = self.tracker
        return (t.threshold_name, t.adaptive, t.k, t.trace_probes is not None)

    def refresh(self, tracker=None) -> None:
        """Send the rows to the chart (a new layout only when the legend changed)."""
        key = self._layout_key()
        if key != self._layout:
            self._layout = key
            self.chart.show(track_chart(self.tracker.history, *key))
        else:
            self.chart.update(track_data(self.tracker.history, *key[:3]))
        self.status.value = html.escape(status_text(self.tracker))
