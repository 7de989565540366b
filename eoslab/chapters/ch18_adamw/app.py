"""Chapter 18's app: Adam + L2 vs AdamW on an (lr, lambda) grid, and Adam at its own edge of
stability (preconditioned sharpness near (2 + 2 beta1)/((1 - beta1) eta) = 38/eta).

The grid's lambda follows the preset's ``grid_decay`` convention (:mod:`eoslab.chapters.ch18_adamw.grid`): with
``"paper"`` AdamW shrinks the weights by eta_t * lambda per step whatever the learning rate.

One Run trains, in a background thread with Stop: first the full-batch Adam run of the
step-size slider (sharpness and preconditioned sharpness every few steps through
:class:`eoslab.curvature.sharpness.SharpnessProbe`), then the grid cell by cell
(:func:`eoslab.chapters.ch18_adamw.grid.run_grid`); every run goes through the store, so a grid trained before
is drawn at once.
"""

from __future__ import annotations

import html
import threading

import altair as alt
import ipywidgets as widgets
import numpy as np

from eoslab.chapters.ch02_edge_of_stability.app import edge_band
from eoslab.chapters.ch18_adamw.grid import (
    GridResult,
    best_per_lr,
    cell_of,
    grid_cells,
    optimum_spread,
    run_grid,
)
from eoslab.chapters.presets import Preset, get_preset, preset_for
from eoslab.core.config import TrainConfig
from eoslab.core.experiment import run as run_experiment
from eoslab.core.store import RunStore
from eoslab.curvature.sharpness import threshold
from eoslab.speed.threads import single_thread
from eoslab.ui import plots
from eoslab.ui.base import (
    BackgroundRunner,
    LiveChart,
    RunControls,
    RunLifecycle,
    Throttle,
    preset_dropdown,
    slider,
)

__all__ = [
    "AdamWApp",
    "adam_eos_config",
    "adamw_chart",
    "adamw_data",
    "grid_base",
    "grid_runs",
    "precond_band",
]

CHAPTER = "18"
W, H = plots.WIDTH, plots.HEIGHT
NAMES = {"adam": "Adam + L2 (coupled)", "adamw": "AdamW (decoupled)"}
METRICS = {"test_loss": "final test loss", "test_acc": "final test accuracy"}
AXES = {"adam": "L2 coefficient lambda (gradient += lambda w)",
        "adamw": {"paper": "decay lambda (w shrinks by eta_t lambda per step)",
                  "torch": "weight_decay (w shrinks by lr_t wd per step)"}}


def adam_eos_config(preset, lr: float) -> TrainConfig:
    """Full-batch Adam on the preset's edge-of-stability problem."""
    p = preset
    return TrainConfig(dataset=p["dataset"], n_train=p["n_train"], model=p["model"],
                       width=p["width"], depth=p["depth"], loss=p["loss"], optimizer="adam",
                       lr=lr, betas=(p["beta1"], 0.999), steps=p["steps"],
                       record_every=p["record_every"], sharpness_every=p["sharpness_every"])


def grid_base(preset) -> TrainConfig:
    """The grid's base config (its optimiser, lr and weight decay are replaced per cell)."""
    p = preset
    return TrainConfig(dataset=p["grid_dataset"], n_train=p["grid_n_train"],
                       model=p["grid_model"], width=p["grid_width"], depth=p["grid_depth"],
                       loss=p["grid_loss"], batch_size=p["grid_batch"], steps=p["grid_steps"],
                       schedule=p.get("grid_schedule", "constant"), record_every=p["grid_steps"])


def grid_runs(preset) -> list:
    """The preset's grid as ``(cell, config)`` pairs (:func:`eoslab.chapters.ch18_adamw.grid.grid_cells`)."""
    p = preset
    return grid_cells(grid_base(p), p["grid_lrs"], p["grid_wds"], decay=p.get(
        "grid_decay", "torch"), seeds=p.get("grid_seeds", (0,)))


def precond_band(history, lr: float, beta1: float = 0.9, last: float = 0.5):
    """``(min, median, max)`` of precond_sharpness / (38/eta) over the last part of a run.

    >>> precond_band([{"step": 0, "precond_sharpness": 38.0}, {"step": 10,
    ...               "precond_sharpness": 76.0}], 1.0, last=0.5)
    (2.0, 2.0, 2.0)
    """
    edge = threshold("adam", lr, beta1)
    rows = [{"step": r["step"], "sharpness": r["precond_sharpness"] * 2 / (lr * edge)}
            for r in history if r.get("precond_sharpness") is not None]
    return edge_band(rows, lr, 0.0, last) if rows else None


