"""The one app lifecycle that every chapter app follows.

A chapter app is a thin layer over its chapter's widget-free experiment: sliders name the
settings, the experiment turns ``(preset, settings)`` into a JSON-ready result, and the
app draws it. :class:`ChapterApp` owns everything else, once for all chapters:

* the preset dropdown (quick / default / paper) and what moving it does: every slider
  takes the new preset's value (and range, through :meth:`ChapterApp.slider_range`), and
  the step-size slider its label (:class:`~eoslab.ui.lr_slider.LrSlider`);
* Run / Stop, progress and status; the experiment in a background thread (never blocking
  the kernel), or in the calling thread with ``run(wait=True)`` (tests, ``EOSLAB_QUICK``);
* partial datasets streamed into one :class:`~eoslab.ui.base.LiveChart`, throttled;
* the result stored under :func:`eoslab.core.store.result_key` of chapter, preset and
  settings, and shown at once when those settings return.
* the export row under the chart: SVG, PNG, CSV, JSON and code of each final result.

A ``LIVE`` app (an exact, instant experiment: chapters 01, 19) recomputes on every move.

Every value a control sends is checked in the kernel before anything is computed with it
(:class:`~eoslab.ui.inputs.InputGuard`); a refused value is undone in place and the status
line says why. No exception leaves a widget callback: the status line names it instead.

A subclass sets ``CHAPTER``, ``KIND`` and ``experiment`` (and declares its step-size
slider, :mod:`eoslab.ui.lr_slider`) and implements ``make_sliders``,
``layout`` and ``describe``. The experiment is called as
``experiment(preset, settings, emit=emit, stop=stop)``; ``emit(datasets, done)`` streams
partial datasets and a progress count, and the returned dict has ``"status"``
(``"finished"``, ``"diverged"`` or ``"stopped"``) and ``"datasets"``; a diverged result
carries ``"diverged": {"step", "loss", "lr", "stage"}``.

Example:
    >>> def doubler(preset, settings, *, emit=None, stop=None):
    ...     return {"status": "finished", "datasets": {"points": [{"y": 2 * settings["lr"]}]}}
    >>> class DoublerApp(ChapterApp):
    ...     CHAPTER, KIND = "06", "doubler"
    ...     experiment = staticmethod(doubler)
    >>> DoublerApp.experiment(None, {"lr": 0.25})["datasets"]
    {'points': [{'y': 0.5}]}
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import ipywidgets as widgets

from eoslab.chapters.presets import get_preset, preset_for
from eoslab.core.store import RunStore, result_key
from eoslab.ui import edge, status
from eoslab.ui.base import (
    BackgroundRunner,
    LiveChart,
    RunControls,
    Throttle,
    divergence_text,
    preset_dropdown,
)
from eoslab.ui.export import ExportControls, offer_result
from eoslab.ui.inputs import InputGuard, choices, setting_value
from eoslab.ui.lr_slider import LrSlider
from eoslab.ui.plots import with_datasets

__all__ = ["ChapterApp", "Emit", "divergence_text"]

Emit = Callable[[dict, int], None]


class ChapterApp(LrSlider, InputGuard):
    """Base of every chapter app (see the module docs).

    Args:
        preset: a preset object, a preset name, or ``None`` for
            :func:`~eoslab.chapters.presets.preset_for` (quick under ``EOSLAB_QUICK``).
        store: a :class:`~eoslab.core.store.RunStore`, ``None`` for the user's store, or
            ``False`` to store nothing.
        chart_mode: ``"auto"``, ``"jupyter"`` or ``"svg"`` (see :class:`LiveChart`).
        throttle: the least time between two chart updates while a run streams, seconds.
        auto_run: whether moving a slider starts a new run when the store has none.

    Attributes:
        result: the last finished (or stored) result dict, or ``None``.
        datasets: the chart's current datasets.
        sliders: the controls by setting name (``"lr"`` first).
    """

    CHAPTER: ClassVar[str] = ""
    KIND: ClassVar[str] = ""
    LIVE: ClassVar[bool] = False
    experiment: ClassVar[Callable[..., dict] | None] = None

    def __init__(self, preset=None, store: RunStore | None | bool = None,
                 chart_mode: str = "auto", throttle: float = 0.25, auto_run: bool = True):
        self.preset = self._resolve(preset)
        self.store, self.auto_run = store, auto_run
        self.result: dict | None = None
        self._lock = threading.Lock()
        self.preset_menu = preset_dropdown(self.CHAPTER, self.preset.name)
        self.sliders: dict[str, widgets.Widget] = {**self.make_lr_slider(), **self.make_sliders()}
        self._built_ranges = {name: (w.min, w.max) for name, w in self.sliders.items()
                              if choices(w) is None and hasattr(w, "max")}
        self._good = {name: w.value for name, w in self.sliders.items()}
        self._undoing = False
        self.controls = RunControls()
        self.runner = BackgroundRunner(on_error=self._on_error)
        settings = self.settings()
        self._signature = self.layout_signature(settings)
        self.chart = LiveChart(self.layout(settings), mode=chart_mode)
        self.datasets: dict = dict(self.chart.spec.get("datasets", {}))
        self._draw_throttled = Throttle(self._draw, throttle)
        self.controls.run.on_click(lambda _: self.run())
        self.controls.stop.on_click(lambda _: self.stop())
        for w in self.sliders.values():
            w.observe(self._on_setting, names="value")
        self.preset_menu.observe(self._on_preset, names="value")
        self.note = widgets.HTML(self._needs())
        self.exports = ExportControls(f"ch{self.CHAPTER}", delay=1.0 if self.LIVE else 0.3)
        self.widget = widgets.VBox(self.arrange())
        self.widget.add_class("eoslab-app")
        self.show_stored()
        if any(self.datasets.values()):  # drawn with its data, so the page embeds it once
            self.chart.show(with_datasets(self.layout(settings), self.datasets))

    # -- to implement --------------------------------------------------------------------
    def make_sliders(self) -> dict:
        """The chapter's controls beyond the step size (setting name -> widget)."""
        return {}

    def layout(self, settings: dict):
        """The chart for ``settings``: an Altair chart on empty named datasets."""
        raise NotImplementedError

    def layout_signature(self, settings: dict) -> Any:
        """What the layout depends on; the chart is redrawn when it changes."""
        return None

    def describe(self, result: dict) -> str:
        """The status line of a finished result (HTML allowed, escape your own text)."""
        raise NotImplementedError

    def describe_diverged(self, result: dict) -> str:
        """The status line of a diverged result (HTML allowed).

        By default :func:`divergence_text`: the stage, the step, the loss and 2/η.
        """
        return html.escape(divergence_text(result))

    def total_work(self, settings: dict) -> int:
        """The progress bar's maximum for ``settings``."""
        return 1

    def arrange(self) -> list:
        """The app's rows, top to bottom."""
        rows = edge.slider_rows(self)  # two a row, wrapping; the edge marker after "lr"
        buttons = [] if self.LIVE else [self.controls.box]
        return [self.preset_menu, self.note, *rows, *buttons, self.controls.status,
                self.chart.widget, self.exports.widget]

    def compute(self, settings: dict, emit: Emit, stop: threading.Event) -> dict:
        """Run the chapter's experiment on the current preset and ``settings``."""
        if self.experiment is None:
            raise NotImplementedError(f"{type(self).__name__} sets no experiment")
        return type(self).experiment(self.preset, settings, emit=emit, stop=stop)

    # -- settings and the store ----------------------------------------------------------
    def _resolve(self, preset):
        if preset is None:
            return preset_for(self.CHAPTER)
        if isinstance(preset, str):
            return get_preset(self.CHAPTER, preset)
        return preset

    def _needs(self) -> str:
        return f"<i>needs: {html.escape(self.preset.needs)}</i>" if self.preset.needs else ""

    def settings(self) -> dict:
        """The current control values (numbers rounded as shown)."""
        return {k: setting_value(w.value) for k, w in self.sliders.items()}

    def key(self, settings: dict | None = None) -> str:
        """The store key of ``settings`` (default: the current ones) under this preset."""
        return result_key(chapter=self.CHAPTER, preset=dict(self.preset.values),
                          settings=self.settings() if settings is None else settings)

    def _store(self):
        if self.LIVE:
            return None
        return RunStore() if self.store is None else (self.store or None)

    def show_stored(self) -> bool:
        """Draw the stored result of the current settings, if any; returns whether found.

        A live app has no store: it computes the current settings instead.
        """
        if self.LIVE:
            self.run(wait=True)
            return True
        store = self._store()
        blob = store.load_json(self.KIND, self.key()) if store is not None else None
        if blob is None:
            self.result = None
            self._set_datasets({k: [] for k in self.datasets})
            self.exports.clear()
            self.controls.say(f"press Run to train ({html.escape(self.preset.label)})", "idle")
            return False
        blob["from_store"] = True
        self._finish(blob)
        return True

    # -- drawing -------------------------------------------------------------------------
    def _relayout(self, settings: dict) -> None:
        signature = self.layout_signature(settings)
        if signature != self._signature:
            self._signature = signature
            self.chart.show(self.layout(settings))
            with self._lock:
                self.datasets = {k: self.datasets.get(k, [])
                                 for k in self.chart.spec.get("datasets", {})}

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
            text = self.describe_diverged(result)
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
        self.controls.say(self._status(result), status.result_state(result))
        offer_result(self, result)  # files made later, off this thread

    # -- running -------------------------------------------------------------------------
    def run(self, wait: bool = False) -> None:
        """Compute the current settings (cancelling a run in progress); ``wait`` blocks."""
        if wait or self.LIVE:
            self.runner.run_sync(self._job)
        else:
            self.runner.start(self._job)

    def run_sync(self) -> None:
        self.run(wait=True)  # in the calling thread (tests and ``EOSLAB_QUICK``)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background run ends (``False`` on timeout); re-raises its error."""
        finished = self.runner.wait(timeout)
        if self.runner.error is not None:
            raise self.runner.error
        return finished

    def _start_job(self, settings: dict, token: int) -> None:
        if not self.runner.current(token):
            return
        self._relayout(settings)
        if self.LIVE:
            return
        self.controls.progress.max = max(self.total_work(settings), 1)
        self.controls.progress.value = 0
        self.controls.set_running(True)
        self.controls.say(f"training ({html.escape(self.preset.label)}) ...", "training")
        self.exports.clear()
        self._set_datasets({k: [] for k in self.datasets})

    def _emitter(self, token: int) -> Emit:
        def emit(datasets: dict, done: int) -> None:
            if not self.runner.current(token):
                return
            with self._lock:
                self.datasets = {**self.datasets, **datasets}
            if self.LIVE:  # an instant result: drawn once, when it is finished
                return
            self.controls.progress.value = min(int(done), self.controls.progress.max)
            self._draw_throttled(token)

        return emit

    def _job(self, stop: threading.Event, token: int) -> None:
        settings = self.settings()
        refused = self.refusals(settings)
        if refused:  # a bad value between its arrival and its undoing: never computed
            if self.runner.current(token):
                self.controls.say(html.escape("refused: " + "; ".join(refused)))
            return
        self._start_job(settings, token)
        result = self.compute(settings, self._emitter(token), stop)
        store = self._store()
        if store is not None and result.get("status") != "stopped":
            store.save_json(self.KIND, self.key(settings), result)
        if not self.runner.current(token):
            return
        self._draw_throttled.flush()
        self.controls.progress.value = self.controls.progress.max
        self.controls.set_running(False)
        self._finish(result)

    def stop(self) -> None:
        """Ask the background run to stop; the status says so until it has."""
        self.runner.stop()
        if self.runner.running:
            self.controls.say("stopping ...")

    def _on_error(self, err: BaseException) -> None:
        """A run raised: the controls go idle and the status line names the error (briefly)."""
        self.controls.set_running(False)
        message = str(err)
        message = message if len(message) <= 200 else message[:199] + "…"
        self.controls.say(f"error: {html.escape(type(err).__name__)}: {html.escape(message)}",
                          "error")

    def _callback_error(self, err: Exception) -> None:
        """An exception in a widget callback: in the status line, never out of the callback.

        One raised out of the callback would reach the visitor as a traceback.
        """
        if err is not self.runner.error:  # the runner has already reported its own
            self._on_error(err)

    def _on_setting(self, _change=None) -> None:
        """A control moved: refuse a value it may not send, else stop the run and show.

        What is shown: the stored result of the new settings, else a new run (``auto_run``).
        """
        if self._undoing or self._undo_refused():
            return
        self._good = {name: w.value for name, w in self.sliders.items()}
        try:
            if self.runner.running:
                self.runner.stop()
            if self.LIVE:
                self.run(wait=True)
                return
            self._relayout(self.settings())
            if self.show_stored():
                return
            if self.auto_run:
                self.run()
        except Exception as err:  # noqa: BLE001 - reported in the status line
            self._callback_error(err)

    def _on_preset(self, change) -> None:
        try:
            self._switch_preset(str(change["new"]))
        except Exception as err:  # noqa: BLE001 - reported in the status line
            self._callback_error(err)

    def _switch_preset(self, preset_name: str) -> None:
        self.runner.stop()
        self.preset = get_preset(self.CHAPTER, preset_name)
        self.note.value = self._needs()
        for name, w in self.sliders.items():
            w.unobserve(self._on_setting, names="value")
            bounds = self.slider_range(name, self.preset)
            if bounds is not None:
                self._set_range(w, *bounds)
            if self.preset.get(name) is not None:
                w.value = self.preset[name]
            w.observe(self._on_setting, names="value")
        self.refresh_lr_label()
        self._good = {name: w.value for name, w in self.sliders.items()}
        self._relayout(self.settings())
        self.show_stored()

    def set(self, **values) -> None:
        """Move controls from Python as a reader would (each move reruns or restores)."""
        for name, value in values.items():
            if name not in self.sliders:
                raise ValueError(f"unknown control {name!r}; allowed: {', '.join(self.sliders)}")
            self.sliders[name].value = value

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
