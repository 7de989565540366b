"""The step-size slider of a chapter app: its range from the preset's edge, and its label.

A chapter app (:class:`~eoslab.ui.app.ChapterApp`, which inherits :class:`LrSlider`)
declares its step-size slider with class attributes only:

* ``LR_RANGE = (low, high, step)``: the slider's step, and its range where the preset has
  no edge (or where ``LR_SPAN`` is ``None``);
* ``LR_SPAN = (below, above)``: the range is ``below`` to ``above`` times the edge
  :math:`\\eta^*` of the preset (its ``lr_edge``, e.g. :math:`2/\\lambda_0`), by
  :func:`~eoslab.ui.edge.lr_range_around_edge` (3 significant digits);
* ``LR_LABEL``: the description without an edge, and ``LR_EDGE_LABEL``, a format string
  of ``edge`` for a preset with one (e.g. ``"η (edge 2/λ₀ = {edge:.2g})"``);
* ``LR_LABEL_WIDTH`` and ``LR_WIDTH`` (CSS widths of the description and of the whole
  slider, for a long label) and ``LR_READOUT`` (the readout's format).

A chapter whose edge depends on more than its preset overrides :meth:`LrSlider.lr_edge_of`;
one whose label does overrides :meth:`LrSlider.lr_label`. On a preset switch the app
moves the range (:meth:`slider_range`) and relabels the slider (:meth:`refresh_lr_label`).

Example:
    >>> from types import SimpleNamespace
    >>> class Demo(LrSlider):
    ...     LR_SPAN = (0.1, 3.0)
    ...     LR_EDGE_LABEL = "η (edge {edge:.2g})"
    >>> Demo().slider_range("lr", SimpleNamespace(lr_edge=0.808))
    (0.0808, 2.42)
    >>> Demo().slider_range("lr", SimpleNamespace(lr_edge=None)), Demo().lr_label(None)
    ((0.01, 1.0), 'step size η')
"""

from __future__ import annotations

from typing import ClassVar

from eoslab.ui.base import slider
from eoslab.ui.edge import edge_of, lr_range_around_edge

__all__ = ["LrSlider", "span_range"]


def span_range(edge: float | None, span: tuple[float, float] | None,
               fallback: tuple[float, float]) -> tuple[float, float]:
    """``span`` times ``edge`` (3 significant digits), or ``fallback`` without either.

    >>> span_range(2.0, (0.001, 0.5), (0.01, 5.0)), span_range(None, (0.1, 3.0), (0.01, 5.0))
    ((0.002, 1.0), (0.01, 5.0))
    """
    if edge is None or span is None:
        return (float(fallback[0]), float(fallback[1]))
    below, above = span
    return lr_range_around_edge(edge, below=below, above=above)


class LrSlider:
    """The ``lr`` slider's declarations and behaviour (see the module docs).

    Needs ``preset`` (and, once built, ``sliders``) on the app; ``LIVE`` apps' slider
    updates while it is dragged.
    """

    LR_RANGE: ClassVar[tuple[float, float, float]] = (0.01, 1.0, 0.01)
    LR_SPAN: ClassVar[tuple[float, float] | None] = None
    LR_LABEL: ClassVar[str] = "step size η"
    LR_EDGE_LABEL: ClassVar[str | None] = None
    LR_LABEL_WIDTH: ClassVar[str | None] = None
    LR_WIDTH: ClassVar[str | None] = None
    LR_READOUT: ClassVar[str] = ".3g"

    def lr_edge_of(self, preset) -> float | None:
        """The edge step size the range is scaled by: the preset's ``lr_edge``, or ``None``."""
        return edge_of(preset)

    def lr_edge_name(self, preset) -> str:
        """How the edge is computed, as the marker names it: ``preset.lr_edge_formula``."""
        return getattr(preset, "lr_edge_formula", "2/λ₀")

    def lr_label(self, preset) -> str:
        """The description under ``preset``: ``LR_EDGE_LABEL`` of its edge, else ``LR_LABEL``."""
        edge = edge_of(preset)
        if edge is None or self.LR_EDGE_LABEL is None:
            return self.LR_LABEL
        return self.LR_EDGE_LABEL.format(edge=edge)

    def lr_slider_range(self, preset) -> tuple[float, float]:
        """``LR_SPAN`` times :meth:`lr_edge_of` ``preset``, else ``LR_RANGE[:2]``."""
        edge = self.lr_edge_of(preset) if self.LR_SPAN is not None else None
        return span_range(edge, self.LR_SPAN, self.LR_RANGE[:2])

    def slider_range(self, name: str, preset) -> tuple[float, float] | None:
        """The ``(min, max)`` of slider ``name`` under ``preset``; ``None`` keeps it.

        ``"lr"``: :meth:`lr_slider_range` where ``LR_SPAN`` is set.  A chapter with more
        ranged sliders handles their names and returns ``super().slider_range(...)``.
        """
        if name == "lr" and self.LR_SPAN is not None:
            return self.lr_slider_range(preset)
        return None

    def make_lr_slider(self) -> dict:
        """The step-size slider (``eoslab-lr-slider``) as ``{"lr": widget}``, or ``{}``."""
        low, high = self.lr_slider_range(self.preset)
        w = slider(self.lr_label(self.preset), self.preset["lr"], low, high, self.LR_RANGE[2],
                   "eoslab-lr-slider", continuous=getattr(self, "LIVE", False),
                   readout_format=self.LR_READOUT)
        if self.LR_LABEL_WIDTH is not None:
            w.style.description_width = self.LR_LABEL_WIDTH
        if self.LR_WIDTH is not None:
            w.layout.width = self.LR_WIDTH
        return {"lr": w}

    def refresh_lr_label(self) -> None:
        """Relabel the ``lr`` slider for the current preset (after a preset switch)."""
        w = getattr(self, "sliders", {}).get("lr")
        if w is not None:
            w.description = self.lr_label(self.preset)
