"""Chapter 03's app: the self-stabilisation cycle, GD tracking the constrained trajectory.

Damian, Nichani, Lee (ICLR 2023, arXiv 2209.15594).  The step-size slider and Run drive
:func:`~eoslab.chapters.ch03_self_stabilization.experiment.experiment`; the chart
(:func:`~eoslab.chapters.ch03_self_stabilization.charts.cycle_layout`) shows the sharpness of
GD and of the constrained run, the displacement :math:`|x|` along the top eigenvector and
:math:`y = S - 2/\\eta` measured beside the paper's predicted ones, the :math:`(|x|, y)`
phase portrait, the distance between the two trajectories, and the losses.

The slider spans :data:`LR_SPAN` times the preset's ``lr_edge`` (:math:`2/\\lambda_0`, the
step size at the stability threshold at initialisation); its label names the edge.

Usage (in a notebook)::

    from eoslab.chapters.ch03_self_stabilization.app import SelfStabilizationApp
    app = SelfStabilizationApp()  # preset: preset_for("03")
    app.run()  # trains in the background
    app
"""

from __future__ import annotations

import html

from eoslab.chapters.ch03_self_stabilization.charts import cycle_layout
from eoslab.chapters.ch03_self_stabilization.experiment import experiment
from eoslab.ui.app import ChapterApp

__all__ = ["LR_SPAN", "SelfStabilizationApp", "cycle_layout", "describe_cycle"]

#: the step-size slider spans this fraction below to this multiple above ``lr_edge``
LR_SPAN = (0.4, 1.6)


def _below_edge(result: dict) -> str:
    lr = result["lr"]
    rows = [r for r in result.get("history", []) if r.get("sharpness") is not None]
    losses = [r["loss"] for r in result.get("history", []) if r.get("loss") is not None]
    if len(losses) >= 2 and losses[-1] > 0.9 * losses[0]:
        return f"not training: loss {losses[0]:.3g} → {losses[-1]:.3g}"
    top = max((r["sharpness"] for r in rows), default=float("nan"))
    return (f"training below the edge: S reached {top:.3g} < 2/η = {2 / lr:.3g} in "
            f"{result['history'][-1]['step'] if result.get('history') else 0} steps, so GD "
            "and the constrained trajectory coincide; the cycle starts once S crosses 2/η")


def describe_cycle(result: dict) -> str:
    """The status of a finished run in words, from the quantities the panels show."""
    s, lr = result["summary"], result["lr"]
    if s is None:
        return _below_edge(result)
    text = (f"oscillating at the edge: S crosses 2/η = {2 / lr:.3g} at step "
            f"{s['entry_step']}, overshoots by y = {s['peak_y']:.3g} (step {s['peak_step']}) "
            f"while |x| grows to {s['max_abs_x']:.2g} ({s['blowups']} blow-up(s)), then "
            f"self-stabilises back to y = {s['return_y']:.2g}.")
    p = result.get("prediction")
    if p is not None:
        text += (f" Cubic model from step {p['start']}: peak y = {p['pred_peak_y']:.3g} at "
                 f"step {p['pred_peak_step']} (measured {p['peak_y']:.3g} at step "
                 f"{p['peak_step']}), back to y = 0 by step {p['pred_end']}.")
    return text + (f" θ† keeps S ≤ {s['dagger_max_ratio']:.3f} × 2/η; GD stays within "
                   f"{s['max_distance']:.3g} of it while travelling {s['travel']:.3g}.")


class SelfStabilizationApp(ChapterApp):
    """The step-size slider (``eoslab-lr-slider``), Run/Stop and the six panels."""

    CHAPTER = "03"
    KIND = "ch03_self_stabilization"
    LR_RANGE = (0.05, 4.0, 0.01)  # used only for a preset without ``lr_edge``
    LR_SPAN = LR_SPAN
    LR_LABEL = "step size η"
    LR_EDGE_LABEL = "step size η (edge 2/λ₀ ≈ {edge:.2g})"
    LR_LABEL_WIDTH, LR_WIDTH = "220px", "540px"
    experiment = staticmethod(experiment)

    def layout(self, settings: dict):
        return cycle_layout(settings["lr"], self.preset.steps)

    def layout_signature(self, settings: dict):
        return (settings["lr"], self.preset.steps)

    def total_work(self, settings: dict) -> int:
        return self.preset.steps

    def describe(self, result: dict) -> str:
        return html.escape(describe_cycle(result))

    def describe_diverged(self, result: dict) -> str:
        d = result["diverged"]
        lr = d["lr"]
        loss = "not finite" if d["loss"] >= 1e300 else f"{d['loss']:.2g}"
        text = (f"{d.get('stage', 'GD')} diverged at step {d['step']} (loss {loss}): η = "
                f"{lr:.3g} is too "
                f"large for this curvature (2/η = {2 / lr:.3g}); the panels show the steps "
                "before")
        return html.escape(text)
