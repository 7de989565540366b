"""Chapter 19's app: Lookahead's fast zig-zag and slow path on a 2-D quadratic.

The experiment (:mod:`eoslab.chapters.ch19_lookahead.experiment`) is exact and cheap on
two numbers, so the app is live, as chapter 01's: a slider move recomputes the paths in
the calling thread and swaps the chart's datasets in place. The status line gives the
verdict and, below it, the noise floors, which the experiment measures once per
``(alpha, k)`` (those two sliders act on release).

Example:
    >>> app = LookaheadApp("quick", chart_mode="svg")  # in a notebook: display ``app``
    >>> app.set(lr=2.5)  # past eta* = 2.25
    >>> app.result["status"], app.result["inner_diverged"] is not None
    ('diverged', True)
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from eoslab.chapters.ch01_quadratic_stability.quadratic import Quadratic
from eoslab.chapters.ch19_lookahead.charts import lookahead_layout
from eoslab.chapters.ch19_lookahead.experiment import LR_MAX, experiment, floor_text
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import slider

__all__ = ["LookaheadApp"]


class LookaheadApp(ChapterApp):
    """Sliders for eta, alpha, k and gradient noise; the live figure; a status line.

    CSS classes: ``eoslab-app``, ``eoslab-preset``, ``eoslab-lr-slider``,
    ``eoslab-alpha-slider``, ``eoslab-k-slider``, ``eoslab-noise-slider``,
    ``eoslab-status``, ``eoslab-chart``.

    Attributes:
        quadratic: the preset's
            :class:`~eoslab.chapters.ch01_quadratic_stability.quadratic.Quadratic`.
    """

    CHAPTER = "19"
    KIND = "lookahead"
    LR_RANGE = (0.05, LR_MAX, 0.01)
    # 0.025x to 1.5x GD's edge 2/lambda_max (2), i.e. LR_RANGE: GD alone is stable on the
    # first two thirds, Lookahead (alpha = 0.5, k = 5) up to eta* = 2.25, past it neither
    LR_SPAN = (0.025, 1.5)
    LIVE = True
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        p = self.preset
        k = widgets.IntSlider(value=p.k, min=1, max=10, description="inner steps k",
                              continuous_update=False, layout=widgets.Layout(width="480px"),
                              style={"description_width": "160px"})
        k.add_class("eoslab-k-slider")
        return {
            "alpha": slider("slow step α", p.alpha, 0.05, 1.0, 0.05, "eoslab-alpha-slider",
                            continuous=False),
            "k": k,
            "noise": slider("gradient noise σ", p.noise, 0.0, 0.5, 0.01,
                            "eoslab-noise-slider"),
        }

    def layout(self, settings: dict):
        return lookahead_layout(max_lr=LR_MAX)

    def describe(self, result: dict) -> str:
        if "verdict" not in result:
            return ""
        return "<br>".join(html.escape(line)
                           for line in (result["verdict"], floor_text(result["floors"])))

    def describe_diverged(self, result: dict) -> str:
        if "verdict" not in result:
            return super().describe_diverged(result)
        return self.describe(result)  # says which method diverged, and GD alone's fate

    @property
    def quadratic(self) -> Quadratic:
        return Quadratic(self.preset.eigenvalues, angle=self.preset.angle)
