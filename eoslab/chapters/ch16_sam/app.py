"""Chapter 16's app: SAM's lower sharpness, its own edge of stability, and m-sharpness.

A thin :class:`~eoslab.ui.app.ChapterApp` over
:func:`eoslab.chapters.ch16_sam.experiment.experiment`: full-batch GD and SAM runs stream
live, then the minibatch m-sharpness runs fill in their bars.
"""

from __future__ import annotations

import html

from eoslab.chapters.ch16_sam.charts import run_name, sam_layout
from eoslab.chapters.ch16_sam.experiment import edge_ratio, experiment, total_steps
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import slider

__all__ = ["SAMApp"]


class SAMApp(ChapterApp):
    """Step size and radius sliders (``eoslab-lr-slider``, ``eoslab-rho-slider``), four panels."""

    CHAPTER = "16"
    KIND = "ch16_sam"
    LR_RANGE = (0.02, 4.0, 0.02)
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        return {"rho": slider("SAM radius rho", self.preset.rho, 0.0, 0.3, 0.01,
                              "eoslab-rho-slider", continuous=False)}

    def layout(self, settings: dict):
        return sam_layout()

    def total_work(self, settings: dict) -> int:
        return total_steps(self.preset)

    def describe(self, result: dict) -> str:
        lines = []
        for key, rows in result["runs"].items():
            rho = float(key)
            gd = edge_ratio(rows, "gd_edge")
            own = edge_ratio(rows, "sam_edge")
            text = f"{run_name(rho)}: sharpness / (2/eta) = {gd:.2f}"
            if rho:
                text += f", sharpness / SAM-edge = {own:.2f}"
            lines.append(html.escape(text + " (median, second half)"))
        m = ", ".join(f"{'SGD' if r['m'] == 0 else 'm = ' + str(r['m'])}: "
                      f"{r['sharpness']:.3g} (test acc {r['test_acc']:.3f})"
                      for r in result["m_runs"])
        lines.append(html.escape(f"minibatch runs, final sharpness: {m}"))
        return "<br>".join(lines)
