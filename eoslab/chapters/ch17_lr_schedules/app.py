"""Chapter 17's app: a schedule designer, sharpness vs 2/η(t), and the range test.

The figure shows the designed schedule, the sharpness following 2/η(t), the catapults
after warm restarts, and Smith's learning-rate range test.

The experiment (:mod:`eoslab.chapters.ch17_lr_schedules.experiment`) draws the designed
:math:`\\eta(t)` as soon as it starts, runs the range test (once per problem), then trains
full-batch GD with the sharpness every few steps, streaming into the chart; the app runs
it in the background with Stop, and settings trained before come back from the store.

The peak-step-size slider spans ``LR_SPAN`` times the preset's ``lr_edge`` (GD's edge
:math:`2/\\lambda_0` at the initialisation), and its description names the edge.

Example:
    >>> app = ScheduleApp("quick", store=False, chart_mode="svg", auto_run=False)
    >>> sorted(app.settings())
    ['gamma', 'low', 'lr', 'period', 'schedule']
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from eoslab.chapters.ch17_lr_schedules.charts import schedule_layout
from eoslab.chapters.ch17_lr_schedules.experiment import experiment
from eoslab.optimizers.schedules import edge_ratios
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import slider

__all__ = ["ScheduleApp"]

SCHEDULES = ("cosine-restarts", "triangular", "step", "cosine", "constant", "linear-warmup")


class ScheduleApp(ChapterApp):
    """Schedule menu, peak step size, period, low end and decay factor; Run/Stop; the figure.

    CSS classes: ``eoslab-app``, ``eoslab-preset``, ``eoslab-schedule-menu``,
    ``eoslab-lr-slider`` (the peak eta), ``eoslab-period-slider``, ``eoslab-low-slider``,
    ``eoslab-gamma-slider``, ``eoslab-run``, ``eoslab-stop``, ``eoslab-progress``,
    ``eoslab-status``, ``eoslab-chart``.
    """

    CHAPTER = "17"
    KIND = "schedule"
    LR_RANGE = (0.02, 2.0, 0.01)  # the step; the range comes from the edge (LR_SPAN)
    LR_SPAN = (0.1, 4.0)  # 0.1x to 4x the edge 2/lambda_0: stable, edge, catapult, diverged
    LR_LABEL = "peak step size η"
    LR_EDGE_LABEL = "peak η (edge {edge:.2g})"
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        p = self.preset
        schedule = widgets.Dropdown(options=SCHEDULES, value=p.schedule, description="schedule")
        schedule.add_class("eoslab-schedule-menu")
        period = widgets.IntSlider(value=p.period, min=10, max=p.training.steps, step=10,
                                   description="period (steps)", continuous_update=False,
                                   layout=widgets.Layout(width="480px"),
                                   style={"description_width": "160px"})
        period.add_class("eoslab-period-slider")
        return {
            "schedule": schedule,
            "period": period,
            "low": slider("lowest η / peak", p.low, 0.0, 1.0, 0.05, "eoslab-low-slider",
                          continuous=False),
            "gamma": slider("step decay γ", p.gamma, 0.1, 1.0, 0.05, "eoslab-gamma-slider",
                            continuous=False),
        }

    def slider_range(self, name: str, preset):
        if name == "period":
            return (10, preset.training.steps)
        return super().slider_range(name, preset)

    def layout(self, settings: dict):
        return schedule_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset.training.steps + self.preset.range_test.steps

    def describe(self, result: dict) -> str:
        lines = [state_line(result)]
        for c in result["catapults"]:
            lines.append(f"restart at step {c['step']}: sharpness {c['sharp_before']:.3g} "
                         f"vs new 2/η = {c['edge']:.3g}; loss spike x{c['spike']:.2f}, "
                         f"sharpness falls to {c['sharp_after']:.3g}")
        rt = result["range_test"]
        if rt["lrs"]:
            lines.append(f"range test: the loss falls from η ~ {rt['low']:.2g} and stops "
                         f"falling at η ~ {rt['high']:.2g} (steepest at {rt['steepest']:.2g})")
        return "<br>".join(html.escape(line) for line in lines)


_STATES = {"converged": "converged", "oscillating": "oscillating at the edge (S ≈ 2/η)",
           "training": "training (loss falling)", "not-training": "not training"}


def state_line(result: dict) -> str:
    """The first status line: the run's state (:func:`run_state`), then the loss and S/(2/η)."""
    history = result.get("history") or []
    if not history:
        return result.get("summary", "")
    first, last = history[0], history[-1]
    text = (f"{_STATES.get(result.get('state'), 'finished')}: loss {first['loss']:.3g} -> "
            f"{last['loss']:.3g} in {result['steps']} steps")
    ratios = edge_ratios(history[:-1])  # the last row holds θ_T with the next cycle's η
    if ratios:
        text += f"; at the end S = {ratios[-1][1]:.2f} x 2/η(t)"
    return text
