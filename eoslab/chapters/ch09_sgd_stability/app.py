"""Chapter 09's app: which minima SGD can stay at, and its escape from the others.

Wu and Su (ICML 2023, arXiv 2305.17490); Wu, Ma, E (NeurIPS 2018).  The step-size and
batch-size sliders and Run drive
:func:`~eoslab.chapters.ch09_sgd_stability.experiment.experiment`; the chart shows the
stability ratios at GD's minimum against the batch size, the loss of SGD and of GD started
at that minimum, and the ratios at the minimum and where SGD ends.  The batch slider's
maximum follows the preset's ``n_train``.

Usage (in a notebook)::

    from eoslab.chapters.ch09_sgd_stability.app import SgdStabilityApp
    app = SgdStabilityApp()  # preset: preset_for("09")
    app.run()  # trains in the background
    app
"""

from __future__ import annotations

import html

import altair as alt
import ipywidgets as widgets

from eoslab.chapters.ch09_sgd_stability.experiment import experiment
from eoslab.ui.app import ChapterApp

__all__ = ["SgdStabilityApp", "sgd_stability_layout"]


def sgd_stability_layout():
    """Stability ratios vs batch size | loss of SGD and GD from the minimum | before/after."""
    crit = alt.Color("criterion:N", title="criterion (<= 1: SGD may stay)")
    one = alt.Chart(alt.Data(values=[{"v": 1.0}])).mark_rule(color="black",
                                                            strokeDash=[6, 4]).encode(y="v:Q")
    ratios = alt.Chart(alt.Data(name="ratios")).mark_line(point=True).encode(
        x=alt.X("batch_size:Q", title="batch size B", scale=alt.Scale(type="log", base=2)),
        y=alt.Y("ratio:Q", title="ratio at GD's minimum", scale=alt.Scale(type="log")),
        color=crit).transform_filter("datum.ratio > 0")
    chosen = alt.Chart(alt.Data(name="chosen")).mark_rule(color="#888").encode(x="batch_size:Q")
    left = alt.layer(ratios, one, chosen).properties(
        title="which batch sizes can stay at GD's minimum", width=300, height=230)
    loss = alt.Chart(alt.Data(name="loss")).mark_line().encode(
        x=alt.X("step:Q", title="step from the minimum"),
        y=alt.Y("loss:Q", title="train loss", scale=alt.Scale(type="log")),
        color=alt.Color("run:N", title="run")).transform_filter("datum.loss > 0").properties(
        title="started at GD's minimum: stay or escape", width=300, height=230)
    curv = alt.Chart(alt.Data(name="curvature")).mark_point(filled=True, size=90).encode(
        x=alt.X("criterion:N", title=None, axis=alt.Axis(labelAngle=-30, labelLimit=160)),
        y=alt.Y("ratio:Q", title="ratio at the chosen B", scale=alt.Scale(type="log")),
        shape=alt.Shape("point:N", title="point"), color=alt.Color("point:N", title="point"))
    right = alt.layer(curv, one).properties(title="the minimum SGD leaves vs the one it finds",
                                            width=220, height=230)
    return alt.hconcat(left, loss, right).resolve_scale(color="independent").properties(
        datasets={"ratios": [], "chosen": [], "loss": [], "curvature": []})


class SgdStabilityApp(ChapterApp):
    """Step size and batch size of the SGD started at GD's minimum; Run/Stop; three panels.

    CSS: ``eoslab-lr-slider`` (step size), ``eoslab-batch-slider`` (batch size, up to the
    preset's ``n_train``).
    """

    CHAPTER = "09"
    KIND = "ch09_sgd_stability"
    LR_RANGE = (0.01, 4.0, 0.01)
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        batch = widgets.IntSlider(value=self.preset.batch_size, min=1,
                                  max=self.preset.net.n_train, description="batch size B",
                                  continuous_update=False, layout=widgets.Layout(width="480px"),
                                  style={"description_width": "160px"})
        batch.add_class("eoslab-batch-slider")
        return {"batch_size": batch}

    def slider_range(self, name: str, preset) -> tuple[float, float] | None:
        return (1, preset.net.n_train) if name == "batch_size" else None

    def layout(self, settings: dict):
        return sgd_stability_layout()

    def total_work(self, settings: dict) -> int:
        return 2 * self.preset.steps

    def describe(self, result: dict) -> str:
        r, s = result["at_min"], result["summary"]
        lr, b = result["lr"], result["batch_size"]
        text = (f"At GD's minimum: eta lambda_max / 2 = {r['gd_ratio']:.2f} (GD "
                f"{'can' if r['gd_ratio'] <= 1 else 'cannot'} stay); with B = {b}, "
                f"eta c_B Tr H / 2 = {r['trace_ratio']:.2f} and the exact mean-square growth "
                f"per step is {r['ms_rate']:.3f} (SGD "
                f"{'can' if r['ms_rate'] <= 1 + 1e-9 else 'cannot'} stay). ")
        if s["escaped"]:
            text += f"SGD left the minimum: its loss rose {s['sgd_peak']:.2g}x"
            end = result.get("at_end")
            if end is not None:
                text += (f", and it ends at loss {s['sgd_end']:.2g} where Tr H = "
                         f"{end['trace']:.3g} (was {r['trace']:.3g}), growth "
                         f"{end['ms_rate']:.3f}")
        else:
            text += (f"SGD stayed: its loss rose at most {s['sgd_peak']:.2g}x and ends at "
                     f"{s['sgd_end']:.2g}")
        text += (f". The one-example noise at GD's minimum is aligned with the Hessian: mu = "
                 f"{result['alignment']:.2f}")
        if s["gd_peak"] is not None:
            text += f"; GD at eta = {lr:g} from the same minimum: at most {s['gd_peak']:.2g}x"
        return html.escape(text)
