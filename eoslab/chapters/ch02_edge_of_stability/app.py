"""Chapter 02's app: several step sizes trained live, sharpness rising to 2/eta and hovering.

The runs train in background threads (:class:`~eoslab.ui.base.BackgroundRunner`) through
:func:`eoslab.core.experiment.run`, so a config trained before comes back from the store at once;
history rows stream into the chart at most ``1/throttle`` times a second.
"""

from __future__ import annotations

import html
import threading

import ipywidgets as widgets
import numpy as np
import torch

from eoslab.chapters.presets import Preset, get_preset, preset_for
from eoslab.core.config import TrainConfig
from eoslab.core.experiment import run as run_experiment
from eoslab.core.store import RunStore
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

__all__ = ["EdgeOfStabilityApp", "edge_band", "eos_configs"]

CHAPTER = "02"
_CONFIG_KEYS = ("dataset", "n_train", "model", "width", "depth", "loss", "optimizer", "steps",
                "record_every", "sharpness_every")


def eos_configs(preset, lr: float | None = None, momentum: float | None = None) -> list:
    """One :class:`TrainConfig` per step size ``lr * ratio`` of the preset (largest first)."""
    lr = preset["lr"] if lr is None else lr
    momentum = preset["momentum"] if momentum is None else momentum
    fields = {k: preset[k] for k in _CONFIG_KEYS}
    return [TrainConfig(lr=round(lr * r, 6), momentum=momentum, **fields)
            for r in sorted(preset["lr_ratios"], reverse=True)]


def edge_band(history, lr: float, momentum: float = 0.0, last: float = 0.5):
    """``(min, median, max)`` of sharpness / ((2+2beta)/eta) over the last part of a run.

    ``last`` is the fraction of the recorded steps looked at; ``None`` if no sharpness
    was recorded there.

    >>> rows = [{"step": s, "sharpness": v} for s, v in [(0, 1.0), (10, 4.0), (20, 4.4)]]
    >>> edge_band(rows, 0.5, last=0.5)
    (1.0, 1.05, 1.1)
    """
    if not 0 < last <= 1:
        raise ValueError(f"last={last!r} is not allowed; use a fraction in (0, 1]")
    steps = [r["step"] for r in history]
    if not steps:
        return None
    cut = steps[-1] - last * (steps[-1] - steps[0])
    edge = (2 + 2 * momentum) / lr
    ratios = [r["sharpness"] / edge for r in history
              if r["step"] >= cut and r.get("sharpness") is not None]
    if not ratios:
        return None
    return (round(float(min(ratios)), 6), round(float(np.median(ratios)), 6),
            round(float(max(ratios)), 6))



def _resolve(preset) -> Preset:
    """A :class:`Preset` as given, a preset name, or ``None`` for :func:`preset_for`."""
    if isinstance(preset, Preset):
        return preset
    return get_preset(CHAPTER, preset) if preset else preset_for(CHAPTER)


