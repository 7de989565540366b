"""Chapter 02's app: several step sizes trained live, sharpness rising to 2/eta and hovering.

A thin :class:`~eoslab.ui.app.ChapterApp` over
:func:`eoslab.chapters.ch02_edge_of_stability.experiment.experiment` (Cohen et al., ICLR 2021,
arXiv 2103.00065). The step-size slider sets the largest eta; the preset's ``lr_ratios``
give the others (default: eta, 2/3 eta, 1/2 eta).

Usage (in a notebook)::

    app = EdgeOfStabilityApp("quick", store=False)
    app.set(lr=0.3, momentum=0.5)     # trains again in the background
    app
"""

from __future__ import annotations

import html

from eoslab.chapters.ch02_edge_of_stability import charts
from eoslab.chapters.ch02_edge_of_stability.experiment import edge_band, eos_configs, experiment
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import describe_divergence, slider

__all__ = ["EdgeOfStabilityApp", "edge_band", "eos_configs"]


def _run_line(run: dict, momentum: float) -> str:
    """One status line: a step size's summary, its edge band or its divergence in words."""
    lr = run["lr"]
    if run["status"] == "diverged":
        step, loss = run["diverged_at"]
        text = describe_divergence(step, loss, lr, run["last_sharpness"], momentum)
    elif run["status"] == "stopped":
        text = f"stopped at step {run['steps_done']}"
    else:
        text = run["text"]
        if run["band"] is not None:
            low, median, high = run["band"]
            text += (f"; sharpness / edge over the second half: {low:.2f} to {high:.2f} "
                     f"(median {median:.2f})")
    if run.get("from_store"):
        text += " (run from the store)"
    return f"<b>{html.escape(charts.run_label(lr, momentum))}</b>: {html.escape(text)}"


class EdgeOfStabilityApp(ChapterApp):
    """Step size and momentum sliders, Run/Stop, progress, status and the live EoS figure.

    CSS classes: ``eoslab-app``, ``eoslab-preset``, ``eoslab-lr-slider``,
    ``eoslab-momentum-slider``, ``eoslab-run``, ``eoslab-stop``, ``eoslab-progress``,
    ``eoslab-status``, ``eoslab-chart``. The chart's titles name ``2/eta`` without momentum
    and ``(2+2beta)/eta`` with it (:meth:`layout_signature`).

    Attributes:
        lr, momentum: the two sliders (``sliders["lr"]``, ``sliders["momentum"]``).
    """

    CHAPTER = "02"
    KIND = "ch02_edge_of_stability"
    LR_RANGE = (0.01, 2.5, 0.01)
    LR_LABEL = "largest step size eta"
    experiment = staticmethod(experiment)

    @property
    def lr(self):
        return self.sliders["lr"]

    @property
    def momentum(self):
        return self.sliders["momentum"]

    def make_sliders(self) -> dict:
        return {"momentum": slider("momentum beta", self.preset.momentum, 0.0, 0.9, 0.05,
                                   "eoslab-momentum-slider", continuous=False)}

    def configs(self) -> list:
        """The :class:`~eoslab.core.config.TrainConfig` of each step size shown."""
        settings = self.settings()
        return eos_configs(self.preset, settings["lr"], settings["momentum"])

    def layout(self, settings: dict):
        return charts.eos_chart({}, settings["momentum"])

    def layout_signature(self, settings: dict) -> bool:
        return bool(settings["momentum"])

    def total_work(self, settings: dict) -> int:
        return self.preset.steps * len(self.preset.lr_ratios)

    def describe(self, result: dict) -> str:
        return "<br>".join(_run_line(run, result["momentum"]) for run in result["runs"])
