"""Chapter 06's app: large step sizes escape sharp local minima; small ones with noise do not.

Mohtashami, Jaggi & Stich (ICML 2023, arXiv 2205.15142). The sliders pick the step size
and the noise of the trajectories drawn; the grid and the digits net are fixed by the
preset. The pipeline is :func:`eoslab.chapters.ch06_large_step_sizes.experiment.experiment`;
this module draws it on :class:`~eoslab.ui.app.ChapterApp`'s lifecycle.

Usage (in a notebook)::

    app = LargeStepSizesApp("quick", store=False, auto_run=False)
    app.run(wait=True)
    app
"""

from __future__ import annotations

import html

import altair as alt

from eoslab.chapters.ch06_large_step_sizes.experiment import (
    TOTAL_WORK,
    experiment,
    matched_sharpness,
    summary,
)
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import slider
from eoslab.ui.plots import HEIGHT, WIDTH

__all__ = ["LargeStepSizesApp", "escape_layout"]


def escape_layout():
    """Heatmap | trajectories (radius vs step) / the radial profile | the network."""
    heat = alt.Chart(alt.Data(name="grid")).mark_rect().encode(
        x=alt.X("eta:O", title="step size eta", sort=alt.EncodingSortField("lr")),
        y=alt.Y("sigma:O", title="gradient noise sigma",
                sort=alt.EncodingSortField("noise", order="descending")),
        color=alt.Color("reached:Q", title="reached global",
                        scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=["lr:Q", "noise:Q", "reached:Q", "diverged:Q"]).properties(
        width=WIDTH + 60, height=HEIGHT, title="fraction of runs reaching the global minimum")
    edge = alt.Chart(alt.Data(name="rings")).mark_rule(color="#bbb", strokeDash=[4, 3]).encode(
        y=alt.Y("radius:Q"))
    paths = alt.Chart(alt.Data(name="paths")).mark_line(clip=True, strokeWidth=1.2).encode(
        x=alt.X("step:Q"), y=alt.Y("radius:Q", title="distance from the global minimum |x|",
                                   scale=alt.Scale(domain=[0, 8], clamp=True)),
        color=alt.Color("kind:N", title="run"), detail="run:N")
    traj = alt.layer(edge, paths).properties(
        width=WIDTH, height=HEIGHT, title="runs at the slider's eta (dashed: the sharp rings)")
    profile = alt.Chart(alt.Data(name="profile")).mark_line(color="black").encode(
        x=alt.X("radius:Q", title="|x|"), y=alt.Y("f:Q", title="f along a ray")).properties(
        width=WIDTH, height=HEIGHT, title="the landscape along any ray from the minimum")
    eta = alt.Color("eta:N", title="digits net")
    net_paths = alt.Chart(alt.Data(name="net")).mark_line(point=True).encode(
        x=alt.X("loss:Q", title="train loss (training runs right to left)",
                scale=alt.Scale(type="log", reverse=True)),
        y=alt.Y("sharpness:Q", title="top Hessian eigenvalue"),
        color=eta, order="step:Q", tooltip=["eta:N", "step:Q", "loss:Q", "sharpness:Q"])
    caps = alt.Chart(alt.Data(name="net")).mark_rule(strokeDash=[5, 4]).encode(
        y=alt.Y("two_over_eta:Q"), color=eta)
    net = alt.layer(net_paths, caps).properties(
        width=WIDTH, height=HEIGHT,
        title="digits net: sharpness as the loss falls (dashed: 2/eta)")
    return alt.vconcat(alt.hconcat(heat, traj), alt.hconcat(profile, net)).resolve_scale(
        color="independent")


class LargeStepSizesApp(ChapterApp):
    """Step size and noise sliders; the escape heatmap, trajectories and the digits net.

    CSS classes: those of :class:`~eoslab.ui.app.ChapterApp` plus ``eoslab-noise-slider``.
    """

    CHAPTER = "06"
    KIND = "ch06_large_step_sizes"
    LR_RANGE = (0.001, 2.5, 0.001)
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        return {"noise": slider("gradient noise sigma", self.preset.noise, 0.0, 100.0, 0.1,
                                "eoslab-noise-slider", continuous=False)}

    def layout(self, settings: dict):
        return escape_layout()

    def total_work(self, settings: dict) -> int:
        return TOTAL_WORK

    def describe(self, result: dict) -> str:
        edge = 2.0 / result["ring_sharpness"]
        s = summary(result, edge)
        text = (f"rings are stable only for eta < 2/{result['ring_sharpness']:.0f} = "
                f"{edge:.2g}. Below that, at most {s['small_eta_best']:.0%} of runs reach the "
                f"global minimum at any noise level; plain GD with {2 * edge:.2g} < eta < 1.5 "
                f"reaches it in at least {s['large_eta_worst']:.0%}.")
        match = matched_sharpness(result.get("net", []))
        if len(match["sharpness"]) >= 2:
            (lo, s_lo), (hi, s_hi) = min(match["sharpness"].items()), max(
                match["sharpness"].items())
            text += (f" Digits net, at train loss {match['level']:.2g}: sharpness "
                     f"{s_lo:.3g} with eta = {lo:.3g}, {s_hi:.3g} with eta = {hi:.3g} "
                     f"(2/eta = {2 / hi:.3g}).")
        return html.escape(text)
