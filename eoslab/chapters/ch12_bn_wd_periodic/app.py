"""Chapter 12's app: periodic destabilisations of a scale-invariant net under weight decay.

Lobacheva, Kodryan, Chirkova, Malinin, Vetrov (NeurIPS 2021, arXiv 2106.15739).  A thin
:class:`~eoslab.ui.app.ChapterApp` over
:func:`~eoslab.chapters.ch12_bn_wd_periodic.experiment.experiment`: the step size
(``eoslab-lr-slider``) and the weight decay (``eoslab-wd-slider``) set one run; the four
panels of :func:`bn_wd_layout` show the train loss, the weight norm, the effective step
:math:`\\eta/\\lVert w\\rVert^2` and the edge ratio :math:`\\eta\\lambda_{\\max}/2` against
the step, with a rule at each destabilisation.

Usage (in a notebook)::

    from eoslab.chapters.ch12_bn_wd_periodic.app import BNWeightDecayApp
    app = BNWeightDecayApp()      # preset: preset_for("12")
    app.run()                     # trains in the background
    app
"""

from __future__ import annotations

import html
import statistics

import altair as alt

from eoslab.chapters.ch12_bn_wd_periodic.experiment import experiment
from eoslab.ui.app import ChapterApp, divergence_text
from eoslab.ui.base import slider

__all__ = ["BNWeightDecayApp", "bn_wd_layout"]


def bn_wd_layout():
    """Train loss, weight norm, effective step and edge ratio against the step; rules at spikes."""
    history = alt.Chart(alt.Data(name="history"))
    rules = alt.Chart(alt.Data(name="events")).mark_rule(color="#d62728", strokeDash=[4, 3],
                                                          opacity=0.6).encode(x="step:Q")

    def panel(field, title, color, heading):
        line = history.mark_line(color=color).encode(
            x=alt.X("step:Q", title="step"),
            y=alt.Y(f"{field}:Q", title=title, scale=alt.Scale(type="log"))
        ).transform_filter(f"isValid(datum.{field}) && datum.{field} > 0")
        return alt.layer(line, rules).properties(title=heading, width=300, height=180)

    one = alt.Chart(alt.Data(values=[{"one": 1.0}])).mark_rule(color="black").encode(y="one:Q")
    return alt.vconcat(
        alt.hconcat(
            panel("loss", "train loss (cross-entropy)", "#1f77b4",
                  "train loss: quiet, spike, quiet"),
            panel("si_norm", "||w|| (scale-invariant weights)", "#2ca02c",
                  "weight norm: WD shrinks it, a spike inflates it")),
        alt.hconcat(
            panel("eff_lr", "eta / ||w||^2", "#ff7f0e", "effective step size rises to the spike"),
            alt.layer(panel("edge_ratio", "eta * lambda_max / 2", "#9467bd",
                            "edge ratio: each spike comes at 1 (black)"), one)),
    ).properties(datasets={"history": [], "events": []})


class BNWeightDecayApp(ChapterApp):
    """Step size (``eoslab-lr-slider``) and weight decay (``eoslab-wd-slider``); Run/Stop; chart.

    The step-size slider reaches past :math:`2/\\lambda`, where the weight-decay step alone,
    :math:`w \\leftarrow (1-\\eta\\lambda) w`, overshoots and the weights blow up.
    """

    CHAPTER = "12"
    KIND = "ch12_bn_wd_periodic"
    LR_RANGE = (0.01, 25.0, 0.01)
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        return {"wd": slider("weight decay lambda", self.preset.wd, 0.0, 0.5, 0.005,
                             "eoslab-wd-slider", continuous=False)}

    def layout(self, settings: dict):
        return bn_wd_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.steps

    def describe_diverged(self, result: dict) -> str:
        lr, wd = result["diverged"]["lr"], result.get("wd")
        text = divergence_text(result)
        if wd is not None and lr * wd > 2:
            text += (f"; here eta * lambda = {lr * wd:.3g} > 2, so the weight-decay step "
                     f"w <- (1 - eta lambda) w alone overshoots and |w| explodes")
        return html.escape(text)

    def describe(self, result: dict) -> str:
        s, lr, wd = result["summary"], result["lr"], result["wd"]
        last = result["history"][-1] if result["history"] else {}
        if s["count"] == 0:
            return html.escape(
                f"no destabilisation in {result['steps']} steps (eta * lambda = "
                f"{lr * wd:.3g}); final ||w|| = {last.get('si_norm', float('nan')):.3g}, "
                f"effective step {last.get('eff_lr', float('nan')):.3g}: raise eta or lambda")
        events = s["events"]
        first = events[0]
        edges = [e for e in s.get("edge_before", []) if e is not None]
        text = (f"{s['count']} destabilisation(s) at steps "
                f"{', '.join(str(e['step']) for e in events[:8])}"
                f"{' ...' if len(events) > 8 else ''}; the first came when eta/||w||^2 had "
                f"risen to {first['eff_lr_before']:.3g}, and the loss jumped from "
                f"{first['loss_before']:.2g} to {first['loss_peak']:.3g}")
        if edges:
            text += (f"; eta * lambda_max / 2 just before the spikes: median "
                     f"{statistics.median(edges):.2g} (1 = edge of stability)")
        if s["median_period"] is not None:
            text += (f". Median period {s['median_period']:.0f} steps = "
                     f"{s['scaled_period']:.2f} / (eta * lambda); within a period weight decay "
                     f"shrinks ||w|| {s['median_shrink']:.3g}x, so the effective step grows "
                     f"{s['median_shrink'] ** 2:.3g}x")
        return html.escape(text)