class EdgeOfStabilityApp(RunLifecycle):
    """Step size and momentum sliders, Run/Stop, progress, status and the live EoS figure.

    The step-size slider sets the largest eta; the preset's ``lr_ratios`` give the others
    (default: eta, 2/3 eta, 1/2 eta).  CSS classes: ``eoslab-preset``, ``eoslab-lr-slider``,
    ``eoslab-momentum-slider``, ``eoslab-run``, ``eoslab-stop``, ``eoslab-progress``,
    ``eoslab-status``, ``eoslab-chart``.

    The step sizes train one after another, largest first, in one background thread.
    ``parallel=True`` trains them in one thread each instead, which only works without
    the sharpness probe: ``torch.func.jvp`` (the Hessian-vector products) keeps its
    forward-AD level in process-wide state, and two threads computing products at once
    fail with "no level exists".  ``torch_threads`` caps torch's intra-op threads in the
    training thread (``None``: leave torch's setting); one is the default because on a
    shared 2-core machine two threads were measured 8x slower than one (311 s against
    37 s for the quick preset under load).

    Attributes:
        histories: ``{lr: rows}`` of the runs shown.
        results: ``{lr: Run}`` of the last finished job.
    """

    def __init__(self, preset: str | None = None, store: RunStore | None | bool = None,
                 chart_mode: str = "auto", throttle: float = 0.2, parallel: bool = False,
                 auto_run: bool = True, torch_threads: int | None = 1):
        self.preset = _resolve(preset)
        self.store, self.parallel, self.auto_run = store, parallel, auto_run
        self.torch_threads = torch_threads
        self.histories: dict[float, list] = {}
        self.results: dict = {}
        self._lock = threading.Lock()
        self.preset_menu = preset_dropdown(CHAPTER, self.preset.name)
        self.lr = slider("largest step size eta", self.preset["lr"], 0.01,
                         max(2.5, 2 * self.preset["lr"]), 0.01,
                         "eoslab-lr-slider", continuous=False)
        self.momentum = slider("momentum beta", self.preset["momentum"], 0.0, 0.9, 0.05,
                               "eoslab-momentum-slider", continuous=False)
        self.controls = RunControls()
        self.runner = BackgroundRunner(on_error=self._on_error)
        self.chart = LiveChart(plots.eos_chart({}, self.momentum.value), mode=chart_mode)
        self._layout_momentum = bool(self.momentum.value)
        self._draw_throttled = Throttle(self._draw, throttle)
        self.controls.run.on_click(lambda _: self.run())
        self.controls.stop.on_click(lambda _: self.stop())
        self.lr.observe(self._on_setting, names="value")
        self.momentum.observe(self._on_setting, names="value")
        self.preset_menu.observe(self._on_preset, names="value")
        needs = f"<br><i>needs: {html.escape(self.preset.needs)}</i>" if self.preset.needs else ""
        self.note = widgets.HTML(needs)
        self.widget = widgets.VBox([self.preset_menu, self.note,
                                    widgets.HBox([self.lr, self.momentum]), self.controls.box,
                                    self.controls.status, self.chart.widget])
        self.widget.add_class("eoslab-app")
        self.show_stored()

    # -- configs and the store -----------------------------------------------------------
    def configs(self) -> list:
        return eos_configs(self.preset, self.lr.value, self.momentum.value)

    def _store(self):
        return RunStore() if self.store is None else (self.store or None)

    def show_stored(self) -> int:
        """Draw the runs of the current settings that the store holds; returns how many."""
        store = self._store()
        found = {}
        for config in self.configs():
            stored = store.load_run(config) if store is not None else None
            if stored is not None:
                found[config.lr] = stored
        with self._lock:
            self.histories = {lr: list(r.history) for lr, r in found.items()}
        self.results = found
        self._draw()
        total = len(self.configs())
        if found:
            self.controls.say(self._summary(found) + (
                "" if len(found) == total else f"<br>{total - len(found)} more: press Run"))
        else:
            self.controls.say(f"{total} step size(s): press Run to train ({self.preset.label})")
        return len(found)

    # -- drawing and status ----------------------------------------------------------------
    def _draw(self, token: int | None = None) -> None:
        if token is not None and not self.runner.current(token):
            return
        with self._lock:
            snapshot = {lr: list(rows) for lr, rows in self.histories.items()}
        beta = self.momentum.value
        if bool(beta) != self._layout_momentum:  # titles name 2/eta or (2+2beta)/eta
            self._layout_momentum = bool(beta)
            self.chart.show(plots.eos_chart(snapshot, beta))
        else:
            self.chart.update(plots.eos_data(snapshot, beta))

    def _summary(self, results: dict) -> str:
        lines = []
        beta = self.momentum.value
        for lr in sorted(results, reverse=True):
            res = results[lr]
            label = plots.run_label(lr, beta)
            sharp = [r["sharpness"] for r in res.history if r.get("sharpness") is not None]
            if res.status == "diverged":
                step, value = res.diverged_at
                text = describe_divergence(step, value, lr, sharp[-1] if sharp else None, beta)
            elif res.status == "stopped":
                text = f"stopped at step {res.steps_done}"
            else:
                band = edge_band(res.history, lr, beta)
                text = res.summary()
                if band is not None:
                    text += (f"; sharpness / edge over the second half: {band[0]:.2f} to "
                             f"{band[2]:.2f} (median {band[1]:.2f})")
            if res.extra.get("from_store"):
                text += " (from the store)"
            lines.append(f"<b>{html.escape(label)}</b>: {html.escape(text)}")
        return "<br>".join(lines)

    # -- running -----------------------------------------------------------------------
    def _job(self, stop: threading.Event, token: int) -> None:
        configs = self.configs()
        with self._lock:
            self.histories = {c.lr: [] for c in configs}
        done = {c.lr: 0 for c in configs}
        total = sum(c.steps for c in configs)
        if self.runner.current(token):
            self.controls.progress.max, self.controls.progress.value = total, 0
            self.controls.set_running(True)
            self.controls.say(f"training {len(configs)} run(s) ({self.preset.label}) ...")
        results: dict = {}

        def one(config):
            def on_row(row):
                with self._lock:
                    self.histories[config.lr].append(row)
                done[config.lr] = row["step"]
                if self.runner.current(token):
                    self.controls.progress.value = sum(done.values())
                    self._draw_throttled(token)

            before = torch.get_num_threads()
            if self.torch_threads:
                torch.set_num_threads(self.torch_threads)
            try:
                results[config.lr] = run_experiment(config, callbacks=[on_row], stop=stop,
                                                    store=self.store, reuse=True)
            finally:
                torch.set_num_threads(before)

        if self.parallel and len(configs) > 1:
            errors = []

            def guarded(config):
                try:
                    one(config)
                except BaseException as err:
                    errors.append(err)
                    stop.set()

            threads = [threading.Thread(target=guarded, args=(c,), daemon=True) for c in configs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
        else:
            for config in configs:
                one(config)
        if not self.runner.current(token):
            return
        self.results = results
        self._draw_throttled.flush()
        self._draw(token)
        self.controls.progress.value = total
        self.controls.set_running(False)
        self.controls.say(self._summary(results))

    def stop(self) -> None:
        self.runner.stop()
        self.controls.say("stopping ...")

    def _on_setting(self, _change) -> None:
        if self.runner.running:
            self.runner.stop()
        if not self.show_stored() < len(self.configs()):
            return
        if self.auto_run:
            self.run()

    def _on_preset(self, change) -> None:
        self.runner.stop()
        self.preset = get_preset(CHAPTER, change["new"])
        self.note.value = f"<br><i>needs: {html.escape(self.preset.needs)}</i>" \
            if self.preset.needs else ""
        for w, key in ((self.lr, "lr"), (self.momentum, "momentum")):
            w.unobserve(self._on_setting, names="value")
            w.value = self.preset[key]
            w.observe(self._on_setting, names="value")
        self.show_stored()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
