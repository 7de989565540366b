"""Chapter 01's app: GD and heavy ball on a 2-D quadratic the reader rotates and stretches.

The experiment (:mod:`eoslab.chapters.ch01_quadratic_stability.experiment`) is exact and
instant, so the app is live: each slider move recomputes the trajectory in the calling
thread and swaps the chart's datasets in place; the layout is drawn once per preset.

Example:
    >>> app = QuadraticApp("quick", chart_mode="svg")  # in a notebook: display ``app``
    >>> app.set(lr=1.3)  # past 2/lambda_max = 1
    >>> app.result["status"], app.controls.status.value[:16]
    ('diverged', 'diverged at step')
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np

from eoslab.chapters.ch01_quadratic_stability import charts
from eoslab.chapters.ch01_quadratic_stability.experiment import LR_MAX, experiment
from eoslab.chapters.ch01_quadratic_stability.quadratic import Quadratic, stability_threshold
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import slider

__all__ = ["QuadraticApp"]


class QuadraticApp(ChapterApp):
    """Sliders for eta, beta, the rotation and the two curvatures; a live chart; a status line.

    CSS classes: ``eoslab-app``, ``eoslab-preset``, ``eoslab-lr-slider``,
    ``eoslab-momentum-slider``, ``eoslab-angle-slider``, ``eoslab-lambda1-slider``,
    ``eoslab-lambda2-slider``, ``eoslab-status``, ``eoslab-chart``.

    Attributes:
        lr, momentum: the step-size and momentum sliders (``sliders["lr"]``, ...).
        quadratic: the :class:`~eoslab.chapters.ch01_quadratic_stability.quadratic.Quadratic`
            the sliders describe.
    """

    CHAPTER = "01"
    KIND = "quadratic"
    LR_RANGE = (0.01, LR_MAX, 0.01)
    # 0.01x to 3x the edge; it is 1 on every preset (QuadraticPreset.lr_edge), so this is
    # LR_RANGE and the stable side is the first third of the slider
    LR_SPAN = (0.01, 3.0)
    LIVE = True
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        p = self.preset
        return {
            "momentum": slider("momentum β", p.momentum, 0.0, 0.95, 0.05,
                               "eoslab-momentum-slider"),
            "angle": slider("rotation (degrees)", p.angle, -90.0, 90.0, 1.0,
                            "eoslab-angle-slider"),
            "lambda1": slider("curvature λ₁", p.lambda1, 0.1, 4.0, 0.05,
                              "eoslab-lambda1-slider"),
            "lambda2": slider("curvature λ₂", p.lambda2, 0.1, 4.0, 0.05,
                              "eoslab-lambda2-slider"),
        }

    def layout(self, settings: dict):
        view = 1.6 * float(np.max(np.abs(self.preset.start)))
        return charts.quadratic_layout(view, LR_MAX)

    def layout_signature(self, settings: dict):
        return self.preset  # a new figure per preset, as its start sets the view

    lr_edge_formula = "(2+2β)/λ_max"

    @property
    def lr_edge(self) -> float:
        """The edge of the current settings, :math:`(2+2\\beta)/\\lambda_{\\max}` (marked)."""
        s = self.settings()
        return stability_threshold(max(s["lambda1"], s["lambda2"]), s["momentum"])

    def describe(self, result: dict) -> str:
        return html.escape(result["verdict"])

    def describe_diverged(self, result: dict) -> str:
        if "verdict" not in result:
            return super().describe_diverged(result)
        return html.escape(result["verdict"])  # names (2+2beta)/lambda_max, not 2/eta

    @property
    def lr(self) -> widgets.FloatSlider:
        return self.sliders["lr"]

    @property
    def momentum(self) -> widgets.FloatSlider:
        return self.sliders["momentum"]

    @property
    def quadratic(self) -> Quadratic:
        s = self.settings()
        return Quadratic((s["lambda1"], s["lambda2"]), angle=s["angle"])