def _heat(optimizer: str, metric: str, decay: str):
    color = alt.Color("value:Q", title=METRICS[metric], scale=alt.Scale(
        scheme="viridis", reverse=metric == "test_loss"))
    base = alt.Chart(alt.Data(name=f"grid_{optimizer}"))
    cells = base.mark_rect().encode(
        x=alt.X("wd:O", title=AXES[optimizer] if optimizer == "adam" else AXES[optimizer][
            decay]), y=alt.Y("lr:O", title="learning rate",
                                                                sort="descending"),
        color=color, tooltip=["lr:O", "wd:O", "value:Q", "status:N"])
    text = base.mark_text(fontSize=9).encode(x="wd:O", y=alt.Y("lr:O", sort="descending"),
                                             text=alt.Text("label:N"),
                                             color=alt.condition(alt.datum.ink == "white",
                                                                 alt.value("white"),
                                                                 alt.value("black")))
    return alt.layer(cells, text).properties(width=W - 40, height=H - 40,
                                             title=NAMES[optimizer] + " (*: best per row)")


def _layout(metric: str, decay: str = "paper"):
    heat = alt.hconcat(_heat("adam", metric, decay), _heat("adamw", metric, decay)).resolve_scale(
        color="shared")
    loss = alt.Chart(alt.Data(name="history")).mark_line(color="#d62728").encode(
        x=alt.X("step:Q"), y=alt.Y("loss:Q", scale=alt.Scale(type="log"), title="train loss")
    ).properties(width=W, height=H, title="full-batch Adam: train loss")
    kind = alt.Color("curve:N", title="curve")
    sharp = alt.Chart(alt.Data(name="sharpness")).mark_line(point=True).encode(
        x="step:Q", y=alt.Y("value:Q", scale=alt.Scale(type="log"), title="curvature"),
        color=kind)
    edge = alt.Chart(alt.Data(name="edge")).mark_rule(strokeDash=[6, 4]).encode(
        y="value:Q", color=kind)
    eos = alt.layer(sharp, edge).properties(
        width=W, height=H, title="preconditioned sharpness vs 38/eta")
    return alt.vconcat(heat, alt.hconcat(loss, eos))


def _ink(rows: list, metric: str) -> None:
    """Label colour per cell: white on the dark half of the shared viridis scale."""
    values = [r["value"] for r in rows if r["value"] is not None]
    mid = (min(values) + max(values)) / 2 if values else 0.0
    for r in rows:
        dark = r["value"] is not None and (r["value"] > mid if metric == "test_loss"
                                           else r["value"] < mid)
        r["ink"] = "white" if dark else "black"


def adamw_data(grid: GridResult, history, lr: float, beta1: float, metric: str) -> dict:
    """Datasets of :func:`adamw_chart`."""
    data = {}
    for opt in ("adam", "adamw"):
        best = dict(best_per_lr(grid, opt, metric, maximize=metric == "test_acc"))
        lrs, wds, table = grid.table(opt, metric)
        status = {(c["lr"], c["weight_decay"]): c["status"] for c in grid.cells
                  if c["optimizer"] == opt}
        rows = []
        for i, row_lr in enumerate(lrs):
            for j, wd in enumerate(wds):
                if (row_lr, wd) not in status:  # not trained yet
                    continue
                v = None if np.isnan(table[i, j]) else float(table[i, j])
                star = "*" if best.get(row_lr) == wd else ""
                rows.append({"lr": row_lr, "wd": wd, "value": v,
                             "status": status[(row_lr, wd)],
                             "label": "x" if v is None else f"{v:.2f}{star}"})
        data[f"grid_{opt}"] = rows
    _ink(data["grid_adam"] + data["grid_adamw"], metric)
    history = list(history)
    data["history"] = plots.rows({"step": [r["step"] for r in history],
                                  "loss": [r["loss"] for r in history]})
    sharp = []
    for name, key in (("preconditioned sharpness", "precond_sharpness"),
                      ("sharpness (raw)", "sharpness")):
        rows = [r for r in history if r.get(key) is not None]
        sharp += plots.rows({"step": [r["step"] for r in rows],
                             "value": [r[key] for r in rows]}, curve=name)
    data["sharpness"] = sharp
    data["edge"] = [{"curve": "38/eta" if beta1 == 0.9 else "(2+2b1)/((1-b1) eta)",
                     "value": threshold("adam", lr, beta1)}]
    return data


