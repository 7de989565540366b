"""Chapter 04's app: the loss converges while eta * lambda_max > 2.

Ahn, Zhang, Sra (ICML 2022, arXiv 2204.01050).  The step-size slider and Run drive
:func:`~eoslab.chapters.ch04_unstable_convergence.experiment.experiment`; the chart shows the
loss, :math:`\\eta S` against 2, the relative progress ratio RP and the alignment
:math:`|\\cos(\\nabla L, u_1)|` against the step.

Usage (in a notebook)::

    from eoslab.chapters.ch04_unstable_convergence.app import UnstableConvergenceApp
    app = UnstableConvergenceApp()  # preset: preset_for("04")
    app.run()  # trains in the background
    app
"""

from __future__ import annotations

import html

import altair as alt

from eoslab.chapters.ch04_unstable_convergence.experiment import experiment
from eoslab.ui.app import ChapterApp

__all__ = ["UnstableConvergenceApp", "unstable_layout"]


def unstable_layout():
    """Loss, eta*S (rule at 2), RP (rules at 0 and -1) and the alignment, against the step."""
    base = alt.Chart(alt.Data(name="history"))

    def rule(value, color="black", dash=(6, 4)):
        return alt.Chart(alt.Data(values=[{"v": value}])).mark_rule(
            color=color, strokeDash=list(dash)).encode(y="v:Q")

    loss = base.mark_line().encode(
        x="step:Q", y=alt.Y("loss:Q", title="train loss", scale=alt.Scale(type="log"))
    ).transform_filter("datum.loss > 0").properties(title="the loss still converges")
    sharp = alt.layer(base.mark_line(point=True, color="#d62728").encode(
        x="step:Q", y=alt.Y("eta_sharpness:Q", title="eta * lambda_max")
    ).transform_filter("isValid(datum.eta_sharpness)"), rule(2.0)).properties(
        title="eta * lambda_max; dashed: 2 (descent lemma's limit)")
    rp = alt.layer(base.mark_line(point=True, color="#2ca02c").encode(
        x="step:Q", y=alt.Y("rp:Q", title="relative progress RP",
                            scale=alt.Scale(domain=[-1.5, 1.5], clamp=True))
    ).transform_filter("isValid(datum.rp)"), rule(0.0), rule(-1.0, "#888")).properties(
        title="RP = (L(t+1) - L(t)) / (eta |g|^2); -1: stable, 0: no progress")
    align = base.mark_line(point=True, color="#9467bd").encode(
        x="step:Q", y=alt.Y("alignment:Q", title="|cos(grad, u_1)|",
                            scale=alt.Scale(domain=[0, 1]))
    ).transform_filter("isValid(datum.alignment)").properties(
        title="gradient alignment with the top eigenvector")
    panels = [p.properties(width=280, height=190) for p in (loss, sharp, rp, align)]
    return alt.vconcat(alt.hconcat(panels[0], panels[1]), alt.hconcat(panels[2], panels[3])
                       ).properties(datasets={"history": []})


class UnstableConvergenceApp(ChapterApp):
    """The step-size slider (``eoslab-lr-slider``), Run/Stop and the four panels."""

    CHAPTER = "04"
    KIND = "ch04_unstable_convergence"
    LR_RANGE = (0.01, 4.0, 0.01)
    experiment = staticmethod(experiment)

    def layout(self, settings: dict):
        return unstable_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.steps

    def describe(self, result: dict) -> str:
        s = result["summary"]
        last = result["history"][-1]["loss"] if result["history"] else float("nan")
        if s is None:
            return html.escape(f"eta * lambda_max stayed below 2 (stable GD); loss ends at "
                               f"{last:.3g}: raise eta to see unstable convergence")

        def f(v):
            return "n/a" if v is None else f"{v:.2f}"
        return html.escape(
            f"eta * lambda_max first exceeds 2 at step {s['entry_step']}; afterwards it is "
            f"above 2 at {100 * s['above_fraction']:.0f}% of the probes (median "
            f"{f(s['eta_sharpness_median'])}), yet the loss goes {s['loss_entry']:.3g} -> "
            f"{s['loss_end']:.3g}. Median RP: {f(s['rp_stable'])} before, "
            f"{f(s['rp_unstable'])} after; mean |cos(grad, u_1)|: "
            f"{f(s['alignment_stable'])} before, {f(s['alignment_unstable'])} after")
