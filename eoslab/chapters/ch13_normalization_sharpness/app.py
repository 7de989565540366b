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

    The sharpness panel carries :math:`\\lVert w\\rVert^2\\lambda_{\\max}` (points), the
    curvature along GD's own step in the same units (thin line, BatchNorm + weight decay)
    and :math:`2/\\eta_{\\rm eff}` (dashed); the bottom row shows the three smoothness
    measures along the path, with and without BatchNorm.
    """
    color = alt.Color("run:N", title="GD run", scale=alt.Scale(
        domain=list(RUNS.values()), range=["#d62728", "#1f77b4", "#7f7f7f"]),
        legend=alt.Legend(orient="bottom", columns=1))

    def data(field):  # one dataset per quantity: its finite positive values (panel_data)
        return alt.Chart(alt.Data(name=field)).encode(x=alt.X("step:Q", title="step"))

    def line(field, title, heading, log=True, points=False):
        return data(field).mark_line(point=points).encode(
            y=alt.Y("v:Q", title=title, scale=alt.Scale(type="log") if log else alt.Undefined),
            color=color).properties(title=heading, width=250, height=180)

    edge = data("sph_edge").mark_line(strokeDash=[5, 3], opacity=0.7).encode(
        y="v:Q", color=color)
    along = data("step_sharpness").mark_line(strokeWidth=1, opacity=0.6).encode(
        y="v:Q", color=color)
    sph = alt.layer(line("spherical_sharpness", "‖w‖² λmax (spherical sharpness)",
                         ["‖w‖² λmax (points), along the step (thin)",
                          "dashed: 2 / (η/‖w‖²), the edge"], points=True), along, edge)
    top = alt.hconcat(line("loss", "train loss (MSE)", "train loss"), sph,
                      line("eff_lr", "η / ‖w‖²", "effective step size η/‖w‖²"))
    bottom = alt.hconcat(
        line("grad_predictiveness", "max over s of ‖g(w) − g(w − sηg)‖",
             "gradient predictiveness (lower: smoother)"),
        alt.layer(line("beta_smoothness", "max over s of ‖Δg‖ / ‖step‖",
                       "effective β-smoothness (black dashed: 2/η)"),
                  data("beta_edge").mark_line(color="black", strokeDash=[5, 3]).encode(
                      y="v:Q")),
        line("loss_variation", "max − min of L along the step",
             "loss variation along the step"))
    return alt.vconcat(top, bottom).resolve_scale(y="independent")


class NormalizationSharpnessApp(ChapterApp):
    """Step size (``eoslab-lr-slider``) and weight decay (``eoslab-wd-slider``); Run/Stop; chart.

    The step-size slider spans ``LR_SPAN`` times the preset's ``lr_edge``
    (:math:`2/\\lambda_{\\max}` of the BatchNorm net at initialisation): from a tenth of it,
    where GD starts stable, to 30 times it, where the net without BatchNorm blows up and the
    BatchNorm nets still train.
    """

    CHAPTER = "13"
    KIND = "ch13_normalization_sharpness"
    LR_RANGE = (0.01, 10.0, 0.01)
    LR_SPAN = (0.1, 30.0)
    LR_EDGE_LABEL = "step size η (edge {edge:.2g})"
    LR_LABEL_WIDTH = "190px"
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        return {"wd": slider("weight decay λ", self.preset.wd, 0.0, 0.05, 0.001,
                             "eoslab-wd-slider", continuous=False)}

    def layout(self, settings: dict):
        return normalization_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.steps * len(RUNS)

    def _states(self, result: dict) -> str:
        return "; ".join(f"{RUNS[n]}: {r.get('state', r['status'])}"
                         for n, r in result.get("runs", {}).items())

    def describe_diverged(self, result: dict) -> str:
        return html.escape(f"{divergence_text(result)}. Runs: {self._states(result)}")

    def describe(self, result: dict) -> str:
        s = result["summary"]
        parts = [f"η = {result['lr']:.3g}. Runs: {self._states(result)}"]
        wd, bn = s.get("bn_wd"), s.get("bn")
        if wd and bn and wd["sph_end"] is not None and bn["sph_end"] is not None:
            text = (f"spherical sharpness ‖w‖²λmax: with weight decay {wd['sph_start']:.3g} → "
                    f"{wd['sph_end']:.3g} ({1 / wd['sph_ratio']:.3g}x lower), without "
                    f"{bn['sph_start']:.3g} → {bn['sph_end']:.3g}")
            if wd["test_acc"] is not None and bn["test_acc"] is not None:
                text += f"; test accuracy {wd['test_acc']:.3f} vs {bn['test_acc']:.3f}"
            if wd.get("step_edge") is not None and wd.get("lmax_edge") is not None:
                text += (f". Second half, with weight decay: η × curvature along the step "
                         f"{wd['step_edge']:.2f}, η λmax {wd['lmax_edge']:.2f} (2 = the edge)")
            parts.append(text)
        if s.get("grad_predictiveness_init_ratio") is not None:
            parts.append(
                "without BatchNorm, at initialisation the gradient change along the step is "
                f"{s['grad_predictiveness_init_ratio']:.3g}x, the loss variation "
                f"{s['loss_variation_init_ratio']:.3g}x and the β-smoothness "
                f"{s['beta_smoothness_init_ratio']:.3g}x those with BatchNorm; over the whole "
                f"run the medians are {s['grad_predictiveness_ratio']:.3g}x, "
                f"{s['loss_variation_ratio']:.3g}x and {s['beta_smoothness_ratio']:.3g}x, with "
                f"median β-smoothness {s['beta_smoothness_plain']:.3g} (no BN) and "
                f"{s['beta_smoothness_bn']:.3g} (BN) against 2/η = {2 / result['lr']:.3g}")
        return "<br>".join(html.escape(p) for p in parts)
