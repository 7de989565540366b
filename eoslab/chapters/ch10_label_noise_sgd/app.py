"""Chapter 10's app: label-noise SGD drifts along the zero-loss manifold to flat minimisers.

Damian, Ma, Lee (NeurIPS 2021, arXiv 2106.06530).  A thin
:class:`~eoslab.ui.app.ChapterApp` over
:func:`~eoslab.chapters.ch10_label_noise_sgd.experiment.experiment`: the step size
(``eoslab-lr-slider``) and the label-noise level (``eoslab-sigma-slider``) drive the
product model :math:`f = uv` and a net on digits; the four panels of
:func:`label_noise_layout` show the paths along :math:`uv = 1`, the trace
:math:`u^2 + v^2`, and the net's :math:`\\operatorname{tr}\\nabla^2 L` and loss.

Usage (in a notebook)::

    from eoslab.chapters.ch10_label_noise_sgd.app import LabelNoiseApp
    app = LabelNoiseApp()      # preset: preset_for("10")
    app.run()                  # trains in the background
    app
"""

from __future__ import annotations

import html

import altair as alt

from eoslab.chapters.ch10_label_noise_sgd.experiment import CLEAN, NOISY, WARM, experiment
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import slider

__all__ = ["LabelNoiseApp", "label_noise_layout"]


def label_noise_layout():
    """Uv paths | uv trace and gap vs step | net trace vs step | net loss vs step."""
    hyper = alt.Chart(alt.Data(values=[{"u": u, "v": 1 / u} for u in
                                       [s * (0.35 + 0.05 * i) for s in (1, -1)
                                        for i in range(56)]])).mark_line(
        color="#999", strokeDash=[4, 3]).encode(x="u:Q", y="v:Q", detail="branch:N"
                                                ).transform_calculate(
        branch="datum.u > 0 ? 'pos' : 'neg'")
    flat = alt.Chart(alt.Data(values=[{"u": 1.0, "v": 1.0}, {"u": -1.0, "v": -1.0}])
                     ).mark_point(shape="diamond", size=120, color="black", filled=True
                                  ).encode(x="u:Q", y="v:Q")
    paths = alt.Chart(alt.Data(name="uv_path")).mark_line(point=alt.OverlayMarkDef(size=8)
                                                          ).encode(
        x=alt.X("u:Q", scale=alt.Scale(domain=[-3, 3])),
        y=alt.Y("v:Q", scale=alt.Scale(domain=[-3, 3])),
        color=alt.Color("replica:N", title="start"), order="step:Q")
    uv = alt.layer(hyper, paths, flat, _note("uv_note")).properties(
        title="f = uv: paths along uv = 1 to |u| = |v| (diamonds)")
    curve = alt.layer(alt.Chart(alt.Data(name="uv_curve")).mark_line().encode(
        x="step:Q", y=alt.Y("trace:Q", title="tr ∇²L = u² + v²"),
        color=alt.Color("replica:N", title="start")), _note("uv_note")).properties(
        title="f = uv: tr ∇²L falls to its minimum 2")
    color = alt.Color("run:N", title=None, scale=alt.Scale(domain=[WARM, CLEAN, NOISY],
                                                           range=["#7f7f7f", "#1f77b4",
                                                                  "#d62728"]))
    net = alt.Chart(alt.Data(name="net"))
    trace = alt.layer(net.mark_line(point=True).encode(
        x="step:Q", y=alt.Y("trace:Q", title="tr ∇²L (Hutch++)"), color=color
    ).transform_filter("isValid(datum.trace)"), _note("net_note")).properties(
        title="net on digits: tr ∇²L along the run")
    loss = alt.layer(net.mark_line().encode(
        x="step:Q", y=alt.Y("loss:Q", title="train loss (clean targets)",
                            scale=alt.Scale(type="log")), color=color
    ).transform_filter("datum.loss > 0"), _note("net_note")).properties(
        title="net on digits: train loss")
    panels = [p.properties(width=250, height=200) for p in (uv, curve, trace, loss)]
    return alt.vconcat(alt.hconcat(*panels[:2]), alt.hconcat(*panels[2:])).resolve_scale(
        color="independent").properties(datasets={"uv_path": [], "uv_curve": [], "net": [],
                                                  "uv_note": [], "net_note": []})


def _note(name: str):
    """A line of red text at the panel's top left, from dataset ``name`` (a divergence)."""
    return alt.Chart(alt.Data(name=name)).mark_text(
        align="left", baseline="top", color="#d62728", fontWeight="bold").encode(
        x=alt.value(4), y=alt.value(4), text="note:N")


class LabelNoiseApp(ChapterApp):
    """Step size (``eoslab-lr-slider``) and noise level (``eoslab-sigma-slider``); Run/Stop."""

    CHAPTER = "10"
    KIND = "ch10_label_noise_sgd"
    LR_RANGE = (0.01, 3.0, 0.01)
    # 0.1x to 4x the toy's edge 2/lambda_0, lambda_0 = max(u_0^2 + v_0^2) over the starts
    # (6.41): the sharpest start leaves the manifold past about 2x, every start by 4x
    LR_SPAN = (0.1, 4.0)
    experiment = staticmethod(experiment)

    def describe_diverged(self, result: dict) -> str:
        """Which part diverged (the toy: starts past |u| or |v| = 1e6), and the net's outcome."""
        info = result["diverged"]
        if info.get("stage") != "f = uv":
            return super().describe_diverged(result)
        text = (f"f = uv: {info.get('replicas', 1)} of {len(self.preset.uv.starts)} starts "
                f"diverged at step {info['step']} (|u| or |v| past 1e6) — η = {info['lr']:.3g} "
                f"is far above the sharpest start's edge 2/λ₀ = {self.preset.lr_edge:.3g}")
        net = result.get("net_status", {})
        if "diverged" in net:
            text += f"; the net diverged too, at step {net['diverged']['step']}"
        elif "ratio" in result.get("summary", {}):
            s = result["summary"]
            text += (f"; the net trained: tr ∇²L {s['trace_clean']:.3g} without label noise, "
                     f"{s['trace_noisy']:.3g} with σ = {result['sigma']:.3g}")
        return html.escape(text)

    def make_sliders(self) -> dict:
        return {"sigma": slider("label noise σ", self.preset.sigma, 0.0, 1.0, 0.01,
                                "eoslab-sigma-slider", continuous=False)}

    def layout(self, settings: dict):
        return label_noise_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.warmup + 2 * self.preset.steps

    def describe(self, result: dict) -> str:
        s = result["summary"]
        parts = []
        if "uv_gap" in s:
            parts.append(f"f = uv: from tr Hessian up to {s['uv_start_trace']:.3g}, every start "
                         f"ends within ||u| - |v|| <= {s['uv_gap']:.2g} of the flattest "
                         f"minimiser (late mean tr = {s['uv_trace']:.3g}, minimum 2)")
        if "ratio" in s:
            parts.append(f"net: after fitting tr Hessian = {s['trace_start']:.3g}; without "
                         f"label noise it ends at {s['trace_clean']:.3g} (loss "
                         f"{s['loss_clean']:.2g}), with sigma = {result['sigma']:.3g} at "
                         f"{s['trace_noisy']:.3g} (loss {s['loss_noisy']:.2g}): "
                         f"{s['ratio']:.2f}x")
        return "<br>".join(html.escape(p) for p in parts)
