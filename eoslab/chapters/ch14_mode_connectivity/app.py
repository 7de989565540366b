"""Chapter 14's app: the straight line between two minima, a trained curve, the plane, FGE.

A thin :class:`~eoslab.ui.app.ChapterApp` over
:func:`eoslab.chapters.ch14_mode_connectivity.experiment.experiment`: the loss of the
training stages streams live, then the path, plane and ensemble panels fill in.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from eoslab.chapters.ch14_mode_connectivity.charts import connectivity_layout
from eoslab.chapters.ch14_mode_connectivity.experiment import experiment, total_steps
from eoslab.ui.app import ChapterApp

__all__ = ["ModeConnectivityApp"]


class ModeConnectivityApp(ChapterApp):
    """Step size and curve family; Run/Stop; training, path, plane and FGE panels.

    CSS classes: those of :class:`~eoslab.ui.app.ChapterApp` plus ``eoslab-kind`` (the
    Bézier / polychain toggle, setting ``kind``).
    """

    CHAPTER = "14"
    KIND = "ch14_mode_connectivity"
    LR_RANGE = (0.01, 5.0, 0.01)
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        kind = widgets.ToggleButtons(options=["bezier", "polychain"], value=self.preset.kind,
                                     description="curve")
        kind.add_class("eoslab-kind")
        return {"kind": kind}

    def layout(self, settings: dict):
        return connectivity_layout()

    def total_work(self, settings: dict) -> int:
        return total_steps(self.preset)

    def describe(self, result: dict) -> str:
        fge = result["fge"][-1]
        single = sum(r["single_acc"] for r in result["fge"]) / len(result["fge"])
        curve = result["barrier_curve"]
        lower = (f"{result['barrier_line'] / curve:.0f}x lower" if curve > 1e-6
                 else "no barrier: the curve stays below the chord")
        return html.escape(
            f"barrier (loss above the chord): straight line {result['barrier_line']:.3g}, "
            f"{result['kind']} curve {curve:.3g} ({lower}); "
            f"FGE: {fge['k']} snapshots, mean single test acc {single:.4f}, ensemble "
            f"{fge['ensemble_acc']:.4f}; test NLL single {result['fge'][0]['single_loss']:.3g}"
            f" -> ensemble {fge['ensemble_loss']:.3g}")
