"""Chapter 15's app: SGD iterates on the rim of a basin, their average (SWA) near its centre.

A thin :class:`~eoslab.ui.app.ChapterApp` over
:func:`eoslab.chapters.ch15_swa.experiment.experiment`: the training curves stream live,
then the plane, the slices and the comparison fill in.
"""

from __future__ import annotations

import html

from eoslab.chapters.ch15_swa.charts import swa_layout
from eoslab.chapters.ch15_swa.experiment import experiment
from eoslab.ui.app import ChapterApp

__all__ = ["SWAApp"]


class SWAApp(ChapterApp):
    """Step-size slider (constant SGD step, averaged from ``swa.start``), Run/Stop, four panels."""

    CHAPTER = "15"
    KIND = "ch15_swa"
    LR_RANGE = (0.01, 3.0, 0.01)
    experiment = staticmethod(experiment)

    def layout(self, settings: dict):
        return swa_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.sgd.steps

    def describe(self, result: dict) -> str:
        s, g, it = result["swa"], result["sgd"], result["iterates"]
        sl = result["slices"]
        return html.escape(
            f"test acc: SWA {s['test_acc']:.4f}, last SGD iterate {g['test_acc']:.4f}, mean "
            f"of the {it['n']} iterates {it['test_acc']:.4f}; train loss SWA "
            f"{s['train_loss']:.3g} vs iterates {it['train_loss']:.3g}; sharpness SWA "
            f"{s['sharpness']:.3g} vs SGD {g['sharpness']:.3g}; flat width (loss rise "
            f"{sl['rise']:g}) SWA {sl['width_swa']:.2f} vs SGD {sl['width_sgd']:.2f}")
