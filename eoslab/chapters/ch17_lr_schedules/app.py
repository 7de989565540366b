"""Chapter 17's app: a schedule designer, sharpness following 2/eta(t), catapults after warm
restarts, and Smith's learning-rate range test.

The designer's curve :math:`\\eta(t)` is recomputed at once on every control change
(:func:`eoslab.optimizers.schedules.schedule_curve`, the scheduler training will use).  Training (full
batch GD with the sharpness every few steps) runs through :func:`eoslab.core.experiment.run` in a
background thread with Stop, so settings trained before come back from the store at once;
the range test runs once per preset in the same job and is kept in the store too.
"""

from __future__ import annotations

import html
import threading

import altair as alt
import ipywidgets as widgets

from eoslab.chapters.presets import Preset, get_preset, preset_for
from eoslab.core.config import TrainConfig
from eoslab.core.experiment import run as run_experiment
from eoslab.core.store import RunStore
from eoslab.optimizers.schedules import (
    RangeTest,
    catapults,
    designer_options,
    lr_range_test,
    schedule_curve,
)
from eoslab.speed.threads import single_thread
from eoslab.ui import plots
from eoslab.ui.base import (
    BackgroundRunner,
    LiveChart,
    RunControls,
    RunLifecycle,
    Throttle,
    describe_divergence,
    preset_dropdown,
    slider,
)

__all__ = ["ScheduleApp", "schedule_chart", "schedule_config", "schedule_data"]

CHAPTER = "17"
W, H = plots.WIDTH, plots.HEIGHT
_KEYS = ("dataset", "n_train", "model", "width", "depth", "loss", "optimizer", "steps",
         "record_every", "sharpness_every")
SCHEDULES = ("cosine-restarts", "triangular", "step", "cosine", "constant", "linear-warmup")


def schedule_config(preset, schedule: str, lr: float, period: int, low: float,
                    gamma: float) -> TrainConfig:
    """The :class:`TrainConfig` of one designed schedule on the preset's problem."""
    return TrainConfig(lr=lr, schedule=schedule,
                       schedule_options=designer_options(schedule, lr, period, low, gamma),
                       **{k: preset[k] for k in _KEYS})


def _layout():
    step = alt.X("step:Q", title="step t")
    eta = alt.Chart(alt.Data(name="curve")).mark_line(color="#1f77b4").encode(
        x=step, y=alt.Y("lr:Q", title="eta(t)")).properties(
        width=W, height=H, title="the schedule eta(t)")
    loss = alt.Chart(alt.Data(name="history")).mark_line(color="#d62728").encode(
        x=step, y=alt.Y("loss:Q", scale=alt.Scale(type="log"), title="train loss")).properties(
        width=W, height=H, title="train loss (spikes: catapults)")
    kind = alt.Color("curve:N", title="curve", scale=alt.Scale(
        domain=["sharpness", "2/eta(t)"], range=["#2ca02c", "#555555"]))
    edge = alt.Chart(alt.Data(name="edge")).mark_line(strokeDash=[6, 4]).encode(
        x=step, y=alt.Y("value:Q", scale=alt.Scale(type="log"), title="sharpness"), color=kind)
    sharp = alt.Chart(alt.Data(name="sharpness")).mark_line(point=True).encode(
        x=step, y=alt.Y("value:Q", scale=alt.Scale(type="log")), color=kind)
    sharpness = alt.layer(edge, sharp).properties(
        width=W, height=H, title="sharpness and 2/eta(t)")
    lr_axis = alt.X("lr:Q", scale=alt.Scale(type="log"), title="learning rate (log)")
    rng = alt.Chart(alt.Data(name="range")).mark_line(color="#9467bd").encode(
        x=lr_axis, y=alt.Y("loss:Q", scale=alt.Scale(type="log"), title="loss"),
        strokeDash=alt.StrokeDash("series:N", title="series"))
    band = alt.Chart(alt.Data(name="suggested")).mark_rect(opacity=0.15, color="#9467bd").encode(
        x="low:Q", x2="high:Q")
    range_test = alt.layer(band, rng).properties(
        width=W, height=H, title="LR range test (shaded: suggested range)")
    return alt.vconcat(alt.hconcat(eta, range_test), alt.hconcat(loss, sharpness))


def schedule_data(curve, history, range_test: RangeTest | None) -> dict:
    """Datasets of :func:`schedule_chart`."""
    history = list(history)
    sharp = [r for r in history if r.get("sharpness") is not None]
    data = {"curve": plots.rows({"step": range(len(curve)), "lr": curve}),
            "history": plots.rows({"step": [r["step"] for r in history],
                                   "loss": [r["loss"] for r in history]}),
            "edge": plots.rows({"step": range(len(curve)), "value": [2 / v for v in curve]},
                               curve="2/eta(t)"),
            "sharpness": plots.rows({"step": [r["step"] for r in sharp],
                                     "value": [r["sharpness"] for r in sharp]},
                                    curve="sharpness"),
            "range": [], "suggested": []}
    if range_test is not None and range_test.lrs:
        data["range"] = (plots.rows({"lr": range_test.lrs, "loss": range_test.losses},
                                    series="loss")
                         + plots.rows({"lr": range_test.lrs, "loss": range_test.smoothed},
                                      series="smoothed"))
        data["suggested"] = [{"low": range_test.low, "high": range_test.high}]
    return data


