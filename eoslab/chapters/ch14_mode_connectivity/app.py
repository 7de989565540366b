"""Chapter 14's app: the straight line between two minima, a trained curve, the plane, FGE.

A thin :class:`~eoslab.ui.app.ChapterApp` over
:func:`eoslab.chapters.ch14_mode_connectivity.experiment.experiment`: the loss of the
training stages streams live, then the path, plane and ensemble panels fill in.

The step-size slider is placed by the preset's ``lr_edge``: heavy-ball SGD's threshold
:math:`(2+2\\beta)/\\lambda_0` (momentum :math:`\\beta = 0.9`, :math:`\\lambda_0` the top
Hessian eigenvalue of the initial net). It spans ``LR_SPAN`` = 0.001 to 0.5 times that edge,
all below it: with cross-entropy the sharpness grows many times over as the net fits the
data, FGE runs at 5 times the slider's step size, and minibatches add noise, so the
pipeline diverges from about a tenth of the initial edge (at the quick preset, from
η = 1 in FGE and from η = 2 in the first stage).
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
    LR_RANGE = (0.01, 5.0, 0.001)  # the step; the range comes from the edge (LR_SPAN)
    LR_SPAN = (0.001, 0.5)  # 0.001x to 0.5x the edge (2+2beta)/lambda_0, see the module
    LR_LABEL = "step size η"
    LR_EDGE_LABEL = "η (edge {edge:.3g})"  # only the value: the notebook states the formula
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
        state = {"converged": "w1 and w2 converged", "training": "w1 and w2 still training",
                 "not-training": "w1 or w2 not training (loss flat)"}
        ends = result["line"]["test_acc"][0], result["line"]["test_acc"][-1]
        return html.escape(
            f"{state.get(result.get('state'), 'finished')}; "
            f"test accuracy at the ends {min(ends):.3f}, lowest on the "
            f"{result['kind']} curve {min(result['curve']['test_acc']):.3f}, on the straight "
            f"line {min(result['line']['test_acc']):.3f}; "
            f"barrier (loss above the chord): straight line {result['barrier_line']:.3g}, "
            f"{result['kind']} curve {curve:.3g} ({lower}); "
            f"FGE: {fge['k']} snapshots, mean single test acc {single:.4f}, ensemble "
            f"{fge['ensemble_acc']:.4f}; test NLL single {result['fge'][0]['single_loss']:.3g}"
            f" -> ensemble {fge['ensemble_loss']:.3g}")
