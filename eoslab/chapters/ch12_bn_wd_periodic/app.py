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
            panel("si_norm", "‖w‖ (scale-invariant weights)", "#2ca02c",
                  "weight norm ‖w‖: weight decay shrinks it, a spike inflates it")),
        alt.hconcat(
            panel("eff_lr", "η / ‖w‖²", "#ff7f0e", "effective step η/‖w‖² rises to the spike"),
            alt.layer(panel("edge_ratio", "η λmax / 2", "#9467bd",
                            "edge ratio η λmax/2: each spike comes at 1 (black)"), one)),
    ).properties(datasets={"history": [], "events": []})


_STATE_TEXT = {
    "not training": "not training: the loss stays at that of a uniform guess",
    "periodic": "periodic: quiet phases ended by destabilisations",
    "chaotic": "chaotic: no quiet phase, the step is unstable throughout",
    "quiet": "trained and quiet: weight decay is shrinking ‖w‖ towards the next spike",
    "training": "training: the loss is still coming down",
}


class BNWeightDecayApp(ChapterApp):
    """Step size (``eoslab-lr-slider``) and weight decay (``eoslab-wd-slider``); Run/Stop; chart.

    The step-size slider spans ``LR_SPAN`` times the preset's ``lr_edge`` :math:`= 2/\\lambda`:
    past it the weight-decay step alone, :math:`w \\leftarrow (1-\\eta\\lambda) w`,
    overshoots and the weights blow up.
    """

    CHAPTER = "12"
    KIND = "ch12_bn_wd_periodic"
    LR_RANGE = (0.01, 25.0, 0.01)
    # 0.0004x keeps the paper preset's lr = 0.1 (edge 200) strictly inside the range
    LR_SPAN = (0.0004, 1.25)
    LR_EDGE_LABEL = "step size η (edge 2/λ = {edge:.3g})"
    LR_LABEL_WIDTH = "190px"
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        return {"wd": slider("weight decay λ", self.preset.wd, 0.0, 0.5, 0.005,
                             "eoslab-wd-slider", continuous=False)}

    def layout(self, settings: dict):
        return bn_wd_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.steps

    def describe_diverged(self, result: dict) -> str:
        lr, wd = result["diverged"]["lr"], result.get("wd")
        text = divergence_text(result)
        if wd is not None and lr * wd > 2:
            text += (f"; here ηλ = {lr * wd:.3g} > 2, so the weight-decay step "
                     f"w ← (1 − ηλ) w alone overshoots and ‖w‖ explodes")
        return html.escape(text)

    def describe(self, result: dict) -> str:
        s, lr, wd = result["summary"], result["lr"], result["wd"]
        st = result["state"]
        last = result["history"][-1] if result["history"] else {}
        text = (f"η = {lr:.3g}, λ = {wd:.3g} (ηλ = {lr * wd:.3g}), {result['steps']} steps: "
                f"{_STATE_TEXT[st['state']]}. Second half: loss {st['loss_min']:.2g} to "
                f"{st['loss_max']:.2g}")
        if st["edge_median"] is not None:
            text += f", median edge ratio η λmax/2 = {st['edge_median']:.2g} (1 = edge)"
        if st["state"] == "quiet" and s["count"] == 0:
            text += (f"; final ‖w‖ = {last.get('si_norm', float('nan')):.3g}, effective step "
                     f"{last.get('eff_lr', float('nan')):.3g}: more steps (or a larger ηλ) "
                     "bring the first destabilisation")
        if s["count"]:
            events = s["events"]
            first = events[0]
            text += (f". {s['count']} destabilisation(s) (jumps of ‖w‖) at steps "
                     f"{', '.join(str(e['step']) for e in events[:8])}"
                     f"{' ...' if len(events) > 8 else ''}; the first came when η/‖w‖² had "
                     f"risen to {first['eff_lr_before']:.3g}")
            edges = [e for e in s.get("edge_before", []) if e is not None]
            if edges:
                text += (f"; η λmax/2 just before the spikes: median "
                         f"{statistics.median(edges):.2g}")
        if st["state"] == "periodic" and s["median_period"] is not None:
            text += (f". Median period {s['median_period']:.0f} steps = "
                     f"{s['scaled_period']:.2f} / (ηλ); within a period weight decay "
                     f"shrinks ‖w‖ {s['median_shrink']:.3g}x, so the effective step grows "
                     f"{s['median_shrink'] ** 2:.3g}x")
        return html.escape(text)
