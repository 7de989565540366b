"""Chapter 16's app: SAM's lower sharpness, its own edge of stability, and m-sharpness.

A thin :class:`~eoslab.ui.app.ChapterApp` over
:func:`eoslab.chapters.ch16_sam.experiment.experiment`: full-batch GD and SAM runs stream
live, then the minibatch m-sharpness runs fill in their bars. The step-size slider spans
``LR_SPAN`` times the preset's ``lr_edge`` (GD's edge :math:`2/\\lambda_0` at the
initialisation), named in its description.
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
    LR_RANGE = (0.02, 4.0, 0.01)  # the step; the range comes from the edge (LR_SPAN)
    LR_SPAN = (0.1, 5.0)  # 0.1x to 5x the edge 2/lambda_0: stable, at the edge, diverged
    LR_LABEL = "step size η"
    LR_EDGE_LABEL = "η (edge 2/λ₀ = {edge:.2g})"
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        return {"rho": slider("SAM radius ρ", self.preset.rho, 0.0, 0.3, 0.01,
                              "eoslab-rho-slider", continuous=False)}

    def layout(self, settings: dict):
        return sam_layout()

    def total_work(self, settings: dict) -> int:
        return total_steps(self.preset)

    def describe(self, result: dict) -> str:
        lines = [html.escape(STATES.get(result.get("state"), "finished"))]
        for key, rows in result["runs"].items():
            rho = float(key)
            gd = edge_ratio(rows, "gd_edge")
            own = edge_ratio(rows, "sam_edge")
            text = f"{run_name(rho)}: S / (2/η) = {gd:.2f}"
            if rho:
                text += f", S / SAM-edge = {own:.2f}"
            lines.append(html.escape(text + " (median, second half)"))
        m = ", ".join(f"{'SGD' if r['m'] == 0 else 'm = ' + str(r['m'])}: "
                      f"S {r['sharpness']:.3g}, test loss {r['test_loss']:.3g}, "
                      f"test acc {r['test_acc']:.3f}" for r in result["m_runs"])
        if m:
            lines.append(html.escape(f"minibatch runs (final): {m}"))
        return "<br>".join(lines)


STATES = {"oscillating": "GD at its edge (S ≈ 2/η, loss oscillating):",
          "training": "training (loss falling, below the edge):",
          "converged": "converged:", "not-training": "not training (loss flat):"}
