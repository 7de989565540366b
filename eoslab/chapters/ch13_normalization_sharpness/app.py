"""Chapter 13's app: weight decay lowers the spherical sharpness; BatchNorm smooths the path.

Lyu, Li, Arora (NeurIPS 2022, arXiv 2206.07085) and Santurkar, Tsipras, Ilyas, Madry
(NeurIPS 2018, arXiv 1805.11604).  A thin :class:`~eoslab.ui.app.ChapterApp` over
:func:`~eoslab.chapters.ch13_normalization_sharpness.experiment.experiment`: the step size
(``eoslab-lr-slider``) and the weight decay (``eoslab-wd-slider``) set three GD runs (with
BatchNorm and weight decay, with BatchNorm only, without BatchNorm); the top row of
:func:`normalization_layout` shows the loss, the spherical sharpness and the effective
step, the bottom row the three smoothness measures along the step.

Usage (in a notebook)::

    from eoslab.chapters.ch13_normalization_sharpness.app import NormalizationSharpnessApp
    app = NormalizationSharpnessApp()      # preset: preset_for("13")
    app.run()                              # trains in the background
    app
"""

from __future__ import annotations

import html

import altair as alt

from eoslab.chapters.ch13_normalization_sharpness.experiment import RUNS, experiment
from eoslab.ui.app import ChapterApp, divergence_text
from eoslab.ui.base import slider

__all__ = ["NormalizationSharpnessApp", "normalization_layout"]


def normalization_layout():
    """Loss, spherical sharpness and effective step; below, smoothness along the step.

    The sharpness panel carries :math:`2/\\eta_{\\rm eff}` dashed; the bottom row shows the
    three smoothness measures along the path, with and without BatchNorm.
    """
    base = alt.Chart(alt.Data(name="history"))
    color = alt.Color("run:N", title="run", scale=alt.Scale(
        domain=list(RUNS.values()), range=["#d62728", "#1f77b4", "#7f7f7f"]))

    def line(field, title, heading, log=True, points=False):
        return base.mark_line(point=points).encode(
            x=alt.X("step:Q", title="step"),
            y=alt.Y(f"{field}:Q", title=title,
                    scale=alt.Scale(type="log") if log else alt.Undefined),
            color=color).transform_filter(
            f"isValid(datum.{field}) && datum.{field} > 0").properties(
            title=heading, width=250, height=180)

    edge = base.transform_filter("isValid(datum.eff_lr) && isValid(datum.spherical_sharpness)"
                                 ).transform_calculate(edge="2 / datum.eff_lr").mark_line(
        strokeDash=[5, 3], opacity=0.7).encode(x="step:Q", y="edge:Q", color=color)
    sph = alt.layer(line("spherical_sharpness", "||w||^2 * lambda_max",
                         "spherical sharpness (dashed: 2 / eff. step)", points=True), edge)
    top = alt.hconcat(line("loss", "train loss (MSE)", "train loss"), sph,
                      line("eff_lr", "eta / ||w||^2", "effective step size"))
    bottom = alt.hconcat(
        line("grad_predictiveness", "max ||g(w) - g(w - s eta g)||",
             "gradient predictiveness (lower: smoother)"),
        alt.layer(line("beta_smoothness", "max ||dg|| / ||step||",
                       "effective beta-smoothness (black: 2/eta)"),
                  base.mark_line(color="black", strokeDash=[5, 3]).encode(
                      x="step:Q", y="beta_edge:Q").transform_filter("isValid(datum.beta_edge)")),
        line("loss_variation", "max - min of L along the step",
             "loss variation along the step"))
    return alt.vconcat(top, bottom).properties(datasets={"history": []})


class NormalizationSharpnessApp(ChapterApp):
    """Step size (``eoslab-lr-slider``) and weight decay (``eoslab-wd-slider``); Run/Stop; chart."""

    CHAPTER = "13"
    KIND = "ch13_normalization_sharpness"
    LR_RANGE = (0.01, 10.0, 0.01)
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        return {"wd": slider("weight decay lambda", self.preset.wd, 0.0, 0.05, 0.001,
                             "eoslab-wd-slider", continuous=False)}

    def layout(self, settings: dict):
        return normalization_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.steps * len(RUNS)

    def describe_diverged(self, result: dict) -> str:
        fine = [RUNS[n] for n, r in result.get("runs", {}).items() if r["status"] == "finished"]
        text = divergence_text(result)
        if fine:
            text += f"; at the same eta these trained: {', '.join(fine)}"
        return html.escape(text)

    def describe(self, result: dict) -> str:
        s = result["summary"]
        parts = []
        wd, bn = s.get("bn_wd"), s.get("bn")
        if wd and bn and wd["sph_end"] is not None and bn["sph_end"] is not None:
            parts.append(
                f"spherical sharpness: with weight decay {wd['sph_start']:.3g} -> "
                f"{wd['sph_end']:.3g} ({1 / wd['sph_ratio']:.3g}x lower), without "
                f"{bn['sph_start']:.3g} -> {bn['sph_end']:.3g}; test accuracy "
                f"{wd['test_acc']:.3f} vs {bn['test_acc']:.3f}")
        if s.get("grad_predictiveness_init_ratio") is not None:
            parts.append(
                "without BatchNorm, at initialisation the gradient change along the step is "
                f"{s['grad_predictiveness_init_ratio']:.3g}x, the loss variation "
                f"{s['loss_variation_init_ratio']:.3g}x and the beta-smoothness "
                f"{s['beta_smoothness_init_ratio']:.3g}x those with BatchNorm; over the whole "
                f"run the medians are {s['grad_predictiveness_ratio']:.3g}x, "
                f"{s['loss_variation_ratio']:.3g}x and {s['beta_smoothness_ratio']:.3g}x, with "
                f"median beta-smoothness {s['beta_smoothness_plain']:.3g} (no BN) and "
                f"{s['beta_smoothness_bn']:.3g} (BN) against 2/eta = {2 / result['lr']:.3g}")
        return "<br>".join(html.escape(p) for p in parts) or "no probes recorded"
