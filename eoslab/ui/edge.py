"""The edge of stability marked next to the step-size slider, and the app's control rows.

A chapter preset may define ``lr_edge``: the step size at the stability threshold of its
problem at initialisation (e.g. :math:`\\eta^* = 2/\\lambda_0`, with :math:`\\lambda_0` the
largest Hessian eigenvalue at the initial weights), and ``lr_edge_formula``, how it is
computed (default ``"2/λ₀"``).  :class:`EdgeMarker` then shows, after the ``lr`` slider,
a label ``edge 2/λ₀ = 0.31`` (CSS class ``eoslab-edge``) and a red tick on the
slider's track at that step size; both follow the preset dropdown and the slider's range.
A preset without ``lr_edge`` shows nothing.  An app whose edge moves with its other
controls (chapter 01's curvature sliders) defines ``lr_edge`` (and ``lr_edge_formula``)
itself, from its current settings; the marker follows every control then.

:func:`lr_range_around_edge` is how a chapter picks its slider range from the edge: a
stated fraction below it to a stated multiple above it.

>>> lr_range_around_edge(0.5, below=0.2, above=3.0)
(0.1, 1.5)
"""

from __future__ import annotations

import html
import math
from types import SimpleNamespace

import ipywidgets as widgets

__all__ = ["GAP", "EdgeMarker", "edge_of", "lr_range_around_edge", "slider_rows"]

#: the space after the edge label, so that the next control's description in the row
#: (wrapped or not) never runs into it
GAP = "24px"


def edge_of(preset) -> float | None:
    """The preset's ``lr_edge`` when it has a finite positive one, else ``None``."""
    value = getattr(preset, "lr_edge", None)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def lr_range_around_edge(edge: float, below: float = 0.1, above: float = 3.0,
                         digits: int = 3) -> tuple[float, float]:
    """``(below * edge, above * edge)``, rounded to ``digits`` significant digits.

    With ``below`` < 1 < ``above`` the slider spans the stable and the unstable side of
    the edge in proportion to those factors; ``above`` <= 1 keeps it below the edge (a
    chapter whose interesting range lies there, e.g. momentum SGD in chapter 14).
    """
    if not (math.isfinite(edge) and edge > 0):
        raise ValueError(f"edge={edge!r} is not allowed; it must be a finite step size > 0")
    if not (0 < below < above and math.isfinite(above)):
        raise ValueError(f"below={below!r}, above={above!r} are not allowed; need "
                         "0 < below < above, both finite")
    return (float(f"{below * edge:.{digits}g}"), float(f"{above * edge:.{digits}g}"))


class EdgeMarker:
    """The label and track tick of the app's edge (see the module docs).

    Attributes:
        widget: an HTML widget (class ``eoslab-edge``), hidden when the preset has no edge.
    """

    def __init__(self, app):
        self.app = app
        # the right margin keeps the next control's label clear of "... = 9.68"
        self.widget = widgets.HTML(layout=widgets.Layout(margin=f"0 {GAP} 0 8px"))
        self.widget.add_class("eoslab-edge")
        self.slider = app.sliders.get("lr")
        bounds = app.slider_range("lr", app.preset) if self.slider is not None else None
        if bounds is not None:  # the preset's own range from the start, not only on a switch
            app._set_range(self.slider, *bounds)
        if self.slider is not None:
            self.slider.observe(self.refresh, names=["min", "max"])
        for w in app.sliders.values():  # an edge may follow the other controls (ch01, ch02)
            w.observe(self.refresh, names="value")
        app.preset_menu.observe(self.refresh, names="value")
        self.refresh()

    def edge(self) -> tuple[float | None, str]:
        """The edge step size and its formula.

        The app's own ``lr_edge`` (and ``lr_edge_formula``) where its class defines one,
        else the app's ``lr_edge_of`` and ``lr_edge_name`` of its preset (by default the
        preset's ``lr_edge`` and ``lr_edge_formula``, see :class:`~eoslab.ui.lr_slider.LrSlider`).
        """
        app = self.app
        if hasattr(type(app), "lr_edge"):
            return edge_of(app), getattr(app, "lr_edge_formula", "2/λ₀")
        edge = getattr(app, "lr_edge_of", edge_of)(app.preset)
        name = (app.lr_edge_name(app.preset) if hasattr(app, "lr_edge_name")
                else getattr(app.preset, "lr_edge_formula", "2/λ₀"))
        return edge_of(SimpleNamespace(lr_edge=edge)), name

    def text(self) -> str:
        """The label's text, or ``""`` when there is no edge to show."""
        edge, formula = self.edge()
        if edge is None or self.slider is None:
            return ""
        return f"edge {formula} = {edge:.3g}"

    def refresh(self, _change=None) -> None:
        text = self.text()
        self.widget.layout.display = "" if text else "none"
        if not text:
            self.widget.value = ""
            return
        edge, _ = self.edge()
        low, high = self.slider.min, self.slider.max
        tick = ""
        if high > low and low <= edge <= high:
            left = 100 * (edge - low) / (high - low)
            tick = ("<style>.eoslab-lr-slider .noUi-base::after{content:'';position:absolute;"
                    f"left:{left:.2f}%;top:-5px;height:14px;border-left:2px solid #d62728;"
                    "pointer-events:none}</style>")
        self.widget.value = (f"{tick}<span title='the step size at the stability threshold "
                             f"at initialisation' style='color:#d62728'>"
                             f"{html.escape(text)}</span>")


def slider_rows(app) -> list:
    """The app's controls, two a row (rows wrap on a narrow page), the edge after ``lr``.

    Also lets the chart follow the run: while the status state is ``training`` the chart
    is ``streaming`` (:attr:`~eoslab.ui.base.LiveChart.streaming`).
    """
    app.controls.watchers.append(lambda state: setattr(app.chart, "streaming",
                                                       state == "training"))
    app.edge = EdgeMarker(app)
    items = []
    for name, w in app.sliders.items():
        items.append(widgets.HBox([w, app.edge.widget]) if name == "lr" else w)
    wrap = widgets.Layout(flex_flow="row wrap", max_width="100%")
    return [widgets.HBox(items[i:i + 2], layout=wrap) for i in range(0, len(items), 2)]
