"""Chapter 01's app: GD and heavy ball on a 2-D quadratic the reader rotates and stretches.

Everything is exact and cheap (:mod:`eoslab.chapters.ch01_quadratic_stability.quadratic`), so each slider move recomputes
the trajectory synchronously and swaps the chart's datasets in place; the layout is
built once per preset.
"""

from __future__ import annotations

import time

import ipywidgets as widgets
import numpy as np

from eoslab.chapters.ch01_quadratic_stability.quadratic import (
    Quadratic,
    convergence_rate,
    simulate,
    stability_threshold,
)
from eoslab.chapters.presets import Preset, get_preset, preset_for
from eoslab.ui import plots
from eoslab.ui.base import LiveChart, preset_dropdown, slider

__all__ = ["QuadraticApp", "quadratic_verdict"]

CHAPTER = "01"


def quadratic_verdict(quadratic: Quadratic, lr: float, momentum: float = 0.0,
                      diverged_at: int | None = None, loss: float | None = None) -> str:
    """The status sentence: which side of the threshold ``lr`` is on, and what happens.

    >>> quadratic_verdict(Quadratic((2.0, 0.5)), 0.8)
    'converges: eta = 0.8 < 2/lambda_max = 1; the error shrinks by 0.6 per step'
    """
    rate = convergence_rate(lr, quadratic.eigenvalues, momentum)
    name = "(2+2beta)/lambda_max" if momentum else "2/lambda_max"
    if quadratic.lambda_max <= 0:
        return "flat: lambda_max = 0, nothing moves"
    edge = stability_threshold(quadratic.lambda_max, momentum)
    if rate < 1:
        return (f"converges: eta = {lr:.3g} < {name} = {edge:.3g}; the error shrinks by "
                f"{rate:.3g} per step")
    if rate == 1 or diverged_at is None:
        return (f"does not converge: eta = {lr:.3g} >= {name} = {edge:.3g}; the error grows "
                f"by {rate:.3g} per step")
    return (f"diverged at step {diverged_at}: loss {loss:.2g} — eta = {lr:.3g} > {name} = "
            f"{edge:.3g} is too large for this curvature (the error grows by {rate:.3g} "
            "per step)")



def _resolve(preset) -> Preset:
    """A :class:`Preset` as given, a preset name, or ``None`` for :func:`preset_for`."""
    if isinstance(preset, Preset):
        return preset
    return get_preset(CHAPTER, preset) if preset else preset_for(CHAPTER)


class QuadraticApp:
    """Sliders for eta, beta, the rotation and the two curvatures; a live chart; a status line.

    CSS classes: ``eoslab-preset``, ``eoslab-lr-slider``, ``eoslab-momentum-slider``,
    ``eoslab-angle-slider``, ``eoslab-lambda1-slider``, ``eoslab-lambda2-slider``,
    ``eoslab-status``, ``eoslab-chart``.

    Attributes:
        trajectory: the current :class:`~eoslab.chapters.ch01_quadratic_stability.quadratic.Trajectory`.
        last_update_seconds: kernel time of the last slider-to-chart update.
    """

    def __init__(self, preset: str | None = None, chart_mode: str = "auto"):
        self.preset = _resolve(preset)
        p = self.preset
        self.preset_menu = preset_dropdown(CHAPTER, p.name)
        self.lr = slider("step size eta", p["lr"], 0.01, 3.0, 0.01, "eoslab-lr-slider")
        self.momentum = slider("momentum beta", p["momentum"], 0.0, 0.95, 0.05,
                               "eoslab-momentum-slider")
        self.angle = slider("rotation (degrees)", p["angle"], -90.0, 90.0, 1.0,
                            "eoslab-angle-slider")
        self.lambda1 = slider("lambda 1", p["eigenvalues"][0], 0.1, 4.0, 0.05,
                              "eoslab-lambda1-slider")
        self.lambda2 = slider("lambda 2", p["eigenvalues"][1], 0.1, 4.0, 0.05,
                              "eoslab-lambda2-slider")
        self.status = widgets.HTML()
        self.status.add_class("eoslab-status")
        self.last_update_seconds = 0.0
        self._compute()
        self.chart = LiveChart(self._figure(), mode=chart_mode)
        self._say()
        for w in (self.lr, self.momentum, self.angle, self.lambda1, self.lambda2):
            w.observe(self._on_change, names="value")
        self.preset_menu.observe(self._on_preset, names="value")
        controls = widgets.VBox([self.preset_menu, self.lr, self.momentum, self.angle,
                                 self.lambda1, self.lambda2])
        self.widget = widgets.VBox([controls, self.status, self.chart.widget])
        self.widget.add_class("eoslab-app")

    # -- model -------------------------------------------------------------------------
    @property
    def quadratic(self) -> Quadratic:
        return Quadratic((self.lambda1.value, self.lambda2.value), angle=self.angle.value)

    @property
    def view(self) -> float:
        return 1.6 * float(np.max(np.abs(self.preset["start"])))

    def _compute(self) -> None:
        self.trajectory = simulate(self.quadratic, self.preset["start"], self.lr.value,
                                   self.preset["steps"], momentum=self.momentum.value)

    def _figure(self):
        return plots.quadratic_chart(self.quadratic, self.trajectory, view=self.view,
                                     max_lr=self.lr.max)

    def _say(self) -> None:
        t = self.trajectory
        self.status.value = quadratic_verdict(
            self.quadratic, t.lr, t.momentum, t.diverged_at,
            float(t.losses[-1]) if t.diverged_at is not None else None)

    # -- events ------------------------------------------------------------------------
    def update(self) -> None:
        """Recompute from the sliders and refresh the chart's data in place."""
        start = time.perf_counter()
        self._compute()
        self.chart.update(plots.quadratic_data(self.quadratic, self.trajectory, self.lr.max))
        self._say()
        self.last_update_seconds = time.perf_counter() - start

    def _on_change(self, _change=None) -> None:
        self.update()

    def _on_preset(self, change) -> None:
        self.preset = get_preset(CHAPTER, change["new"])
        p = self.preset
        with self.widget.hold_sync():
            for w in (self.lr, self.momentum, self.angle, self.lambda1, self.lambda2):
                w.unobserve(self._on_change, names="value")
            self.lr.value, self.momentum.value, self.angle.value = p["lr"], p["momentum"], p["angle"]
            self.lambda1.value, self.lambda2.value = p["eigenvalues"]
            for w in (self.lr, self.momentum, self.angle, self.lambda1, self.lambda2):
                w.observe(self._on_change, names="value")
        self._compute()
        self.chart.show(self._figure())
        self._say()

    def set(self, **values) -> None:
        """Move sliders by name (``lr``, ``momentum``, ``angle``, ``lambda1``, ``lambda2``)."""
        for name, value in values.items():
            w = getattr(self, name, None)
            if not isinstance(w, widgets.FloatSlider):
                raise ValueError(f"unknown control {name!r}; allowed: lr, momentum, angle, "
                                 "lambda1, lambda2")
            w.value = value

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
