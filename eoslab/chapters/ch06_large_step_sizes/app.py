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
from eoslab.chapters.ch06_large_step_sizes.noisy_net import noise_arm
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import slider
from eoslab.ui.plots import HEIGHT, WIDTH

__all__ = ["LargeStepSizesApp", "escape_layout"]


def escape_layout():
    """Heatmap | trajectories (radius vs step) / the radial profile | the network."""
    heat = alt.Chart(alt.Data(name="grid")).mark_rect().encode(
        x=alt.X("eta:O", title="step size η", sort=alt.EncodingSortField("lr")),
        y=alt.Y("sigma:O", title="gradient noise σ",
                sort=alt.EncodingSortField("noise", order="descending")),
        color=alt.Color("reached:Q", title="fraction reaching the global minimum",
                        scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=["lr:Q", "noise:Q", "reached:Q", "diverged:Q"]).properties(
        width=WIDTH + 60, height=HEIGHT, title="fraction of runs reaching the global minimum")
    edge = alt.Chart(alt.Data(name="rings")).mark_rule(color="#bbb", strokeDash=[4, 3]).encode(
        y=alt.Y("radius:Q"))
    # symlog: the rings (radius 1.5-4.5) stay readable while a noisy run far out stays
    # in the panel (no clipping)
    paths = alt.Chart(alt.Data(name="paths")).mark_line(strokeWidth=1.2).encode(
        x=alt.X("step:Q", title="step t"),
        y=alt.Y("radius:Q", title="distance ‖x‖ from the global minimum (symlog)",
                scale=alt.Scale(type="symlog", domain={"unionWith": [0, 6]})),
        color=alt.Color("kind:N", title="run", legend=alt.Legend(orient="bottom",
                                                                 labelLimit=260)),
        detail="run:N")
    traj = alt.layer(edge, paths).properties(
        width=WIDTH, height=HEIGHT, title="runs at the slider's η (dashed: the sharp rings)")
    profile = alt.Chart(alt.Data(name="profile")).mark_line(color="black").encode(
        x=alt.X("radius:Q", title="‖x‖"), y=alt.Y("f:Q", title="f along a ray")).properties(
        width=WIDTH, height=HEIGHT, title="the landscape along any ray from the minimum")
    eta = alt.Color("eta:N", title="digits net: run", legend=alt.Legend(orient="bottom",
                                                                        labelLimit=260))
    net_paths = alt.Chart(alt.Data(name="net")).mark_line().encode(
        x=alt.X("loss:Q", title="train loss (training runs right to left)",
                scale=alt.Scale(type="log", reverse=True)),
        y=alt.Y("sharpness:Q", title="top Hessian eigenvalue"),
        color=eta, order="step:Q", tooltip=["eta:N", "step:Q", "loss:Q", "sharpness:Q"])
    caps = alt.Chart(alt.Data(name="net")).mark_rule(strokeDash=[5, 4]).encode(
        y=alt.Y("two_over_eta:Q"), color=eta).transform_filter("datum.noise == 0")
    net = alt.layer(net_paths, caps).properties(
        width=WIDTH, height=HEIGHT,
        title="digits net: sharpness as the loss falls (dashed: 2/η)")
    return alt.vconcat(alt.hconcat(heat, traj), alt.hconcat(profile, net)).resolve_scale(
        color="independent")


class LargeStepSizesApp(ChapterApp):
    """Step size and noise sliders; the escape heatmap, trajectories and the digits net.

    CSS classes: those of :class:`~eoslab.ui.app.ChapterApp` plus ``eoslab-noise-slider``.
    """

    CHAPTER = "06"
    KIND = "ch06_large_step_sizes"
    LR_RANGE = (0.001, 2.5, 0.001)  # used where a preset has no lr_edge
    LR_SPAN = (0.0005, 1.25)  # 0.0005x to 1.25x the edge 2/mu: the rings' edge to divergence
    LR_LABEL = "step size η"
    LR_EDGE_LABEL = "η (2/μ = {edge:.2g})"
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        return {"noise": slider("gradient noise σ", self.preset.noise, 0.0, 100.0, 0.1,
                                "eoslab-noise-slider", continuous=False)}

    def layout(self, settings: dict):
        return escape_layout()

    def total_work(self, settings: dict) -> int:
        return TOTAL_WORK

    def describe(self, result: dict) -> str:
        edge = 2.0 / result["ring_sharpness"]
        s = summary(result, edge)
        text = (f"{_paths_state(result, edge)}. Rings are stable only for η < "
                f"2/{result['ring_sharpness']:.0f} = {edge:.2g}. Below that, at most "
                f"{s['small_eta_best']:.0%} of the grid's runs reach the global minimum at any "
                f"noise level; plain GD with {2 * edge:.2g} < η < 1.5 reaches it in at least "
                f"{s['large_eta_worst']:.0%}.")
        match = matched_sharpness(result.get("net", []))
        if len(match["sharpness"]) >= 2:
            (lo, s_lo), (hi, s_hi) = min(match["sharpness"].items()), max(
                match["sharpness"].items())
            text += (f" Digits net, at train loss {match['level']:.2g}: sharpness "
                     f"{s_lo:.3g} with η = {lo:.3g}, {s_hi:.3g} with η = {hi:.3g} "
                     f"(2/η = {2 / hi:.3g}).")
        arm = noise_arm(result.get("net", []))
        if arm is not None:
            text += (f" With isotropic noise σ = {arm['noise']:.3g}, the small step reaches "
                     f"train loss {arm['level']:.2g} at sharpness {arm['noisy']:.3g} (no noise: "
                     f"{arm['small']:.3g}; the large step: {arm['large']:.3g}).")
        return html.escape(text)

    def describe_diverged(self, result: dict) -> str:
        d = result["diverged"]
        text = html.escape(f"every run at η = {d['lr']:.3g} diverged (the first at step "
                           f"{d['step']}): past 2/μ = 2 even the global minimum is unstable.")
        if result.get("grid"):
            text += " " + self.describe({**result, "paths": []})
        return text


def _paths_state(result: dict, edge: float) -> str:
    """Where the drawn runs at the slider's η end: in a ring, at the global minimum, out."""
    finals: dict = {}
    for r in result.get("paths", []):
        if r["radius"] is not None:
            finals[(r["kind"], r["run"])] = r["radius"]
    parts = []
    for kind in dict.fromkeys(k for k, _ in finals):
        ends = [v for (k, _), v in finals.items() if k == kind]
        home = sum(v < 0.5 for v in ends)
        parts.append(f"{kind}: {home} of {len(ends)} runs end at the global minimum")
    return "; ".join(parts) if parts else f"no run drawn (rings' edge η = {edge:.2g})"