def schedule_chart(curve, history=(), range_test: RangeTest | None = None):
    """The chapter-17 figure: eta(t), the range test, the loss, and sharpness vs 2/eta(t)."""
    return plots.with_datasets(_layout(), schedule_data(curve, history, range_test))


def _resolve(preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    return get_preset(CHAPTER, preset) if preset else preset_for(CHAPTER)


class ScheduleApp(RunLifecycle):
    """Schedule menu, peak step size, period, low end and decay factor; Run/Stop; the figure.

    CSS classes: ``eoslab-app``, ``eoslab-preset``, ``eoslab-schedule-menu``,
    ``eoslab-lr-slider`` (the peak eta), ``eoslab-period-slider``, ``eoslab-low-slider``,
    ``eoslab-gamma-slider``, ``eoslab-run``, ``eoslab-stop``, ``eoslab-progress``,
    ``eoslab-status``, ``eoslab-chart``.

    Attributes:
        result: the last :class:`~eoslab.core.train.Run`; ``range_test``: the last
            :class:`~eoslab.optimizers.schedules.RangeTest`; ``history``: the rows shown.
    """

    def __init__(self, preset: str | None = None, store: RunStore | None | bool = None,
                 chart_mode: str = "auto", throttle: float = 0.25, auto_run: bool = True):
        self.preset = p = _resolve(preset)
        self.store, self.auto_run = store, auto_run
        self.history: list = []
        self.result = None
        self.range_test: RangeTest | None = None
        self._ranges: dict = {}
        self._lock = threading.Lock()
        self.preset_menu = preset_dropdown(CHAPTER, p.name)
        self.schedule = widgets.Dropdown(options=SCHEDULES, value=p["schedule"],
                                         description="schedule")
        self.schedule.add_class("eoslab-schedule-menu")
        self.lr = slider("peak step size eta", p["lr"], 0.02, 2.0, 0.01, "eoslab-lr-slider",
                         continuous=False)
        self.period = widgets.IntSlider(value=p["period"], min=10, max=p["steps"], step=10,
                                        description="period (steps)", continuous_update=False,
                                        layout=widgets.Layout(width="480px"),
                                        style={"description_width": "160px"})
        self.period.add_class("eoslab-period-slider")
        self.low = slider("lowest eta / peak", p["low"], 0.0, 1.0, 0.05, "eoslab-low-slider",
                          continuous=False)
        self.gamma = slider("step decay gamma", p["gamma"], 0.1, 1.0, 0.05, "eoslab-gamma-slider",
                            continuous=False)
        self.controls = RunControls()
        self.runner = BackgroundRunner(on_error=self._on_error)
        self.chart = LiveChart(schedule_chart(self.curve()), mode=chart_mode)
        self._draw_throttled = Throttle(self._draw, throttle)
        self.controls.run.on_click(lambda _: self.run())
        self.controls.stop.on_click(lambda _: self.stop())
        for w in self._knobs():
            w.observe(self._on_setting, names="value")
        self.preset_menu.observe(self._on_preset, names="value")
        self.note = widgets.HTML(f"<i>needs: {html.escape(p.needs)}</i>" if p.needs else "")
        self.widget = widgets.VBox([self.preset_menu, self.note, self.schedule, self.lr,
                                    self.period, self.low, self.gamma, self.controls.box,
                                    self.controls.status, self.chart.widget])
        self.widget.add_class("eoslab-app")
        self.show_stored()

    def _knobs(self):
        return (self.schedule, self.lr, self.period, self.low, self.gamma)

    # -- configs -----------------------------------------------------------------------
    def config(self) -> TrainConfig:
        return schedule_config(self.preset, self.schedule.value, self.lr.value,
                               self.period.value, self.low.value, self.gamma.value)

    def curve(self) -> list:
        c = self.config()
        return schedule_curve(c.schedule, c.lr, c.steps, c.schedule_options)

    def range_config(self) -> TrainConfig:
        p = self.preset
        return TrainConfig(lr=p["range_min"], batch_size=p["range_batch"],
                           **{k: p[k] for k in _KEYS if k not in ("sharpness_every",)}).replace(
            steps=p["range_steps"], sharpness_every=0)

    def _store(self):
        return RunStore() if self.store is None else (self.store or None)

    def _stored_range(self):
        store = self._store()
        blob = store.load_json("range", self.range_config().key()) if store else None
        return RangeTest(**blob) if blob else None

    def show_stored(self) -> bool:
        """Draw the stored run of the current settings, if any; returns whether found."""
        store = self._store()
        found = store.load_run(self.config()) if store is not None else None
        self.range_test = self._stored_range() or self.range_test
        with self._lock:
            self.history = list(found.history) if found is not None else []
        self.result = found
        self._draw()
        if found is not None:
            found.extra["from_store"] = True
            self.controls.say(self._summary())
        else:
            self.controls.say(f"{self.schedule.value}, peak eta = {self.lr.value:.3g}: press Run "
                              f"to train ({html.escape(self.preset.label)})")
        return found is not None

    # -- drawing and status ------------------------------------------------------------
    def _draw(self, token: int | None = None) -> None:
        if token is not None and not self.runner.current(token):
            return
        with self._lock:
            rows = list(self.history)
        self.chart.update(schedule_data(self.curve(), rows, self.range_test))

    def _summary(self) -> str:
        res, lines = self.result, []
        if res is None:
            return ""
        sharp = [r["sharpness"] for r in res.history if r.get("sharpness") is not None]
        if res.status == "diverged":
            step, value = res.diverged_at
            lines.append(describe_divergence(step, value, self.lr.value,
                                             sharp[-1] if sharp else None))
        elif res.status == "stopped":
            lines.append(f"stopped at step {res.steps_done}")
        else:
            lines.append(res.summary())
            for c in catapults(res.history):
                if c["sharp_before"] is None or c["sharp_after"] is None:
                    continue
                lines.append(f"restart at step {c['step']}: sharpness {c['sharp_before']:.3g} "
                             f"vs new 2/eta = {c['edge']:.3g}; loss spike x{c['spike']:.2f}, "
                             f"sharpness falls to {c['sharp_after']:.3g}")
        if res.extra.get("from_store"):
            lines[0] += " (from the store)"
        rt = self.range_test
        if rt is not None and rt.lrs:
            lines.append(f"range test: the loss falls from eta ~ {rt.low:.2g} and stops falling "
                         f"at eta ~ {rt.high:.2g} (steepest at {rt.steepest:.2g})")
        return "<br>".join(html.escape(line) for line in lines)

    # -- running -----------------------------------------------------------------------
    def _job(self, stop: threading.Event, token: int) -> None:
        with single_thread():  # small nets: one intra-op thread is faster (eoslab.speed.threads)
            self._train(stop, token)

    def _train(self, stop: threading.Event, token: int) -> None:
        config = self.config()
        p = self.preset
        with self._lock:
            self.history = []
        if self.runner.current(token):
            self.controls.progress.max = config.steps + p["range_steps"]
            self.controls.progress.value = 0
            self.controls.set_running(True)
        key = self.range_config().key()
        if key not in self._ranges:
            stored = self._stored_range()
            if stored is None:
                if self.runner.current(token):
                    self.controls.say("training: LR range test ...")
                stored = lr_range_test(self.range_config(), p["range_min"], p["range_max"],
                                       p["range_steps"], stop=stop)
                if stop.is_set():
                    return
                store = self._store()
                if store is not None:
                    store.save_json("range", key, stored.to_json())
            self._ranges[key] = stored
        self.range_test = self._ranges[key]
        self.controls.progress.value = p["range_steps"]
        if self.runner.current(token):
            self.controls.say(f"training {config.schedule} ({self.preset.label}) ...")

        def on_row(row):
            with self._lock:
                self.history.append(row)
            if self.runner.current(token):
                self.controls.progress.value = p["range_steps"] + row["step"]
                self._draw_throttled(token)

        result = run_experiment(config, callbacks=[on_row], stop=stop, store=self.store,
                                reuse=True)
        if not self.runner.current(token):
            return
        self.result = result
        with self._lock:
            self.history = list(result.history)
        self._draw_throttled.flush()
        self._draw(token)
        self.controls.progress.value = self.controls.progress.max
        self.controls.set_running(False)
        self.controls.say(self._summary())

    def _on_preset(self, change) -> None:
        self.runner.stop()
        self.preset = p = get_preset(CHAPTER, change["new"])
        self.note.value = f"<i>needs: {html.escape(p.needs)}</i>" if p.needs else ""
        for w in self._knobs():
            w.unobserve(self._on_setting, names="value")
        self.period.max = p["steps"]
        self.schedule.value, self.lr.value, self.period.value = p["schedule"], p["lr"], p["period"]
        self.low.value, self.gamma.value = p["low"], p["gamma"]
        for w in self._knobs():
            w.observe(self._on_setting, names="value")
        self.range_test = None
        self.show_stored()

    def set(self, **values) -> None:
        """Move controls by name (``schedule``, ``lr``, ``period``, ``low``, ``gamma``)."""
        for name, value in values.items():
            if name not in ("schedule", "lr", "period", "low", "gamma"):
                raise ValueError(f"unknown control {name!r}; allowed: schedule, lr, period, "
                                 "low, gamma")
            getattr(self, name).value = value

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
