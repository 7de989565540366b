"""Chapter 15's app: SGD iterates on the rim of a basin, their average (SWA) near its centre.

A thin :class:`~eoslab.ui.app.ChapterApp` over
:func:`eoslab.chapters.ch15_swa.experiment.experiment`: the training curves stream live,
then the plane, the slices and the comparison fill in. The step-size slider spans
``LR_SPAN`` times the preset's ``lr_edge``, heavy-ball SGD's threshold
:math:`(2+2\\beta)/\\lambda_0` at the initialisation, named in its description.
"""

from __future__ import annotations

import html

from eoslab.chapters.ch15_swa.charts import swa_layout
from eoslab.chapters.ch15_swa.experiment import experiment, run_state
from eoslab.ui.app import ChapterApp

__all__ = ["SWAApp"]


_WORDS = {"oscillating": "SGD bouncing (oscillating) in the basin",
          "converged": "SGD converged", "training": "SGD still training",
          "not-training": "SGD not training (loss flat)"}


class SWAApp(ChapterApp):
    """Step-size slider (constant SGD step, averaged from ``swa.start``), Run/Stop, four panels."""

    CHAPTER = "15"
    KIND = "ch15_swa"
    LR_RANGE = (0.01, 3.0, 0.001)  # the step; the range comes from the edge (LR_SPAN)
    LR_SPAN = (0.01, 2.0)  # 0.01x to 2x the edge (2+2beta)/lambda_0
    LR_LABEL = "constant step size η"
    LR_EDGE_LABEL = "η (edge {edge:.3g})"
    experiment = staticmethod(experiment)

    def layout(self, settings: dict):
        return swa_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.sgd.steps

    def describe(self, result: dict) -> str:
        s, g, it = result["swa"], result["sgd"], result["iterates"]
        sl, d = result["slices"], result.get("decayed", {})
        if d.get("status") == "finished":
            base = (f"; SGD with decaying η: test acc {d['test_acc']:.4f}, sharpness "
                    f"{d['sharpness']:.3g}")
        else:
            base = f"; SGD with decaying η diverged at step {d.get('step')}" if d else ""
        return html.escape(
            f"{_WORDS.get(run_state(result['history']), 'finished')}; "
            f"test acc: SWA {s['test_acc']:.4f}, last SGD iterate {g['test_acc']:.4f}, mean "
            f"of the {it['n']} iterates {it['test_acc']:.4f}{base}; train loss SWA "
            f"{s['train_loss']:.3g} vs iterates {it['train_loss']:.3g}; sharpness SWA "
            f"{s['sharpness']:.3g} vs SGD {g['sharpness']:.3g}; flat width (loss rise "
            f"{sl['rise']:g}) SWA {sl['width_swa']:.2f} vs SGD {sl['width_sgd']:.2f}")