def adamw_chart(grid: GridResult, history=(), lr: float = 0.004, beta1: float = 0.9,
                metric: str = "test_loss", decay: str = "paper"):
    """The chapter-18 figure: the two heatmaps, Adam's loss and its preconditioned sharpness."""
    return plots.with_datasets(_layout(metric, decay),
                               adamw_data(grid, history, lr, beta1, metric))


def _resolve(preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    return get_preset(CHAPTER, preset) if preset else preset_for(CHAPTER)


class AdamWApp(RunLifecycle):
    """Adam's step size (for the edge-of-stability run), the heatmap metric, Run/Stop.

    CSS classes: ``eoslab-app``, ``eoslab-preset``, ``eoslab-lr-slider``,
    ``eoslab-metric-menu``, ``eoslab-run``, ``eoslab-stop``, ``eoslab-progress``,
    ``eoslab-status``, ``eoslab-chart``.

    Attributes:
        grid: the :class:`~eoslab.chapters.ch18_adamw.grid.GridResult` shown; ``result``: the Adam run.
    """

    def __init__(self, preset: str | None = None, store: RunStore | None | bool = None,
                 chart_mode: str = "auto", throttle: float = 0.25, auto_run: bool = True):
        self.preset = p = _resolve(preset)
        self.store, self.auto_run = store, auto_run
        self.grid, self.result, self.history = GridResult(), None, []
        self._lock = threading.Lock()
        self.preset_menu = preset_dropdown(CHAPTER, p.name)
        self.lr = slider("Adam step size eta", p["lr"], 0.001, 0.5, 0.001, "eoslab-lr-slider",
                         continuous=False, readout_format=".3f")
        self.metric = widgets.Dropdown(options=[(v, k) for k, v in METRICS.items()],
                                       value="test_loss", description="heatmaps")
        self.metric.add_class("eoslab-metric-menu")
        self.controls = RunControls()
        self.runner = BackgroundRunner(on_error=self._on_error)
        self.chart = LiveChart(self._figure(), mode=chart_mode)
        self._draw_throttled = Throttle(self._draw, throttle)
        self.controls.run.on_click(lambda _: self.run())
        self.controls.stop.on_click(lambda _: self.stop())
        self.lr.observe(self._on_setting, names="value")
        self.metric.observe(lambda _: self.chart.show(self._figure()), names="value")
        self.preset_menu.observe(self._on_preset, names="value")
        self.note = widgets.HTML(f"<i>needs: {html.escape(p.needs)}</i>" if p.needs else "")
        self.widget = widgets.VBox([self.preset_menu, self.note, self.lr, self.metric,
                                    self.controls.box, self.controls.status, self.chart.widget])
        self.widget.add_class("eoslab-app")
        self.show_stored()

    def _store(self):
        return RunStore() if self.store is None else (self.store or None)

    def eos_config(self) -> TrainConfig:
        return adam_eos_config(self.preset, self.lr.value)

    def _figure(self):
        with self._lock:
            rows = list(self.history)
        return adamw_chart(self.grid, rows, self.lr.value, self.preset["beta1"],
                           self.metric.value, self.preset.get("grid_decay", "torch"))

    def _draw(self, token: int | None = None) -> None:
        if token is not None and not self.runner.current(token):
            return
        with self._lock:
            rows = list(self.history)
        self.chart.update(adamw_data(self.grid, rows, self.lr.value, self.preset["beta1"],
                                     self.metric.value))

    def show_stored(self) -> bool:
        """Draw what the store holds for the current settings; whether all of it was there."""
        store, p = self._store(), self.preset
        found = store.load_run(self.eos_config()) if store is not None else None
        cells = GridResult()
        configs = grid_runs(p)
        for cell, config in configs:
            stored = store.load_run(config) if store is not None else None
            if stored is not None:
                cells.cells.append({**cell_of(cell, stored), "from_store": True})
        self.grid, self.result = cells, found
        with self._lock:
            self.history = list(found.history) if found is not None else []
        self._draw()
        complete = found is not None and len(cells.cells) == len(configs)
        if complete:
            self.controls.say(self._summary())
        else:
            self.controls.say(f"Adam at eta = {self.lr.value:.3g} and a grid of {len(configs)} "
                              f"runs: press Run to train ({html.escape(p.label)})")
        return complete

    def _summary(self) -> str:
        lines, res, lr = [], self.result, self.lr.value
        beta1 = self.preset["beta1"]
        if res is not None:
            if res.status == "diverged":
                step, value = res.diverged_at
                sharp = [r["precond_sharpness"] for r in res.history
                         if r.get("precond_sharpness") is not None]
                lines.append(f"Adam diverged at step {step}: loss {value:.2g} — eta = {lr:.3g} "
                             f"is too large (its edge is 38/eta = {38 / lr:.3g}"
                             + (f", last preconditioned sharpness {sharp[-1]:.3g})" if sharp
                                else ")"))
            elif res.status == "stopped":
                lines.append(f"Adam stopped at step {res.steps_done}")
            else:
                band = precond_band(res.history, lr, beta1)
                text = "Adam " + res.summary()
                if band is not None:
                    text += (f"; preconditioned sharpness / (38/eta) over the second half: "
                             f"{band[0]:.2f} to {band[2]:.2f} (median {band[1]:.2f})")
                lines.append(text)
        metric = self.metric.value
        for opt in ("adam", "adamw"):
            best = best_per_lr(self.grid, opt, metric, maximize=metric == "test_acc")
            if not best:
                continue
            spread = optimum_spread(self.grid, opt, metric, maximize=metric == "test_acc",
                                    units="decades")
            pairs = ", ".join(f"lr {a:g}: {b:g}" for a, b in best if b is not None)
            lines.append(f"{NAMES[opt]}: best weight decay lambda per lr ({pairs}); it moves "
                         f"over {spread:.1f} decade(s) of lambda")
        return "<br>".join(html.escape(line) for line in lines)

    def _job(self, stop: threading.Event, token: int) -> None:
        with single_thread():  # small nets: one intra-op thread is faster (eoslab.speed.threads)
            self._train(stop, token)

    def _train(self, stop: threading.Event, token: int) -> None:
        p, config = self.preset, self.eos_config()
        n_cells = len(grid_runs(p))
        with self._lock:
            self.history = []
        if self.runner.current(token):
            self.controls.progress.max, self.controls.progress.value = config.steps + n_cells, 0
            self.controls.set_running(True)
            self.controls.say(f"training full-batch Adam at eta = {config.lr:.3g} ...")

        def on_row(row):
            with self._lock:
                self.history.append(row)
            if self.runner.current(token):
                self.controls.progress.value = row["step"]
                self._draw_throttled(token)

        self.result = run_experiment(config, callbacks=[on_row], stop=stop, store=self.store)
        if stop.is_set() or not self.runner.current(token):
            return
        with self._lock:
            self.history = list(self.result.history)
        self.grid = GridResult()

        def on_cell(cell, index, total):
            self.grid.cells.append(cell)
            if self.runner.current(token):
                self.controls.progress.value = config.steps + index + 1
                self.controls.say(f"training the grid: cell {index + 1} of {total} ...")
                self._draw_throttled(token)

        self.grid = run_grid(grid_base(p), p["grid_lrs"], p["grid_wds"], store=self.store,
                             decay=p.get("grid_decay", "torch"), seeds=p.get("grid_seeds", (0,)),
                             on_cell=on_cell, stop=stop)
        if not self.runner.current(token):
            return
        self._draw_throttled.flush()
        self._draw(token)
        self.controls.progress.value = self.controls.progress.max
        self.controls.set_running(False)
        self.controls.say(self._summary())

    def _on_preset(self, change) -> None:
        self.runner.stop()
        self.preset = p = get_preset(CHAPTER, change["new"])
        self.note.value = f"<i>needs: {html.escape(p.needs)}</i>" if p.needs else ""
        self.lr.unobserve(self._on_setting, names="value")
        self.lr.value = p["lr"]
        self.lr.observe(self._on_setting, names="value")
        self.show_stored()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

