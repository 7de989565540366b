"""Chapter 04's app: the loss converges while eta * lambda_max > 2.

Ahn, Zhang, Sra (ICML 2022, arXiv 2204.01050).  The step-size slider and Run drive
:func:`~eoslab.chapters.ch04_unstable_convergence.experiment.experiment`; the chart shows the
loss, :math:`\\eta S` against 2, the relative progress ratio RP and the alignment
:math:`|\\cos(\\nabla L, u_1)|` against the step.  The slider spans ``LR_SPAN`` times the
preset's ``lr_edge`` (:math:`2/\\lambda_0`, GD's stability threshold at the initialisation).

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

__all__ = ["UnstableConvergenceApp", "run_state", "unstable_layout"]


def _series(field: str, names: list[str], colors: list[str]) -> alt.Color:
    return alt.Color(f"{field}:N", title=None, scale=alt.Scale(domain=names, range=colors),
                     legend=alt.Legend(orient="bottom", labelLimit=260))


def _rule(value: float, name: str, names: list[str], colors: list[str]):
    return alt.Chart(alt.Data(values=[{"v": value, "series": name}])).mark_rule(
        strokeDash=[6, 4]).encode(y="v:Q", color=_series("series", names, colors))


def unstable_layout():
    """Loss, ηλ_max (rule at 2), RP (rules at 0 and -1) and the alignment, against the step."""
    base = alt.Chart(alt.Data(name="history"))
    loss = base.mark_line().encode(
        x=alt.X("step:Q", title="step t"),
        y=alt.Y("loss:Q", title="train loss",
                scale=alt.Scale(type="log", domain={"unionWith": [0.01, 1.0]}))
    ).transform_filter("datum.loss > 0").properties(title="the loss still converges")
    sharp_names = ["η λ_max (measured)", "2: the descent lemma's limit"]
    sharp_colors = ["#d62728", "black"]
    sharp = alt.layer(base.mark_line().encode(
        x=alt.X("step:Q", title="step t"), y=alt.Y("eta_sharpness:Q", title="η λ_max",
                                         scale=alt.Scale(domain={"unionWith": [0, 2.5]})),
        color=_series("series", sharp_names, sharp_colors)
    ).transform_filter("isValid(datum.eta_sharpness)").transform_calculate(
        series=f"'{sharp_names[0]}'"), _rule(2.0, sharp_names[1], sharp_names, sharp_colors)
    ).properties(title="η λ_max against 2")
    rp_names = ["RP (measured, clipped to [−1.5, 1.5])", "0: no progress",
                "−1: first-order progress"]
    rp_colors = ["#2ca02c", "black", "#888"]
    rp = alt.layer(base.mark_line().encode(
        x=alt.X("step:Q", title="step t"),
        y=alt.Y("rp:Q", title="relative progress RP",
                scale=alt.Scale(domain=[-1.5, 1.5], clamp=True)),
        color=_series("series", rp_names, rp_colors)
    ).transform_filter("isValid(datum.rp)").transform_calculate(series=f"'{rp_names[0]}'"),
        _rule(0.0, rp_names[1], rp_names, rp_colors),
        _rule(-1.0, rp_names[2], rp_names, rp_colors)).properties(
        title="RP = (L(θ_{t+1}) − L(θ_t)) / (η ‖∇L‖²)")
    align = base.mark_line(color="#9467bd").encode(
        x=alt.X("step:Q", title="step t"),
        y=alt.Y("alignment:Q", title="|cos(∇L, u₁)|", scale=alt.Scale(domain=[0, 1]))
    ).transform_filter("isValid(datum.alignment)").properties(
        title="gradient alignment with the top eigenvector u₁")
    panels = [p.properties(width=300, height=180) for p in (loss, sharp, rp, align)]
    rows = [alt.hconcat(*panels[i:i + 2]).resolve_scale(color="independent") for i in (0, 2)]
    return alt.vconcat(*rows).resolve_scale(color="independent").properties(
        datasets={"history": []})


def run_state(result: dict) -> str:
    """The run's state from the loss and ηλ_max it drew: not training, stable or at the edge.

    >>> run_state({"history": [{"loss": 1.0}, {"loss": 0.99}], "summary": None})
    'not training'
    """
    losses = [r["loss"] for r in result["history"] if r.get("loss") is not None]
    if len(losses) < 2 or not losses[-1] < 0.9 * losses[0]:
        return "not training"
    if result["summary"] is None:
        return "converging, stable (η λ_max < 2 throughout)"
    return "converging although η λ_max > 2 (unstable convergence)"


class UnstableConvergenceApp(ChapterApp):
    """The step-size slider (``eoslab-lr-slider``), Run/Stop and the four panels."""

    CHAPTER = "04"
    KIND = "ch04_unstable_convergence"
    LR_RANGE = (0.01, 4.0, 0.01)  # used where a preset has no lr_edge
    LR_SPAN = (0.1, 3.0)  # the slider spans 0.1x to 3x the edge 2/lambda_0
    LR_LABEL = "step size η"
    LR_EDGE_LABEL = "η (2/λ₀ = {edge:.2g})"
    experiment = staticmethod(experiment)

    def layout(self, settings: dict):
        return unstable_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.steps

    def describe(self, result: dict) -> str:
        s, state = result["summary"], run_state(result)
        losses = [r["loss"] for r in result["history"] if r.get("loss") is not None]
        loss = f"loss {losses[0]:.3g} → {losses[-1]:.3g}" if losses else "no loss recorded"
        if s is None:
            return html.escape(f"{state}: η λ_max stayed below 2; {loss}. Raise η to see "
                               "unstable convergence")

        def f(v):
            return "n/a" if v is None else f"{v:.2f}"
        return html.escape(
            f"{state}: η λ_max first exceeds 2 at step {s['entry_step']}; afterwards it is "
            f"above 2 at {100 * s['above_fraction']:.0f}% of the probes (median "
            f"{f(s['eta_sharpness_median'])}); {loss}. Median RP: {f(s['rp_stable'])} "
            f"before, {f(s['rp_unstable'])} after; mean |cos(∇L, u₁)|: "
            f"{f(s['alignment_stable'])} before, {f(s['alignment_unstable'])} after")

    def describe_diverged(self, result: dict) -> str:
        d = result["diverged"]
        loss = "overflowed" if d["loss"] >= 1e300 else f"{d['loss']:.2g}"
        return html.escape(f"diverged at step {d['step']} (loss {loss}): η = "
                           f"{d['lr']:.3g} is too large for this curvature (2/η = "
                           f"{2 / d['lr']:.3g})")
