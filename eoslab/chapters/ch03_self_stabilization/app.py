"""Chapter 03's app: the self-stabilisation cycle and GD tracking the constrained trajectory.

Damian, Nichani, Lee (ICLR 2023, arXiv 2209.15594).  The step-size slider and Run drive
:func:`~eoslab.chapters.ch03_self_stabilization.experiment.experiment`; the chart shows the
sharpness of GD and of the constrained run, the displacement :math:`x` along the top
eigenvector, the :math:`(|x|, y)` phase portrait with :math:`y = S - 2/\\eta`, the distance
between the two trajectories, and the losses.

Usage (in a notebook)::

    from eoslab.chapters.ch03_self_stabilization.app import SelfStabilizationApp
    app = SelfStabilizationApp()  # preset: preset_for("03")
    app.run()  # trains in the background
    app
"""

from __future__ import annotations

import html

import altair as alt

from eoslab.chapters.ch03_self_stabilization.experiment import experiment
from eoslab.ui.app import ChapterApp

__all__ = ["SelfStabilizationApp", "cycle_layout"]


def cycle_layout():
    """Sharpness of GD and of the constrained run, x, the (|x|, y) portrait, distance, losses."""
    base = alt.Chart(alt.Data(name="history"))
    sharp = base.transform_fold(["sharpness", "dagger_sharpness", "edge"], as_=["curve", "v"]
                                ).mark_line().encode(
        x="step:Q", y=alt.Y("v:Q", title="sharpness"),
        color=alt.Color("curve:N", title=None, scale=alt.Scale(
            domain=["sharpness", "dagger_sharpness", "edge"],
            range=["#d62728", "#1f77b4", "black"])),
        strokeDash=alt.condition("datum.curve == 'edge'", alt.value([6, 4]), alt.value([1, 0]))
    ).properties(title="S(GD) red, S(constrained) blue, 2/eta dashed")
    x = base.mark_line(color="#ff7f0e").encode(
        x="step:Q", y=alt.Y("x:Q", title="x = u . (theta - theta_dagger)")
    ).properties(title="displacement along the top eigenvector")
    portrait = alt.layer(
        base.mark_line(point=alt.OverlayMarkDef(size=12), color="#999").encode(
            x=alt.X("abs_x:Q", title="|x|"), y=alt.Y("y:Q", title="y = S - 2/eta"),
            order="step:Q"),
        base.mark_circle(size=18).encode(x="abs_x:Q", y="y:Q",
                                         color=alt.Color("step:Q", scale=alt.Scale(
                                             scheme="viridis"))),
        alt.Chart(alt.Data(values=[{"v": 0.0}])).mark_rule(strokeDash=[6, 4]).encode(y="v:Q"),
    ).properties(title="phase portrait (|x|, y), coloured by step")
    dist = base.transform_fold(["distance", "travel"], as_=["curve", "v"]).mark_line().encode(
        x="step:Q", y=alt.Y("v:Q", title="norm"), color=alt.Color("curve:N", title=None)
    ).properties(title="|theta - theta_dagger| vs |theta - theta_0|")
    loss = base.transform_fold(["loss", "dagger_loss"], as_=["curve", "v"]).mark_line().encode(
        x="step:Q", y=alt.Y("v:Q", title="train loss", scale=alt.Scale(type="log")),
        color=alt.Color("curve:N", title=None)).transform_filter("datum.v > 0").properties(
        title="loss of GD and of the constrained trajectory")
    panels = [p.properties(width=250, height=180) for p in (sharp, x, portrait, dist, loss)]
    return alt.vconcat(alt.hconcat(*panels[:3]), alt.hconcat(*panels[3:])).properties(
        datasets={"history": []})


class SelfStabilizationApp(ChapterApp):
    """The step-size slider (``eoslab-lr-slider``), Run/Stop and the five panels."""

    CHAPTER = "03"
    KIND = "ch03_self_stabilization"
    LR_RANGE = (0.05, 4.0, 0.01)
    experiment = staticmethod(experiment)

    def layout(self, settings: dict):
        return cycle_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.steps

    def describe(self, result: dict) -> str:
        s = result["summary"]
        lr = result["lr"]
        if s is None:
            return html.escape(f"the sharpness stayed below 2/eta = {2 / lr:.3g}: GD and the "
                               "constrained trajectory coincide; raise eta")
        return html.escape(
            f"S crosses 2/eta = {2 / lr:.3g} at step {s['entry_step']}, overshoots by up to "
            f"{s['peak_y']:.3g} (step {s['peak_step']}) while |x| grows from "
            f"{s['x_at_entry']:.2g} to {s['max_abs_x']:.2g} ({s['blowups']} blow-up(s)), then "
            f"self-stabilises back to S - 2/eta = {s['return_y']:.2g}. The constrained "
            f"trajectory keeps S <= {s['dagger_max_ratio']:.3f} x 2/eta; GD stays within "
            f"{s['max_distance']:.3g} of it while travelling {s['travel']:.3g} from its start")
