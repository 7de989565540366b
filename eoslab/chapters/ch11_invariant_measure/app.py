"""Chapter 11's app: SGD's weights do not converge; their distribution does.

Zhang, Li, Sra, Jadbabaie (ICML 2022, arXiv 2110.06256).  A thin
:class:`~eoslab.ui.app.ChapterApp` over
:func:`~eoslab.chapters.ch11_invariant_measure.experiment.experiment`: the step size
(``eoslab-lr-slider``), the batch size (``eoslab-batch-slider``; at least the number of
examples is full-batch GD) and the weight decay (``eoslab-wd-slider``) set one SGD run;
the five panels of :func:`invariant_layout` show the loss, the full gradient norm, the
moves per window of the weights and of their distribution, path length against distance
from the start, and histograms of the weight entries.

Usage (in a notebook)::

    from eoslab.chapters.ch11_invariant_measure.app import InvariantMeasureApp
    app = InvariantMeasureApp()      # preset: preset_for("11")
    app.run()                        # trains in the background
    app
"""

from __future__ import annotations

import html

import altair as alt
import ipywidgets as widgets

from eoslab.chapters.ch11_invariant_measure.experiment import experiment
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import slider

__all__ = ["InvariantMeasureApp", "invariant_layout"]


def invariant_layout():
    """Loss | full gradient norm | per-window moves | path vs travel | weight histograms."""
    loss = alt.Chart(alt.Data(name="loss")).mark_line().encode(
        x="step:Q", y=alt.Y("v:Q", title="train loss", scale=alt.Scale(type="log"))
    ).properties(title="the loss settles")
    grad = alt.Chart(alt.Data(name="grad")).mark_line(point=True, color="#d62728").encode(
        x="step:Q", y=alt.Y("v:Q", title="‖∇L(θ) + λθ‖ (full batch)", scale=alt.Scale(type="log"))
    ).properties(title="... but the gradient does not go to zero")
    legend = {"move_rms": "weights θ (RMS move)", "w1": "their distribution (W₁)"}
    moves = alt.Chart(alt.Data(name="moves")).transform_calculate(
        what=f"datum.what == 'w1' ? '{legend['w1']}' : '{legend['move_rms']}'"
    ).mark_line().encode(
        x="step:Q", y=alt.Y("v:Q", title="moved in one window", scale=alt.Scale(type="log")),
        color=alt.Color("what:N", title="moved in a window")).properties(
        title="the weights keep moving, their distribution stops")
    names = {"path_rms": "path length", "travel_rms": "distance from start"}
    path = alt.Chart(alt.Data(name="paths")).transform_calculate(
        what=f"datum.what == 'path_rms' ? '{names['path_rms']}' : '{names['travel_rms']}'"
    ).mark_line().encode(
        x="step:Q", y=alt.Y("v:Q", title="RMS per coordinate"),
        color=alt.Color("what:N", title="since step 0", scale=alt.Scale(
            domain=list(names.values()), range=["#2ca02c", "#9467bd"]))).properties(
        title="path grows, distance from start levels off")
    hist = alt.Chart(alt.Data(name="hist")).mark_line().encode(
        x=alt.X("x:Q", title="weight entry θᵢ"), y=alt.Y("density:Q", title="density"),
        color=alt.Color("step:O", title="snapshot at step", scale=alt.Scale(scheme="viridis")),
    ).properties(title="distribution of the weight entries")
    panels = [p.properties(width=250, height=190) for p in (loss, grad, moves, path, hist)]
    rows = [alt.hconcat(*panels[:3]).resolve_scale(color="independent"),
            alt.hconcat(*panels[3:]).resolve_scale(color="independent")]
    return alt.vconcat(*rows).resolve_scale(color="independent").properties(
        datasets={"hist": [], "loss": [], "grad": [], "moves": [], "paths": []})


class InvariantMeasureApp(ChapterApp):
    """Step size (``eoslab-lr-slider``), batch size and weight decay; Run/Stop; the chart.

    The step-size slider spans ``LR_SPAN`` times the preset's ``lr_edge``
    (:math:`2/(\\lambda_{\\max} + \\lambda)` at initialisation): from a twentieth of it to
    twice it, where SGD blows up within a few steps.
    """

    CHAPTER = "11"
    KIND = "ch11_invariant_measure"
    LR_RANGE = (0.01, 3.0, 0.01)
    LR_SPAN = (0.05, 2.0)
    LR_EDGE_LABEL = "step size η (edge {edge:.2g})"
    LR_LABEL_WIDTH = "190px"
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        batch = widgets.IntSlider(value=self.preset.batch_size, min=1, max=500,
                                  description="batch size (>= n: GD)",
                                  continuous_update=False,
                                  layout=widgets.Layout(width="480px"),
                                  style={"description_width": "160px"})
        batch.add_class("eoslab-batch-slider")
        return {"batch_size": batch,
                "weight_decay": slider("weight decay λ", self.preset.weight_decay, 0.0, 0.05,
                                       0.001, "eoslab-wd-slider", continuous=False)}

    def layout(self, settings: dict):
        return invariant_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.steps

    def describe(self, result: dict) -> str:
        s = result["summary"]
        if s is None:
            return "too few records to judge; raise the number of steps"
        if s["loss_late"] > 0.9 * s["loss_start"]:
            state = "not training: the loss has not come down"
        elif s["loss_settle"] < 0.9:
            state = "still training: the loss is still falling (last quarter < 0.9 x third)"
        else:
            state = "the loss has settled"
        text = (f"SGD, η = {result['lr']:.3g}, batch {result['batch_size']}, weight decay "
                f"λ = {result['weight_decay']:.3g}: {state}. The loss fell from "
                f"{s['loss_start']:.3g} to {s['loss_late']:.3g} (last quarter / third quarter: "
                f"{s['loss_settle']:.2f}); the full gradient norm went from "
                f"{s['grad_start']:.3g} to {s['grad_late']:.3g} (last / third quarter "
                f"{s['grad_settle']:.2f}); each window the weights still move "
                f"{s['move_late']:.2g} RMS")
        if s.get("w1_drop") is not None:
            text += (f", while the distribution of the entries moves {s['w1_drop']:.2g}x as much "
                     f"as in the first window (W₁/move {s['ratio_first']:.2f} → "
                     f"{s['ratio_late']:.2f})")
        return html.escape(text)
