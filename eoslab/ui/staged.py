"""A chapter app whose experiment runs in stages and ends in one JSON-ready result.

Chapters 14-16 (mode connectivity, SWA, SAM) each run a short pipeline (train, then
measure a landscape or an ensemble) rather than one training run.  :class:`StagedApp`
wires the shared pieces of :mod:`eoslab.ui.base` around such a pipeline:

* a preset dropdown, the step-size slider (``eoslab-lr-slider``) and the chapter's own
  sliders, Run / Stop, progress and a status line;
* the experiment in a :class:`~eoslab.ui.base.BackgroundRunner` thread, streaming partial
  datasets into one :class:`~eoslab.ui.base.LiveChart` (built once, datasets swapped);
* the final result stored under a hash of the preset and the settings
  (:func:`eoslab.core.store.result_key`), and shown at once when the same settings come back.

A subclass sets ``CHAPTER`` and ``KIND`` and implements :meth:`make_sliders`,
:meth:`layout`, :meth:`compute` and :meth:`describe`.  ``compute(settings, emit, stop)``
calls ``emit(datasets, done)`` with partial datasets and a progress count, and returns a
dict with at least ``"status"`` (``"finished"``, ``"diverged"`` or ``"stopped"``) and
``"datasets"``; a diverged result carries ``"diverged": {"step", "loss", "lr", "stage"}``.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable

import ipywidgets as widgets

from eoslab.chapters.presets import Preset, get_preset, preset_for
from eoslab.core.store import RunStore
from eoslab.core.store import result_key
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

__all__ = ["StagedApp", "divergence_text"]

Emit = Callable[[dict, int], None]


def divergence_text(result: dict) -> str:
    """The status sentence of a diverged result (names the stage that blew up).

    >>> divergence_text({"diverged": {"step": 12, "loss": 3e4, "lr": 5.0, "stage": "endpoint 1"}})
    'endpoint 1 diverged at step 12: loss 3e+04 — eta = 5 is too large for this curvature (2/eta = 0.4)'
    """
    info = result["diverged"]
    text = describe_divergence(int(info["step"]), float(info["loss"]), float(info["lr"]))
    return f"{info.get('stage', 'training')} {text}"


class StagedApp(RunLifecycle):
    """Base of the staged chapter apps (see the module docs).

    Attributes:
        result: the last finished (or stored) result dict, or ``None``.
        datasets: the chart's current datasets.
    """

    CHAPTER = ""
    KIND = ""
    LR_RANGE = (0.01, 1.0, 0.01)

    def __init__(self, preset: str | Preset | None = None, store: RunStore | None | bool = None,
                 chart_mode: str = "auto", throttle: float = 0.25, auto_run: bool = True):
        self.preset = self._resolve(preset)
        self.store, self.auto_run = store, auto_run
        self.result: dict | None = None
        self.datasets: dict = {}
        self._lock = threading.Lock()
        self.preset_menu = preset_dropdown(self.CHAPTER, self.preset.name)
        low, high, step = self.LR_RANGE
        self.lr = slider("step size eta", self.preset["lr"], low, high, step,
                         "eoslab-lr-slider", continuous=False)
        self.sliders: dict[str, widgets.Widget] = {"lr": self.lr, **self.make_sliders()}
        self.controls = RunControls()
        self.runner = BackgroundRunner(on_error=self._on_error)
        self.chart = LiveChart(self.layout(), mode=chart_mode)
        self.datasets = dict(self.chart.spec.get("datasets", {}))
        self._draw_throttled = Throttle(self._draw, throttle)
        self.controls.run.on_click(lambda _: self.run())
        self.controls.stop.on_click(lambda _: self.stop())
        for w in self.sliders.values():
            w.observe(self._on_setting, names="value")
        self.preset_menu.observe(self._on_preset, names="value")
        self.note = widgets.HTML(self._needs())
        rows = [widgets.HBox(list(self.sliders.values())[i:i + 2])
                for i in range(0, len(self.sliders), 2)]
        self.widget = widgets.VBox([self.preset_menu, self.note, *rows, self.controls.box,
                                    self.controls.status, self.chart.widget])
        self.widget.add_class("eoslab-app")
        self.show_stored()

    # -- to implement --------------------------------------------------------------------
    def make_sliders(self) -> dict:
        """The chapter's sliders beyond the step size (name -> widget)."""
        return {}

    def layout(self):
        """The chart (an Altair chart with empty named datasets)."""
        raise NotImplementedError

    def compute(self, settings: dict, emit: Emit, stop: threading.Event) -> dict:
        raise NotImplementedError

    def describe(self, result: dict) -> str:
        """The status line of a finished result (HTML allowed, escape your own text)."""
        raise NotImplementedError

    def total_work(self, settings: dict) -> int:
        """The progress bar's maximum for ``settings``."""
        return 1

    # -- settings and the store ----------------------------------------------------------
    def _resolve(self, preset) -> Preset:
        if isinstance(preset, Preset):
            return preset
        return get_preset(self.CHAPTER, preset) if preset else preset_for(self.CHAPTER)

    def _needs(self) -> str:
        return f"<i>needs: {html.escape(self.preset.needs)}</i>" if self.preset.needs else ""

    def settings(self) -> dict:
        """The current slider values (rounded as shown)."""
        return {k: round(float(w.value), 6) for k, w in self.sliders.items()}

    def key(self, settings: dict | None = None) -> str:
        return result_key(chapter=self.CHAPTER, preset=dict(self.preset.values),
                          settings=self.settings() if settings is None else settings)

    def _store(self):
        return RunStore() if self.store is None else (self.store or None)

    def show_stored(self) -> bool:
        """Draw the stored result of the current settings, if any; returns whether found."""
        store = self._store()
        blob = store.load_json(self.KIND, self.key()) if store is not None else None
        if blob is None:
            self.result = None
            self._set_datasets({k: [] for k in self.datasets})
            self.controls.say(f"press Run to train ({html.escape(self.preset.label)})")
            return False
        blob["from_store"] = True
        self._finish(blob)
        return True

    # -- drawing -------------------------------------------------------------------------
    def _set_datasets(self, datasets: dict) -> None:
        with self._lock:
            self.datasets = {**self.datasets, **datasets}
            snapshot = dict(self.datasets)
        self.chart.update(snapshot)

    def _draw(self, token: int | None = None) -> None:
        if token is not None and not self.runner.current(token):
            return
        with self._lock:
            snapshot = dict(self.datasets)
        self.chart.update(snapshot)

    def _status(self, result: dict) -> str:
        if result.get("status") == "diverged":
            text = html.escape(divergence_text(result))
        elif result.get("status") == "stopped":
            text = "stopped; press Run to train again"
        else:
            text = self.describe(result)
        if result.get("from_store"):
            text += " (from the store)"
        return text

    def _finish(self, result: dict) -> None:
        self.result = result
        self._set_datasets(result.get("datasets", {}))
        self.controls.say(self._status(result))

    # -- running -------------------------------------------------------------------------
    def _job(self, stop: threading.Event, token: int) -> None:
        settings = self.settings()
        total = self.total_work(settings)
        if self.runner.current(token):
            self.controls.progress.max, self.controls.progress.value = max(total, 1), 0
            self.controls.set_running(True)
            self.controls.say(f"training ({html.escape(self.preset.label)}) ...")
            self._set_datasets({k: [] for k in self.datasets})

        def emit(datasets: dict, done: int) -> None:
            if not self.runner.current(token):
                return
            with self._lock:
                self.datasets = {**self.datasets, **datasets}
            self.controls.progress.value = min(int(done), self.controls.progress.max)
            self._draw_throttled(token)

        result = self.compute(settings, emit, stop)
        if result.get("status") != "stopped":
            store = self._store()
            if store is not None:
                store.save_json(self.KIND, self.key(settings), result)
        if not self.runner.current(token):
            return
        self._draw_throttled.flush()
        self.controls.progress.value = self.controls.progress.max
        self.controls.set_running(False)
        self._finish(result)

    def stop(self) -> None:
        self.runner.stop()
        self.controls.say("stopping ...")

    def _on_preset(self, change) -> None:
        self.runner.stop()
        self.preset = get_preset(self.CHAPTER, change["new"])
        self.note.value = self._needs()
        for name, w in self.sliders.items():
            if name in self.preset.values:
                w.unobserve(self._on_setting, names="value")
                w.value = self.preset[name]
                w.observe(self._on_setting, names="value")
        self.show_stored()

    def set(self, **values) -> None:
        """Move sliders from Python as a reader would (each move reruns or restores)."""
        for name, value in values.items():
            if name not in self.sliders:
                raise ValueError(f"unknown control {name!r}; allowed: {', '.join(self.sliders)}")
            self.sliders[name].value = value

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
