"""Chapter 18's app: Adam + L2 vs AdamW on an (lr, λ) grid, and Adam's own edge.

Full-batch Adam's preconditioned sharpness settles near (2 + 2 β₁)/((1 - β₁) η) = 38/η.

The step-size slider has no ``lr_edge``: Adam's threshold bounds the *preconditioned*
sharpness :math:`\\lambda_{\\max}(P^{-1}H)` with :math:`P = \\mathrm{diag}(\\sqrt{\\hat v}
+ \\epsilon)`, and :math:`\\hat v` is built from the gradients along the run, so no
threshold can be read off the initial network the way :math:`2/\\lambda_0` is for GD; the
slider keeps ``LR_RANGE`` and the chart draws the edge 38/η of the chosen step size.

A thin :class:`~eoslab.ui.app.ChapterApp` over
:func:`eoslab.chapters.ch18_adamw.experiment.experiment` (Loshchilov & Hutter, ICLR 2019,
arXiv 1711.05101; Cohen et al., arXiv 2207.14484). The grid's lambda follows the preset's
``grid.decay`` convention (:mod:`eoslab.chapters.ch18_adamw.grid`): with ``"paper"`` AdamW
shrinks the weights by eta_t * lambda per step whatever the learning rate.

Usage (in a notebook)::

    app = AdamWApp("quick", store=False)
    app.set(lr=0.002, metric="test_acc")
    app
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from eoslab.chapters.ch18_adamw.charts import METRICS, NAMES, adamw_layout
from eoslab.chapters.ch18_adamw.experiment import experiment, grid_runs
from eoslab.ui.app import ChapterApp
from eoslab.ui.status import format_value, phrase, result_state

__all__ = ["AdamWApp"]


def _adam_line(adam: dict, lr: float) -> str:
    """The Adam run in words: its divergence, or its preconditioned sharpness band."""
    if adam["status"] == "diverged":
        info, sharp = adam["diverged"], adam["last_precond_sharpness"]
        return (f"the edge-of-stability Adam run diverged at step {info['step']} (loss "
                f"{format_value(info['loss'])}): η = {lr:.3g} is too large (its edge is "
                f"38/η = {adam['edge']:.3g}"
                + (f", last preconditioned sharpness {sharp:.3g})" if sharp is not None
                   else ")") + "; the grid ran all the same")
    if adam["status"] == "stopped":
        return f"Adam stopped at step {adam['steps_done']}"
    words = {"oscillating": "at its edge (oscillating)", "training": "training",
             "converged": "converged", "not-training": "not training"}
    history = adam.get("history") or []
    text = f"Adam {words.get(adam.get('state'), 'finished')}"
    if len(history) >= 2:
        text += (f": loss {history[0]['loss']:.3g} -> {history[-1]['loss']:.3g} in "
                 f"{adam['steps_done']} steps")
    if adam["band"] is not None:
        low, median, high = adam["band"]
        text += (f"; preconditioned sharpness / (38/η) over the second half: "
                 f"{low:.2f} to {high:.2f} (median {median:.2f})")
    return text


class AdamWApp(ChapterApp):
    """Adam's step size (for the edge-of-stability run), the heatmap metric, Run/Stop.

    CSS classes: ``eoslab-app``, ``eoslab-preset``, ``eoslab-lr-slider``,
    ``eoslab-metric-menu``, ``eoslab-run``, ``eoslab-stop``, ``eoslab-progress``,
    ``eoslab-status``, ``eoslab-chart``. The metric menu redraws the heatmaps' colour
    scale (:meth:`layout_signature`).

    Attributes:
        lr, metric: the step-size slider and the metric menu (``sliders[...]``).
    """

    CHAPTER = "18"
    KIND = "ch18_adamw"
    # every preset's lr (0.004) lies strictly inside, four steps above the bottom, so the
    # slider's Home key moves it; Adam's edge 38/η is not known before the run (module docs)
    LR_RANGE = (0.001, 0.5, 0.001)
    LR_LABEL = "Adam step size η"
    LR_READOUT = ".3f"
    experiment = staticmethod(experiment)

    @property
    def lr(self):
        return self.sliders["lr"]

    @property
    def metric(self):
        return self.sliders["metric"]

    def make_sliders(self) -> dict:
        menu = widgets.Dropdown(options=[(v, k) for k, v in METRICS.items()],
                                value="test_loss", description="heatmaps")
        menu.add_class("eoslab-metric-menu")
        return {"metric": menu}

    def layout(self, settings: dict):
        return adamw_layout(settings["metric"], self.preset.grid.decay)

    def layout_signature(self, settings: dict) -> tuple:
        return settings["metric"], self.preset.grid.decay

    def total_work(self, settings: dict) -> int:
        return self.preset.eos.steps + len(grid_runs(self.preset))

    def describe(self, result: dict) -> str:
        # the state first (the status's class says the same), then which part did what
        lines = [f"{phrase(result_state(result))} — {_adam_line(result['adam'], result['lr'])}"]
        for opt, found in result["optimum"].items():
            pairs = ", ".join(f"lr {a:g}: {b:g}" for a, b in found["best"] if b is not None)
            lines.append(f"{NAMES[opt]}: best weight decay λ per lr ({pairs}); it moves "
                         f"over {found['spread_decades']:.1f} decade(s) of λ")
        return "<br>".join(html.escape(line) for line in lines)
