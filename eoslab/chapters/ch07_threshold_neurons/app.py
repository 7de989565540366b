"""Chapter 07's app: the ReLU bias turns negative only past a critical step size.

Ahn, Bubeck, Chewi, Lee, Suarez & Zhang (NeurIPS 2023, arXiv 2212.07469). The step-size
slider picks the run drawn next to three fixed multiples of the edge
:math:`\\eta^* = 2/\\lambda_0`; the time slider sets :math:`\\eta T` for every run. The
pipeline is :func:`eoslab.chapters.ch07_threshold_neurons.experiment.experiment`; this
module draws it on :class:`~eoslab.ui.app.ChapterApp`'s lifecycle.

Usage::

    app = ThresholdNeuronsApp("quick", store=False, auto_run=False)
    app.run(wait=True)
"""

from __future__ import annotations

import html

import altair as alt
import numpy as np

from eoslab.chapters.ch07_threshold_neurons.experiment import TOTAL_WORK, experiment
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import slider
from eoslab.ui.plots import HEIGHT, WIDTH
from eoslab.ui.status import phrase

__all__ = ["ThresholdNeuronsApp", "threshold_layout"]


def threshold_layout():
    """Final bias vs eta | bias along GD | loss along GD."""
    lr_x = alt.X("lr:Q", title="step size η", scale=alt.Scale(type="log"))
    dots = alt.Chart(alt.Data(name="final")).mark_circle(size=30, opacity=0.5).encode(
        x=lr_x, y=alt.Y("bias:Q", title="bias b after time ηT"),
        tooltip=["lr:Q", "ratio:Q", "seed:N", "bias:Q", "test_acc:Q"])
    mean = alt.Chart(alt.Data(name="final")).mark_line(color="black").encode(
        x=lr_x, y="mean(bias):Q")
    edge = alt.Chart(alt.Data(name="edge")).mark_rule(color="red", strokeDash=[6, 4]).encode(
        x=alt.X("lr:Q"))
    zero = alt.Chart(alt.Data(values=[{"zero": 0.0}])).mark_rule(color="#999").encode(
        y="zero:Q")
    final = alt.layer(zero, dots, mean, edge).properties(
        width=WIDTH, height=HEIGHT, title="final bias vs η (dashed: η* = 2/λ₀)")
    acc = alt.Chart(alt.Data(name="final")).mark_line(point=True, color="#2ca02c").encode(
        x=lr_x, y=alt.Y("mean(test_acc):Q", title="test accuracy",
                        scale=alt.Scale(zero=False))).properties(
        width=WIDTH, height=HEIGHT, title="test accuracy vs η (mean over inits)")
    color = alt.Color("run:N", title="run")
    traj_b = alt.Chart(alt.Data(name="traj")).mark_line().encode(
        x=alt.X("time:Q", title="time ηt"), y=alt.Y("bias:Q", title="bias b"),
        color=color).properties(width=WIDTH, height=HEIGHT, title="the bias along GD")
    traj_l = alt.Chart(alt.Data(name="traj")).mark_line().encode(
        x=alt.X("time:Q", title="time ηt"),
        y=alt.Y("loss:Q", title="train loss", scale=alt.Scale(zero=False)),
        color=color).properties(width=WIDTH, height=HEIGHT,
                                title="train loss along GD (it jumps up past η*)")
    return alt.vconcat(alt.hconcat(final, traj_b), alt.hconcat(acc, traj_l)).resolve_scale(
        color="independent")


class ThresholdNeuronsApp(ChapterApp):
    """Step size and training time sliders; final bias vs eta, trajectories, accuracy.

    CSS classes: those of :class:`~eoslab.ui.app.ChapterApp` plus ``eoslab-time-slider``.
    """

    CHAPTER = "07"
    KIND = "ch07_threshold_neurons"
    LR_RANGE = (0.01, 5.0, 0.01)
    # 0.1x to 5x the edge eta* = 2/lambda_0: below it the bias stays near 0, 1-3 eta* makes
    # a threshold neuron, near 5 eta* the units die (the quick preset's top kills them all)
    LR_SPAN = (0.1, 5.0)
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        return {"time": slider("training time ηT", self.preset.time, 1.0, 50.0, 1.0,
                               "eoslab-time-slider", continuous=False)}

    def layout(self, settings: dict):
        return threshold_layout()

    def total_work(self, settings: dict) -> int:
        return TOTAL_WORK

    def describe(self, result: dict) -> str:
        s, star = result["summary"], result["eta_star"]
        accs: dict = {}
        for r in result["final"]:
            accs.setdefault(r["ratio"], []).append(r["test_acc"])
        mean_acc = {k: float(np.mean(v)) for k, v in accs.items()}
        best = max(mean_acc, key=mean_acc.get)
        below = [v for k, v in mean_acc.items() if k < 0.9]
        lead = ""
        if result.get("state") == "not-training":
            lead = (f"η = {result.get('lr', float('nan')):.3g}: "
                    + phrase("not-training", result.get("state_note", "")) + ". ")
        return html.escape(
            lead + f"initial sharpness {np.mean(result['lambda0']):.3g}, so the edge of "
            "stability is "
            f"η* = 2/λ₀ = {star:.3g} (8π/d = {result['theory_eta_star']:.3g}). "
            f"Final bias: {s['below']:+.3f} on average below 0.9 η*, {s['above']:+.3f} at "
            f"2-3 η* (a threshold neuron). Best test accuracy {mean_acc[best]:.3f} at "
            f"{best:.2g} η* (below 0.9 η*: {max(below, default=float('nan')):.3f} at best).")
